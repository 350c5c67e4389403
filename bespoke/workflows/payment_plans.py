"""The five payment plans, one object each, behind one interface.

The lifecycle and the handlers ask the order's plan (`plan_for`) instead of
branching on the plan kind: what is due and when (the schedule), how the order
is funded before production (a deposit, or a reserved credit line), what happens
at shipment and at the door, what follows delivery (the buyer's inspection, or
the carrier's cash remittance), the jobs that run once the order is complete
(credit repayment), and what a refund or a cancellation gives back to the credit
line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from typing import TYPE_CHECKING, ClassVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from bespoke.activities.credit import CreditActivities, CreditRef, CreditRequest
    from bespoke.domain.events import EventKind, SystemActor
    from bespoke.domain.models import Account, OrderInput, PlanKind, Stage
    from bespoke.domain.money import allocate
    from bespoke.domain.state import Part
    from bespoke.workflows.presets import DB_WRITE

if TYPE_CHECKING:
    from bespoke.workflows.core import OrderCore

# Credit reminders after a repayment falls overdue, at the policy's interval.
MAX_CREDIT_REMINDERS = 10
# A partial refund on credit used to close the order as if the rest were overdue
# at once (the buyer's credit frozen, and no way left to repay it). With this
# patch the rest stays due at the end of the settlement period.
CREDIT_DEBT_PATCH = "credit-debt-after-refund-v1"
REPAYABLE = (Stage.COMPLETED, Stage.REFUNDED)


class Plan:
    """A plan that is paid up front in parts (full prepayment, the base case)."""

    kind: ClassVar[PlanKind]
    bank_transfers: ClassVar[bool] = False  # paid by matched transfers to a collection account
    cash_on_delivery: ClassVar[bool] = False  # the buyer inspects and pays the carrier at the door
    on_credit: ClassVar[bool] = False  # the buyer's account-period credit line pays

    def schedule(self, inp: OrderInput) -> list[Part]:
        return [Part(name="deposit", amount=inp.price)]

    def has_retention(self, parts: list[Part]) -> bool:
        """Whether the last part is retention, due only after the buyer accepts."""
        return False

    async def fund(self, wf: OrderCore, resuming: bool) -> bool:
        """Before production: take the deposit. False if the order closed instead."""
        if not wf.s.parts:
            return True
        return await wf._take_deposit(resuming)

    def on_ship(self, wf: OrderCore) -> None:
        """Bookkeeping when the goods leave the seller."""

    def check_collection(self, wf: OrderCore, collected: int | None) -> None:
        """Validate what the carrier says it collected at the door."""
        if collected is not None:
            raise ValueError("nothing is collected at the door for this payment plan")

    async def after_delivery(self, wf: OrderCore, resuming: bool) -> bool:
        """The buyer's inspection; False if a case ended in a refund."""
        return await wf._inspect(resuming)

    def start_settlement_terms(self, wf: OrderCore) -> None:
        """Deadlines that start once the order completes."""

    def completion_jobs(self, wf: OrderCore) -> list[Awaitable[None]]:
        """Jobs that run beside the after-sales window once the order completes."""
        return []

    async def after_refund(self, wf: OrderCore) -> None:
        """A case's refund is done (the order is now refunded)."""

    def keep_debt(self, wf: OrderCore) -> None:
        """A refund is closing the order: keep what the buyer still owes running."""

    async def after_cancel(self, wf: OrderCore) -> None:
        """The order was cancelled and its money allocated."""

    def next_step(self, wf: OrderCore) -> str | None:
        """What must happen next, where the plan decides it; None: the lifecycle's default."""
        return None


class FullPrepayment(Plan):
    kind = PlanKind.FULL_PREPAYMENT


class CollectionAccount(Plan):
    """Large B2B orders paid by bank transfer to the buyer's dedicated virtual
    account; transfers are matched to the order (over-payment goes back)."""

    kind = PlanKind.COLLECTION_ACCOUNT
    bank_transfers = True


class Staged(Plan):
    """Staged payment: 20/80, 30/70, 30/60/10 … The first part is the deposit,
    middle parts are due after the quality check, and with three or more parts the
    last is retention, due after the buyer accepts the goods."""

    kind = PlanKind.STAGED

    def schedule(self, inp: OrderInput) -> list[Part]:
        amounts = allocate(inp.price, inp.plan.ratios)
        names = ["deposit"] + [
            "balance" if len(amounts) == 2 or len(amounts) == 3 else f"balance_{i}"
            for i in range(1, len(amounts) - (1 if len(amounts) >= 3 else 0))
        ]
        if len(amounts) >= 3:
            names.append("retention")
        return [Part(name=n, amount=a) for n, a in zip(names, amounts)]

    def has_retention(self, parts: list[Part]) -> bool:
        return len(parts) >= 3


class CashOnDelivery(Plan):
    """Nothing up front: the buyer inspects the goods at the door and pays the
    carrier, who remits the cash into escrow."""

    kind = PlanKind.CASH_ON_DELIVERY
    cash_on_delivery = True

    def schedule(self, inp: OrderInput) -> list[Part]:
        return []

    def check_collection(self, wf: OrderCore, collected: int | None) -> None:
        if wf.s.deliveries == 0:
            if collected != wf.inp.price:
                raise ValueError(f"cash on delivery: the carrier must collect exactly {wf._money(wf.inp.price)}")
        else:
            super().check_collection(wf, collected)

    async def after_delivery(self, wf: OrderCore, resuming: bool) -> bool:
        s, d = wf.s, wf.policy.deadlines
        if not s.cod_overdue:
            wf.deadlines.start("cod_remittance", d.cod_remittance,
                               "escalated to ops; the carrier still owes the collection")
            await wf._sync()
            if await wf._wait(lambda: s.cod_remitted, "cod_remittance"):
                return True
            s.cod_overdue = True
            wf._event(EventKind.COD_REMITTANCE_OVERDUE, SystemActor.TIMER,
                      "carrier has not remitted the cash collected: escalated to ops")
            await wf._sync()
        await wf.loop.block(lambda: s.cod_remitted)
        return True

    def next_step(self, wf: OrderCore) -> str | None:
        if wf.s.stage is Stage.DELIVERED:
            return "carrier remits the cash collected"
        return None


class Credit(Plan):
    """Account-period credit: the buyer's credit line (a limit per buyer) is
    reserved at acceptance, funds escrow at shipment, and the buyer repays within
    the settlement period after confirming receipt; overdue → frozen + reminders."""

    kind = PlanKind.CREDIT
    on_credit = True

    def schedule(self, inp: OrderInput) -> list[Part]:
        return []

    async def fund(self, wf: OrderCore, resuming: bool) -> bool:
        s, inp = wf.s, wf.inp
        result = await workflow.execute_activity_method(
            CreditActivities.reserve_credit,
            CreditRequest(order_id=inp.order_id, buyer=inp.buyer, amount=inp.price, currency=inp.currency),
            **DB_WRITE,
        )
        if not result.ok:
            # Nothing has been paid, so there is nothing for the rules to allocate.
            s.closing = True
            wf.deadlines.clear()
            # The platform's credit rule refused (a limit, a frozen account), not a deadline.
            wf._event(EventKind.CANCELLED, SystemActor.RULES, f"credit unavailable: {result.message}")
            wf._set_stage(Stage.CANCELLED)
            await wf._sync()
            s.closed = True
            return False
        s.credit_outstanding = inp.price
        wf._event(EventKind.CREDIT_RESERVED, SystemActor.TIMER, f"credit line reserved: {wf._money(inp.price)}")
        return True

    def on_ship(self, wf: OrderCore) -> None:
        # Goods ship on credit: the buyer's credit line funds escrow.
        price = wf.inp.price
        wf.books.post("credit_advance", [(Account.CREDIT_LINE, -price), (Account.ESCROW, price)],
                      "account-period credit funds escrow at shipment", at=workflow.now(), key="credit-advance")

    def start_settlement_terms(self, wf: OrderCore) -> None:
        days = wf.inp.plan.settlement_days
        period = timedelta(days=days) if days else wf.policy.deadlines.credit_settlement
        wf.deadlines.start("credit_settlement", period, "buyer's credit frozen; reminders sent")

    def completion_jobs(self, wf: OrderCore) -> list[Awaitable[None]]:
        return [self.repayment(wf)]

    async def repayment(self, wf: OrderCore) -> None:
        """Wait for the buyer to repay; overdue → the buyer's credit is frozen and
        reminders go out; repaid → the credit line is released."""
        s, d, inp = wf.s, wf.policy.deadlines, wf.inp
        if s.credit_done:
            return
        ref = CreditRef(order_id=inp.order_id, buyer=inp.buyer)
        if not s.credit_overdue and not await self._repaid_in_time(wf):
            s.credit_overdue = True
            await workflow.execute_activity_method(CreditActivities.mark_credit_overdue, ref, **DB_WRITE)
            wf._event(EventKind.CREDIT_OVERDUE, SystemActor.TIMER,
                      "repayment overdue: the buyer's credit is frozen for new orders")
            await wf._sync()
        while s.credit_outstanding > 0:
            timeout = d.credit_reminder_interval if s.credit_reminders < MAX_CREDIT_REMINDERS else None
            try:
                await wf.loop.block(lambda: s.credit_outstanding == 0, timeout=timeout)
            except asyncio.TimeoutError:
                s.credit_reminders += 1
                wf._event(EventKind.CREDIT_REMINDER, SystemActor.TIMER,
                          f"reminder {s.credit_reminders}: {wf._money(s.credit_outstanding)} overdue")
                await wf._sync()
        await workflow.execute_activity_method(CreditActivities.release_credit, ref, **DB_WRITE)
        s.credit_done = True
        wf._event(EventKind.CREDIT_REPAID, SystemActor.TIMER, "credit repaid in full; credit line released")
        await wf._sync()

    async def _repaid_in_time(self, wf: OrderCore) -> bool:
        s = wf.s

        def settled() -> bool:
            # Before CREDIT_DEBT_PATCH a refund closing the order ended the wait too,
            # and counted as overdue.
            return s.credit_outstanding == 0 or s.closing or (s.closed and not s.credit_kept)

        in_time = await wf.deadlines.until_due(settled, "credit_settlement")
        if s.credit_kept:
            return in_time
        return in_time and not (s.closing or s.closed)

    def keep_debt(self, wf: OrderCore) -> None:
        if wf.s.credit_outstanding > 0 and wf._patched(CREDIT_DEBT_PATCH):
            wf.s.credit_kept = True
            if "credit_settlement" not in wf.deadlines:  # refunded before completion: the period starts now
                self.start_settlement_terms(wf)

    async def _release(self, wf: OrderCore) -> None:
        await workflow.execute_activity_method(
            CreditActivities.release_credit, CreditRef(order_id=wf.inp.order_id, buyer=wf.inp.buyer), **DB_WRITE,
        )

    async def after_refund(self, wf: OrderCore) -> None:
        if wf.s.credit_outstanding == 0:
            await self._release(wf)

    async def after_cancel(self, wf: OrderCore) -> None:
        s = wf.s
        if s.credit_outstanding:
            if s.shipped_at is not None and s.balances[Account.CREDIT_LINE] < 0:
                # Cancelled after shipping: the credit that funded escrow and paid the
                # seller's costs is still the buyer's to repay.
                owed = min(s.credit_outstanding, -s.balances[Account.CREDIT_LINE])
                wf._claim(f"buyer:{wf.inp.buyer}", "platform", owed,
                          "account-period credit that paid the seller's costs of a cancelled order")
            s.credit_outstanding = 0
            await self._release(wf)

    def next_step(self, wf: OrderCore) -> str | None:
        if wf.s.stage in REPAYABLE and wf.s.credit_outstanding:
            return "buyer repays the credit"
        return None


PLANS: dict[PlanKind, Plan] = {p.kind: p for p in (FullPrepayment(), Staged(), Credit(), CashOnDelivery(),
                                                  CollectionAccount())}


def plan_for(kind: PlanKind) -> Plan:
    return PLANS[kind]
