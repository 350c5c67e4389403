"""OrderWorkflow: one durable workflow per made-to-order purchase.

The run method walks the lifecycle (acceptance, deposit, production, quality
check, balance, shipment, delivery, inspection, settlement); actor actions are
updates whose validators reject bad input before anything reaches history.
Every waiting stage has a deadline from the pinned policy and a default action.
Money moves only as balanced ledger transactions, posted by an idempotent
activity; rules decisions come from local activities so replay never
re-evaluates them.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import unicodedata
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from bespoke.activities.credit import CreditActivities, CreditRef, CreditRequest
    from bespoke.activities.ledger import LedgerActivities
    from bespoke.activities.rules import (
        CancellationRequest,
        DisputeRequest,
        RefundRequest,
        ReturnTermsRequest,
        SettlementRequest,
        cancellation_decision,
        dispute_default_decision,
        refund_decision,
        return_terms_decision,
        settlement_decision,
    )
    from bespoke.activities.store import StoreActivities
    from bespoke.domain import search_attributes as sa
    from bespoke.domain.models import (
        PRE_DELIVERY_STAGES,
        Account,
        ActionResult,
        Actor,
        ActorInput,
        ArbitrateInput,
        CancelInput,
        CaseView,
        DisputeInput,
        EvidenceInput,
        EvidenceItem,
        OfferAnswerInput,
        ReceiveReturnInput,
        ReturnRequestInput,
        ReturnResponseInput,
        ShipReturnInput,
        DeadlineView,
        DeliverInput,
        Leg,
        MilestoneInput,
        MilestoneRecord,
        OrderInput,
        OrderProjection,
        OrderResult,
        OrderView,
        OverrideDeadlineInput,
        PayInput,
        PaymentRecord,
        PlanKind,
        PolicyRef,
        ProjectInput,
        QcInput,
        ReasonInput,
        RemitInput,
        Role,
        SalvageInput,
        ShipInput,
        Stage,
        TimelineEntry,
        Transaction,
    )
    from bespoke.domain.money import allocate, format_amount
    from bespoke.rules import (
        CancellationFacts,
        DisputeFacts,
        RefundFacts,
        ReturnFacts,
        SettlementFacts,
        decision_entry,
        pinned_policy,
    )
    from bespoke.rules.durations import duration_words
    from bespoke.workflows.presets import DB_WRITE, RULES

MAX_CREDIT_REMINDERS = 10
AFTERSALES_PATCH = "aftersales-v1"
# One read-model sync per reaction instead of one per _sync() call (see _sync).
SYNC_BATCHED_PATCH = "sync-batched-v1"
# True in the run loop's task and the jobs it gathers; update handlers run in
# tasks of their own, where it is False.
_IN_RUN_LOOP: contextvars.ContextVar[bool] = contextvars.ContextVar("bespoke_in_run_loop", default=False)
_TIMER = "system:timer"
_RULES = "system:rules"
_WORKFLOW = "system:workflow"
# Deadlines ops may move with `override_deadline`: the ones a timer waits on.
# promised_delivery and arbitration are markers, not timers.
MOVABLE_DEADLINES = (
    "seller_acceptance", "deposit", "balance", "retention", "inspection_window", "cod_remittance",
    "credit_settlement", "aftersales_window", "return_response", "offer_response", "escalation",
    "return_ship", "return_receive", "repair", "dispute_evidence",
)


def _same_name(a: str, b: str) -> bool:
    return a == b or unicodedata.normalize("NFC", a) == unicodedata.normalize("NFC", b)


class _Part:
    """One scheduled payment of the plan (deposit, balance, retention)."""

    __slots__ = ("name", "amount", "paid")

    def __init__(self, name: str, amount: int) -> None:
        self.name = name
        self.amount = amount
        self.paid = 0

    @property
    def due(self) -> int:
        return self.amount - self.paid


class _Case:
    """An after-sales case (return, repair, dispute) while it runs."""

    def __init__(self, number: int, inp: ReturnRequestInput, at: datetime) -> None:
        self.number = number
        self.opened_by = str(inp.actor)
        self.reason = inp.reason
        self.remedy = inp.remedy
        self.description = inp.description
        self.state = "requested"
        self.opened_at = at
        self.evidence = [EvidenceItem(party="buyer", item=e, at=at) for e in inp.evidence]
        self.offer: int | None = None
        self.return_shipping_payer: str | None = None
        self.return_shipment: dict[str, str] | None = None
        self.shipping_cost = 0
        self.disposition: str | None = None
        self.dispute_opened_by: str | None = None
        self.claim: int | None = None
        self.finalised: list[str] = []
        self.dispute_parties: set[str] = set()
        self.arbitration: tuple[int, str, str] | None = None
        self.repair_allowed = True
        self.back_to = Stage.DELIVERED  # the stage the order returns to if the goods are kept
        self.outcome: str | None = None
        self.closed_at: datetime | None = None

    def submitted(self, party: str) -> bool:
        """Whether `party` put evidence into the dispute (staged or final)."""
        return party in self.finalised or party in self.dispute_parties

    def view(self) -> CaseView:
        return CaseView(
            number=self.number, reason=self.reason, remedy=self.remedy, state=self.state,
            opened_at=self.opened_at, description=self.description, evidence=list(self.evidence),
            offer=self.offer, return_shipping_payer=self.return_shipping_payer,
            return_shipment=self.return_shipment, disposition=self.disposition,
            dispute_opened_by=self.dispute_opened_by, claim=self.claim, finalised=list(self.finalised),
            outcome=self.outcome, closed_at=self.closed_at,
        )


def _schedule(inp: OrderInput) -> list[_Part]:
    plan = inp.plan
    if plan.kind in (PlanKind.FULL_PREPAYMENT, PlanKind.COLLECTION_ACCOUNT):
        return [_Part("deposit", inp.price)]
    if plan.kind is PlanKind.STAGED:
        amounts = allocate(inp.price, plan.ratios)
        names = ["deposit"] + [
            "balance" if len(amounts) == 2 or len(amounts) == 3 else f"balance_{i}"
            for i in range(1, len(amounts) - (1 if len(amounts) >= 3 else 0))
        ]
        if len(amounts) >= 3:
            names.append("retention")
        return [_Part(n, a) for n, a in zip(names, amounts)]
    return []  # credit and cash on delivery pay nothing up front


@workflow.defn
class OrderWorkflow:
    @workflow.init
    def __init__(self, inp: OrderInput) -> None:
        self.inp = inp
        self.policy = pinned_policy(inp.policy, inp.pin.get("sha256"))
        self.stage = Stage.AWAITING_ACCEPTANCE
        self.created_at = workflow.now()
        self.updated_at = self.created_at
        self.timeline: list[TimelineEntry] = []
        self.decisions: list[dict] = []
        self.txns: list[Transaction] = []
        self.balances: dict[Account, int] = {a: 0 for a in Account}
        self.paid = 0
        self.refunded = 0
        self.parts = _schedule(inp)
        self.part_index = 0
        self.payments: list[PaymentRecord] = []
        self.references: set[str] = set()
        self.milestones: list[MilestoneRecord] = []
        self.salvage_value = 0
        self.qc_failures = 0
        self.production_done = False
        self.qc_passed = False
        self.shipment: dict[str, str] | None = None
        self.shipped_at: datetime | None = None
        self.promised_at: datetime | None = None
        self.accepted = False
        self.delivered = False
        self.confirmed_by: str | None = None
        self.refused = False
        self.cod_remitted = False
        self.late_penalty = 0
        self.credit_outstanding = 0
        self.deadlines: dict[str, DeadlineView] = {}
        # When each deadline finally fell due (ops may have moved it while it ran).
        self.last_due: dict[str, datetime] = {}
        self.closing = False  # a cancellation is being carried out
        self.closed = False
        self._posted = 0
        self._projected_events = 0
        self._projected_decisions = 0
        self._sync_lock = asyncio.Lock()
        # Batched syncs: requests made, requests served, a failure to hand back.
        # Decided here, not in run(), because an update can arrive in the order's
        # first workflow task and its handler runs before run() starts.
        self._batched = workflow.patched(SYNC_BATCHED_PATCH)
        self._sync_wanted = 0
        self._sync_done = 0
        self._sync_error: BaseException | None = None
        self._flusher: asyncio.Task[None] | None = None
        # Run-loop bookkeeping for _caught_up: conditions the loop (and any
        # concurrent job of it) waits on, and how many of them are running.
        self._waiting: list[Callable[[], bool]] = []
        self._running = 1
        self.aftersales = False
        self.case: _Case | None = None
        self.cases: list[_Case] = []
        self.repair_rounds = 0
        self.deliveries = 0
        self.delivered_at: datetime | None = None
        self._lifecycle_done = False
        self._decision_seq = 0
        self._txn_seq = 0
        # Set here, not in the run loop, so an update in the order's first
        # workflow task (handlers run before the loop starts) already sees it.
        self.deadlines["seller_acceptance"] = self._deadline(
            "seller_acceptance", self.policy.deadlines.seller_acceptance, "order cancelled, no cost to anyone"
        )

    # ------------------------------------------------------------------ run

    @workflow.run
    async def run(self, inp: OrderInput) -> OrderResult:
        _IN_RUN_LOOP.set(True)
        workflow.upsert_search_attributes(
            [
                sa.STAGE.value_set(self.stage.value),
                sa.BUYER.value_set(inp.buyer),
                sa.SELLER.value_set(inp.seller),
                sa.PAYMENT_PLAN.value_set(inp.plan.kind.value),
            ]
        )
        self._event("created", inp.created_by, f"order created: {inp.title or 'untitled'}, "
                    f"{format_amount(inp.price, inp.currency)}, plan {inp.plan.label()}, "
                    f"policy {self.policy.name}@{self.policy.version}")
        await self._sync()
        await self._lifecycle()
        self._lifecycle_done = True
        await self._block(workflow.all_handlers_finished)
        await self._sync()
        if self._flusher is not None:
            await self._block(lambda: self._sync_done >= self._sync_wanted or self._sync_error is not None)
            if self._sync_error is not None:
                raise self._sync_error
            self._flusher.cancel()
        return OrderResult(
            order_id=inp.order_id,
            stage=self.stage,
            paid=self.paid,
            refunded=self.refunded,
            released_to_seller=self.balances[Account.SELLER],
            platform_fee=self.balances[Account.PLATFORM_FEE],
        )

    async def _lifecycle(self) -> None:
        d = self.policy.deadlines
        system = Actor(role=Role.SYSTEM, name="timer")

        # Seller acceptance (its deadline is set in __init__).
        if not await self._wait(lambda: self.accepted, "seller_acceptance"):
            if not self.closing:
                await self._cancel(system, "acceptance_timeout", "seller did not accept in time")
            return await self._until_closed()

        # Credit: the buyer's account-period line pays instead of a deposit.
        if self.inp.plan.kind is PlanKind.CREDIT:
            result = await workflow.execute_activity_method(
                CreditActivities.reserve_credit,
                CreditRequest(order_id=self.inp.order_id, buyer=self.inp.buyer,
                              amount=self.inp.price, currency=self.inp.currency),
                **DB_WRITE,
            )
            if not result.ok:
                # Nothing has been paid, so there is nothing for the rules to allocate.
                self.closing = True
                self.deadlines.clear()
                self._event("cancelled", system, f"credit unavailable: {result.message}")
                self._set_stage(Stage.CANCELLED)
                await self._sync()
                self.closed = True
                return
            self.credit_outstanding = self.inp.price
            self._event("credit_reserved", system, f"credit line reserved: {format_amount(self.inp.price, self.inp.currency)}")

        # Deposit (or full prepayment).
        if self.parts:
            self._set_stage(Stage.AWAITING_DEPOSIT)
            self.deadlines["deposit"] = self._deadline("deposit", d.deposit, "order cancelled, payments refunded")
            await self._sync()
            if not await self._wait(lambda: self.parts[0].due == 0, "deposit"):
                if not self.closing:
                    await self._cancel(system, "deposit_timeout", "deposit not paid in time")
                return await self._until_closed()
            self.part_index = 1

        # Production and the factory quality check, with late-delivery markers.
        self._set_stage(Stage.IN_PRODUCTION)
        self.promised_at = workflow.now() + timedelta(days=self.inp.production_days)
        self.deadlines["promised_delivery"] = DeadlineView(
            name="promised_delivery", due_at=self.promised_at,
            default_action="late penalty accrues per day; after the grace period the buyer may cancel free",
        )
        await self._sync()
        if not await self._production():
            return await self._until_closed()

        # Balance parts due after the quality check (staged plans).
        last_pre_ship = len(self.parts) - (1 if self._has_retention() else 0)
        while self.part_index < last_pre_ship:
            part = self.parts[self.part_index]
            self._set_stage(Stage.AWAITING_BALANCE)
            self.deadlines["balance"] = self._deadline(
                "balance", d.balance, "order cancelled; costs allocated by the policy"
            )
            self._event("balance_due", system, f"{part.name} due: {format_amount(part.due, self.inp.currency)}")
            await self._sync()
            if not await self._wait(lambda: part.due == 0, "balance"):
                if not self.closing:
                    await self._cancel(system, "balance_timeout", "balance not paid in time")
                return await self._until_closed()
            self.part_index += 1

        # Shipment.
        await self._sync()
        if not await self._wait(lambda: self.shipment is not None, None):
            return await self._until_closed()

        # Delivery.
        await self._wait(lambda: self.delivered or self.refused, None)
        if self.closing or self.closed:
            return await self._until_closed()
        if self.refused:
            await self._cancel(Actor(role=Role.CARRIER, name=self.shipment["carrier"]), "cod_refused",
                               "buyer refused the goods at the door; goods return to the seller")
            return await self._until_closed()

        # After-sales (returns, repairs, disputes) arrived with the "aftersales-v1"
        # patch; orders whose history predates it replay the original path.
        aftersales = self.aftersales = workflow.patched(AFTERSALES_PATCH)
        if self.inp.plan.kind is PlanKind.CASH_ON_DELIVERY:
            await self._cod_remittance()
        elif aftersales:
            if await self._inspection() == "refunded":
                return
        else:
            self.deadlines["inspection_window"] = self._deadline(
                "inspection_window", d.inspection_window, "receipt auto-confirmed, escrow released to the seller"
            )
            await self._sync()
            if not await self._wait(lambda: self.confirmed_by is not None, "inspection_window"):
                self.confirmed_by = "system:timer"
                self._event("auto_confirmed", system, "inspection window ended: receipt auto-confirmed")
        await self._settle("settlement")

        if self._has_retention():
            await self._retention()
        if self.inp.plan.kind is PlanKind.CREDIT:
            period = (timedelta(days=self.inp.plan.settlement_days) if self.inp.plan.settlement_days
                      else d.credit_settlement)
            self.deadlines["credit_settlement"] = self._deadline(
                "credit_settlement", period, "buyer's credit frozen; reminders sent"
            )
        self._set_stage(Stage.COMPLETED)
        await self._sync()

        if aftersales:
            # The after-sales window and the credit repayment run side by side.
            jobs = [self._aftersales_window()]
            if self.inp.plan.kind is PlanKind.CREDIT:
                jobs.append(self._credit_repayment())
            self._running -= 1  # the main loop only waits for its jobs now
            try:
                await asyncio.gather(*(self._job(j) for j in jobs))
            finally:
                self._running += 1
        elif self.inp.plan.kind is PlanKind.CREDIT:
            await self._credit_repayment()

    # ---------------------------------------------------------- after-sales

    async def _job(self, coro: Awaitable[None]) -> None:
        self._running += 1
        try:
            await coro
        finally:
            self._running -= 1

    async def _inspection(self) -> str:
        """The buyer's inspection window; it pauses while a case is open and
        starts afresh after a repair. Returns "confirmed" or "refunded"."""
        d = self.policy.deadlines
        remaining = d.inspection_window
        while True:
            self.deadlines["inspection_window"] = self._deadline(
                "inspection_window", remaining, "receipt auto-confirmed, escrow released to the seller"
            )
            await self._sync()
            met = await self._wait(lambda: self.confirmed_by is not None or self.case is not None, "inspection_window")
            if not met:
                self.confirmed_by = "system:timer"
                self._event("auto_confirmed", _TIMER, "inspection window ended: receipt auto-confirmed")
                return "confirmed"
            if self.confirmed_by is not None:
                return "confirmed"
            remaining = max(self.last_due["inspection_window"] - workflow.now(), timedelta(0))
            outcome = await self._run_case(paused="inspection window")
            if outcome == "refunded":
                return "refunded"
            if outcome == "redelivered":
                remaining = d.inspection_window

    async def _aftersales_window(self) -> None:
        d = self.policy.deadlines
        remaining = d.aftersales_window
        while True:
            self.deadlines["aftersales_window"] = self._deadline(
                "aftersales_window", remaining, "after-sales window closes; funds final"
            )
            await self._sync()
            if not await self._wait(lambda: self.case is not None, "aftersales_window"):
                self._event("aftersales_closed", _TIMER, "after-sales window closed")
                await self._sync()
                return
            remaining = max(self.last_due["aftersales_window"] - workflow.now(), timedelta(0))
            outcome = await self._run_case(paused="after-sales window")
            if outcome == "refunded":
                return
            if outcome == "redelivered":
                # A repaired order gets a fresh inspection; the window resumes after it.
                self.confirmed_by = None
                if await self._inspection() == "refunded":
                    return
                self._set_stage(Stage.COMPLETED)

    def _case_open(self) -> bool:
        return self.case is not None and self.case.outcome is None

    async def _case_wait(self, cond: Callable[[], bool], deadline: str, duration: timedelta, action: str) -> str:
        """Wait inside a case: "met", "timeout" or "disputed"."""
        case = self.case
        self.deadlines[deadline] = self._deadline(deadline, duration, action)
        await self._sync()
        disputed_before = case.state == "disputed"
        if not await self._until_due(lambda: cond() or (case.state == "disputed" and not disputed_before), deadline):
            return "timeout"
        if case.state == "disputed" and not disputed_before:
            return "disputed"
        return "met"

    async def _run_case(self, paused: str) -> str:
        """Drive the open case to its end: "kept", "refunded" or "redelivered"."""
        case = self.case
        d = self.policy.deadlines
        back_to = case.back_to = self.stage
        self._event("case_opened", case.opened_by, f"case {case.number}: {case.reason} → wants {case.remedy}; "
                    f"{paused} paused")
        self._set_stage(Stage.RETURN_REQUESTED)
        terms = await workflow.execute_local_activity(
            return_terms_decision,
            ReturnTermsRequest(policy=self.inp.policy, decision_id=self._next_decision_id("return-terms"),
                               facts=ReturnFacts(
                                   reason=case.reason, stage="completed" if back_to is Stage.COMPLETED else "delivered",
                                   remedy=case.remedy, days_since_delivery=self._days_since_delivery(),
                                   repair_rounds=self.repair_rounds, price=self.inp.price,
                                   currency=self.inp.currency, as_of=workflow.now())),
            **RULES,
        )
        self._record_decision(terms.explanation.model_dump(mode="json"))
        case.return_shipping_payer = terms.return_shipping_payer
        if not terms.allowed:
            return await self._close_case(case, back_to, "not_allowed", terms.explanation.summary)
        if case.remedy == "repair" and not terms.repair_allowed:
            case.remedy = "refund"
            self._event("case_note", _RULES, "repair limit reached: the case proceeds as a refund")
        case.repair_allowed = terms.repair_allowed and not terms.refund_only

        outcome = await self._case_wait(lambda: case.state != "requested", "return_response", d.return_response,
                                        "seller silent: the return is approved")
        if outcome == "timeout":
            case.state = "approved"
            self._event("return_auto_approved", _TIMER, "seller did not respond in time: return approved")
        while case.state in ("offered_partial", "offered_repair"):
            outcome = await self._case_wait(lambda: case.state not in ("offered_partial", "offered_repair"),
                                            "offer_response", d.partial_offer_response,
                                            "buyer silent: the offer lapses and the case closes")
            if outcome == "timeout":
                return await self._close_case(case, back_to, "offer_lapsed", "the buyer did not answer the offer")
        if case.state == "partial_accepted":
            return await self._refund(case, case.offer, "partial_offer_accepted")
        if case.state == "rejected":
            outcome = await self._case_wait(lambda: False, "escalation", d.return_response,
                                            "no dispute opened: the case closes")
            if outcome == "timeout":
                return await self._close_case(case, back_to, "rejected", "the seller rejected the case; no dispute was opened")
        if case.state == "disputed":
            return await self._dispute(case, back_to)

        # Approved: the goods go back (for a refund, or for repair).
        if case.remedy == "repair":
            self._set_stage(Stage.REPAIR)
        outcome = await self._case_wait(lambda: case.return_shipment is not None, "return_ship", d.return_ship,
                                        "buyer did not ship the return: the case closes")
        if outcome == "disputed":
            return await self._dispute(case, back_to)
        if outcome == "timeout":
            return await self._close_case(case, back_to, "not_shipped", "the buyer did not ship the return in time")
        if case.remedy == "refund":
            self._set_stage(Stage.RETURN_IN_TRANSIT)
        outcome = await self._case_wait(lambda: case.disposition is not None, "return_receive", d.return_receive,
                                        "seller did not confirm the returned goods: the refund goes out")
        if outcome == "disputed":
            return await self._dispute(case, back_to)
        if outcome == "timeout":
            self._event("return_auto_refund", _TIMER, "seller did not confirm the returned goods in time: refund")
            return await self._refund(case, self._refundable(), "seller_silent_on_receipt")
        if case.remedy == "refund":
            return await self._refund(case, self._refundable(), "return_received")

        # Repair: the seller reships; the carrier delivers; a new inspection starts.
        deliveries = self.deliveries
        outcome = await self._case_wait(lambda: self.stage is Stage.SHIPPED, "repair", d.return_receive,
                                        "seller did not reship the repaired goods: refund")
        if outcome == "disputed":
            return await self._dispute(case, back_to)
        if outcome == "timeout":
            return await self._refund(case, self._refundable(), "seller_silent_on_receipt")
        await self._block(lambda: self.deliveries > deliveries)
        self.repair_rounds += 1
        return await self._close_case(case, None, "repaired", f"repaired and redelivered (round {self.repair_rounds})",
                                      result="redelivered")

    async def _dispute(self, case: _Case, back_to: Stage) -> str:
        d = self.policy.deadlines
        self._set_stage(Stage.DISPUTED)
        outcome = await self._case_wait(lambda: case.arbitration is not None or len(case.finalised) == 2,
                                        "dispute_evidence", d.dispute_evidence,
                                        "the side without evidence loses, per the policy")
        if case.arbitration is None and outcome == "timeout":
            facts = DisputeFacts(
                opened_by=case.dispute_opened_by, buyer_submitted=case.submitted("buyer"),
                seller_submitted=case.submitted("seller"), claim=case.claim or self._refundable(),
                price=self.inp.price, currency=self.inp.currency, as_of=workflow.now(),
            )
            decision = await workflow.execute_local_activity(
                dispute_default_decision,
                DisputeRequest(policy=self.inp.policy, facts=facts, decision_id=self._next_decision_id("dispute")),
                **RULES,
            )
            self._record_decision(decision.explanation.model_dump(mode="json"))
            self._event("dispute_default", _RULES, decision.explanation.summary)
            if decision.outcome == "buyer_wins" and decision.refund > 0:
                return await self._refund(case, decision.refund, "dispute_default")
            if decision.outcome == "seller_wins":
                return await self._close_case(case, back_to, "seller_won", decision.explanation.summary)
        if case.arbitration is None:
            self.deadlines["arbitration"] = DeadlineView(
                name="arbitration", due_at=workflow.now(), default_action="awaiting platform operations")
            await self._sync()
            await self._block(lambda: case.arbitration is not None)
            self.deadlines.pop("arbitration", None)
        refund, note, actor = case.arbitration
        if refund > 0:
            return await self._refund(case, refund, "arbitration", note=f"ops {actor}: {note}")
        return await self._close_case(case, back_to, "arbitrated_no_refund", f"ops {actor}: {note}")

    async def _close_case(self, case: _Case, back_to: Stage | None, outcome: str, message: str,
                          result: str = "kept") -> str:
        case.outcome = outcome
        case.closed_at = workflow.now()
        for name in ("return_response", "offer_response", "escalation", "return_ship", "return_receive",
                     "repair", "dispute_evidence", "arbitration"):
            self.deadlines.pop(name, None)
        self._event("case_closed", _RULES if outcome != "repaired" else _WORKFLOW,
                    f"case {case.number} closed ({outcome}): {message}")
        if back_to is not None:
            self._set_stage(back_to)
        self.case = None
        await self._sync()
        return result

    def _to_buyer(self, amount: int) -> list[tuple[Account, int]]:
        """Legs paying `amount` back to the buyer. On account-period credit the
        buyer may not have repaid yet: a refund first cancels what the buyer
        still owes on the credit line, and only the rest is paid out."""
        to_credit = min(amount, self.credit_outstanding)
        self.credit_outstanding -= to_credit
        return [(Account.CREDIT_LINE, to_credit), (Account.BUYER, amount - to_credit)]

    def _refundable(self) -> int:
        # Credit the buyer has not repaid yet counts: the refund cancels it.
        return self.paid + self.credit_outstanding - self.refunded

    def _days_since_delivery(self) -> int:
        if self.delivered_at is None:
            return 0
        return max((workflow.now() - self.delivered_at) // timedelta(days=1), 0)

    async def _refund(self, case: _Case, amount: int, outcome: str, note: str = "") -> str:
        """Refund as the policy decides: escrow first, then charged back to the
        seller; then settle whatever escrow still holds and close as refunded."""
        if min(amount, self._refundable()) <= 0:  # nothing left to give back
            return await self._close_case(case, case.back_to, "nothing_to_refund", "nothing paid is left to refund")
        facts = RefundFacts(
            reason=case.reason, outcome=outcome, requested_refund=min(amount, self._refundable()),
            price=self.inp.price, currency=self.inp.currency, paid_total=self.paid + self.credit_outstanding,
            refunded_so_far=self.refunded, escrow_balance=self.balances[Account.ESCROW],
            released_to_seller=max(self.balances[Account.SELLER], 0),
            platform_fee_charged=self.balances[Account.PLATFORM_FEE],
            return_shipping_cost=case.shipping_cost, return_shipping_payer=case.return_shipping_payer or "seller",
            as_of=workflow.now(),
        )
        decision = await workflow.execute_local_activity(
            refund_decision,
            RefundRequest(policy=self.inp.policy, facts=facts, decision_id=self._next_decision_id("refund")),
            **RULES,
        )
        self._record_decision(decision.explanation.model_dump(mode="json"))
        n = case.number
        self._post("refund", [(Account.ESCROW, -decision.refund_from_escrow),
                              *self._to_buyer(decision.refund_from_escrow)],
                   decision.explanation.summary, key=f"case-{n}:refund-escrow")
        if decision.fee_refund_to_seller:
            self._post("fee_refund", [(Account.PLATFORM_FEE, -decision.fee_refund_to_seller),
                                      (Account.SELLER, decision.fee_refund_to_seller)],
                       "platform fee returned pro rata on the charged-back amount", key=f"case-{n}:fee-refund")
        if decision.chargeback_from_seller:
            self._post("chargeback", [(Account.SELLER, -decision.chargeback_from_seller),
                                      *self._to_buyer(decision.chargeback_from_seller)],
                       "refund charged back to the seller's balance", key=f"case-{n}:chargeback")
        if decision.shipping_reimbursement:
            self._post("return_shipping", [(Account.SELLER, -decision.shipping_reimbursement),
                                           (Account.BUYER, decision.shipping_reimbursement)],
                       "seller reimburses return shipping", key=f"case-{n}:shipping")
        cur = self.inp.currency
        total = decision.refund_from_escrow + decision.chargeback_from_seller
        self._event("refunded", _RULES, f"refund {format_amount(total, cur)} ({outcome})"
                    + (f"; return shipping {format_amount(decision.shipping_reimbursement, cur)} reimbursed"
                       if decision.shipping_reimbursement else "")
                    + (f"; {note}" if note else ""))
        # What escrow still holds after a partial refund is the seller's.
        if self.balances[Account.ESCROW]:
            await self._settle("settlement")
        if self.inp.plan.kind is PlanKind.CREDIT and self.credit_outstanding == 0:
            await workflow.execute_activity_method(
                CreditActivities.release_credit,
                CreditRef(order_id=self.inp.order_id, buyer=self.inp.buyer), **DB_WRITE,
            )
        case.outcome = outcome
        case.closed_at = workflow.now()
        self.case = None
        self.deadlines.clear()
        self._set_stage(Stage.REFUNDED)
        await self._sync()
        self.closed = True
        return "refunded"

    async def _production(self) -> bool:
        """Wait for production and a passed quality check; False if the order closed."""
        grace = self.policy.deadlines.production_grace
        markers = [
            (self.promised_at, "promised_date_passed",
             f"promised date passed: late penalty accrues at {self.policy.fees.late_penalty_bps_per_day} bp/day"),
            (self.promised_at + grace, "grace_period_over",
             "grace period over: the buyer may cancel free of cost"),
        ]
        while True:
            timeout = None
            if markers:
                timeout = max(markers[0][0] - workflow.now(), timedelta(0))
            try:
                await self._block(lambda: self.qc_passed or self.closing or self.closed, timeout=timeout)
            except asyncio.TimeoutError:
                _, kind, message = markers.pop(0)
                self._event(kind, Actor(role=Role.SYSTEM, name="timer"), message)
                await self._sync()
                continue
            return not (self.closing or self.closed)

    async def _cod_remittance(self) -> None:
        d = self.policy.deadlines
        self.deadlines["cod_remittance"] = self._deadline(
            "cod_remittance", d.cod_remittance, "escalated to ops; the carrier still owes the collection"
        )
        await self._sync()
        if not await self._wait(lambda: self.cod_remitted, "cod_remittance"):
            self._event("cod_remittance_overdue", Actor(role=Role.SYSTEM, name="timer"),
                        "carrier has not remitted the cash collected: escalated to ops")
            await self._sync()
            await self._block(lambda: self.cod_remitted)

    async def _retention(self) -> None:
        d = self.policy.deadlines
        part = self.parts[-1]
        self._set_stage(Stage.AWAITING_BALANCE)
        self.deadlines["retention"] = self._deadline(
            "retention", d.retention, "order completed; the unpaid retention is recorded as the buyer's debt"
        )
        self._event("retention_due", Actor(role=Role.SYSTEM, name="timer"),
                    f"retention due after acceptance: {format_amount(part.due, self.inp.currency)}")
        await self._sync()
        if await self._wait(lambda: part.due == 0, "retention"):
            await self._settle("retention")
        else:
            self._event("retention_overdue", Actor(role=Role.SYSTEM, name="timer"),
                        f"retention of {format_amount(part.due, self.inp.currency)} not paid in time: "
                        "recorded as the buyer's debt to the seller")
            if part.paid:
                await self._settle("retention")

    async def _credit_repayment(self) -> None:
        d = self.policy.deadlines
        system = Actor(role=Role.SYSTEM, name="timer")
        ref = CreditRef(order_id=self.inp.order_id, buyer=self.inp.buyer)
        if not await self._wait(lambda: self.credit_outstanding == 0, "credit_settlement"):
            await workflow.execute_activity_method(CreditActivities.mark_credit_overdue, ref, **DB_WRITE)
            self._event("credit_overdue", system, "repayment overdue: the buyer's credit is frozen for new orders")
            await self._sync()
            reminders = 0
            while self.credit_outstanding > 0:
                timeout = d.credit_reminder_interval if reminders < MAX_CREDIT_REMINDERS else None
                try:
                    await self._block(lambda: self.credit_outstanding == 0, timeout=timeout)
                except asyncio.TimeoutError:
                    reminders += 1
                    self._event("credit_reminder", system,
                                f"reminder {reminders}: {format_amount(self.credit_outstanding, self.inp.currency)} overdue")
                    await self._sync()
        await workflow.execute_activity_method(CreditActivities.release_credit, ref, **DB_WRITE)
        self._event("credit_repaid", system, "credit repaid in full; credit line released")
        await self._sync()

    async def _until_closed(self) -> None:
        await self._block(lambda: self.closed)

    # ------------------------------------------------------------- helpers

    def _has_retention(self) -> bool:
        return self.inp.plan.kind is PlanKind.STAGED and len(self.parts) >= 3

    def _deadline(self, name: str, duration: timedelta, action: str) -> DeadlineView:
        return DeadlineView(name=name, due_at=workflow.now() + duration, default_action=action)

    async def _block(self, cond: Callable[[], bool], timeout: timedelta | None = None) -> None:
        """The run loop's only way to wait. The condition is registered while it
        waits, so update handlers can tell when the loop has caught up."""
        self._waiting.append(cond)
        self._running -= 1
        try:
            await workflow.wait_condition(cond, timeout=timeout)
        finally:
            self._running += 1
            self._waiting.remove(cond)

    async def _caught_up(self) -> None:
        """Wait until the run loop has reacted to what an update just changed, so
        the update's result shows the order's new stage."""
        await workflow.wait_condition(
            lambda: self._lifecycle_done or (self._settled() and self._sync_done >= self._sync_wanted)
        )

    def _settled(self) -> bool:
        """The run loop (and every job of it) waits on a condition that does not
        hold yet: nothing more happens until an update or a timer arrives."""
        return self._running == 0 and not any(c() for c in self._waiting)

    async def _wait(self, cond: Callable[[], bool], deadline: str | None) -> bool:
        """Wait for `cond`; False on timeout or when the order is closing."""
        def done() -> bool:
            return cond() or self.closing or self.closed

        if deadline is None:
            await self._block(done)
        elif not await self._until_due(done, deadline):
            return False
        return not (self.closing or self.closed)

    async def _until_due(self, cond: Callable[[], bool], deadline: str) -> bool:
        """Wait for `cond` until the named deadline falls due: True if `cond` came
        first. Ops may move the deadline meanwhile (`override_deadline`); the wait
        then starts over against the new due time. Without an override this is one
        timer, exactly as before overrides existed, so old histories replay."""
        try:
            while True:
                due = self.deadlines[deadline].due_at

                def moved(due: datetime = due) -> bool:
                    view = self.deadlines.get(deadline)
                    return view is not None and view.due_at != due

                try:
                    await self._block(lambda: cond() or moved(), timeout=max(due - workflow.now(), timedelta(0)))
                except asyncio.TimeoutError:
                    return False
                if cond():
                    return True
        finally:
            view = self.deadlines.pop(deadline, None)
            if view is not None:
                self.last_due[deadline] = view.due_at

    def _set_stage(self, stage: Stage) -> None:
        if stage is self.stage:
            return
        self.stage = stage
        self.updated_at = workflow.now()
        workflow.upsert_search_attributes([sa.STAGE.value_set(stage.value)])
        self._event("stage", Actor(role=Role.SYSTEM, name="workflow"), f"stage → {stage.value}")

    def _event(self, kind: str, actor: Actor | str, message: str) -> None:
        self.updated_at = workflow.now()
        self.timeline.append(
            TimelineEntry(seq=len(self.timeline) + 1, at=self.updated_at, kind=kind,
                          actor=str(actor), message=message)
        )

    def _post(self, kind: str, legs: list[tuple[Account, int]], memo: str, key: str | None = None) -> None:
        legs = [(a, v) for a, v in legs if v != 0]
        if not legs:
            return
        self._txn_seq += 1
        txn = Transaction(
            order_id=self.inp.order_id,
            key=f"{self.inp.order_id}:{key or f'{kind}:{self._txn_seq}'}",
            kind=kind,
            currency=self.inp.currency,
            legs=tuple(Leg(account=a, amount=v) for a, v in legs),
            memo=memo,
            at=workflow.now(),
        )
        for leg in txn.legs:
            self.balances[leg.account] += leg.amount
            if leg.account is Account.BUYER:
                if leg.amount < 0:
                    self.paid -= leg.amount
                else:
                    self.refunded += leg.amount
        if self.balances[Account.ESCROW] < 0:
            raise ApplicationError(f"escrow would go negative on {txn.key}", type="LedgerError", non_retryable=True)
        self.txns.append(txn)

    async def _sync(self) -> None:
        """Post pending transactions, then bring the read model up to date; return
        once that is done.

        Orders started before the "sync-batched-v1" patch flush on every call. Newer
        ones hand the request to one flusher task, which waits until the run loop
        has settled and then serves every request made so far with one pass: an
        update's handler and the run loop's reaction to it share one projection.
        An update's caller still gets its answer only once the read model shows it."""
        if not self._batched:
            return await self._flush()
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_forever())
        self._sync_wanted += 1
        if _IN_RUN_LOOP.get():
            # The run loop does not wait: its next changes join the same pass, and
            # whoever needs the read model current (an update's caller through
            # _caught_up, the end of run()) waits for every request.
            return
        await self._synced(self._sync_wanted)

    async def _synced(self, wanted: int) -> None:
        await workflow.wait_condition(lambda: self._sync_done >= wanted or self._sync_error is not None)
        if self._sync_done < wanted and self._sync_error is not None:
            raise self._sync_error

    async def _flush_forever(self) -> None:
        while True:
            # Wait until the run loop has settled too, so its reaction to an update
            # (a new stage, a deadline) goes out with the update's own changes.
            await workflow.wait_condition(lambda: self._sync_wanted > self._sync_done and self._settled())
            target = self._sync_wanted
            try:
                await self._flush()
            except Exception as err:  # handed to every waiting caller
                self._sync_error = err
                raise
            self._sync_done = target

    async def _flush(self) -> None:
        async with self._sync_lock:
            while self._posted < len(self.txns):
                await workflow.execute_activity_method(
                    LedgerActivities.post_transaction, self.txns[self._posted], **DB_WRITE
                )
                self._posted += 1
            events = self.timeline[self._projected_events:]
            decisions = self.decisions[self._projected_decisions:]
            upto_events, upto_decisions = len(self.timeline), len(self.decisions)
            await workflow.execute_activity_method(
                StoreActivities.project_order,
                ProjectInput(projection=self._projection(), timeline=events, decisions=decisions),
                **DB_WRITE,
            )
            self._projected_events, self._projected_decisions = upto_events, upto_decisions

    def _projection(self) -> OrderProjection:
        return OrderProjection(
            order_id=self.inp.order_id, stage=self.stage, title=self.inp.title, buyer=self.inp.buyer,
            seller=self.inp.seller, payment_plan=self.inp.plan.label(), price=self.inp.price,
            currency=self.inp.currency, policy_name=self.policy.name, policy_version=self.policy.version,
            paid=self.paid, refunded=self.refunded, released_to_seller=self.balances[Account.SELLER],
            created_at=self.created_at, updated_at=self.updated_at,
        )

    def _next_decision_id(self, kind: str) -> str:
        self._decision_seq += 1
        return f"{self.inp.order_id}:{kind}:{self._decision_seq}"

    def _days_late(self, at: datetime) -> int:
        if self.promised_at is None or at <= self.promised_at:
            return 0
        return math.ceil((at - self.promised_at) / timedelta(days=1))

    def costs_incurred(self) -> int:
        return sum(m.cost for m in self.milestones)

    def _record_decision(self, explanation: dict) -> None:
        self.decisions.append(explanation)

    async def _settle(self, label: str) -> None:
        """Release what escrow holds: to the seller, the platform fee, and any
        late penalty back to the buyer, as the policy decides."""
        escrow = self.balances[Account.ESCROW]
        if escrow == 0:
            return
        days_late = self._days_late(self.shipped_at) if label == "settlement" else 0
        facts = SettlementFacts(
            price=self.inp.price, currency=self.inp.currency, escrow_balance=escrow,
            days_late=days_late, payment_plan=self.inp.plan.kind.value, as_of=workflow.now(),
        )
        decision = await workflow.execute_local_activity(
            settlement_decision,
            SettlementRequest(policy=self.inp.policy, facts=facts, decision_id=self._next_decision_id(label)),
            **RULES,
        )
        self._record_decision(decision.explanation.model_dump(mode="json"))
        self.late_penalty += decision.late_penalty_to_buyer
        self._post(
            label,
            [
                (Account.ESCROW, -escrow),
                (Account.SELLER, decision.to_seller),
                (Account.PLATFORM_FEE, decision.platform_fee),
                (Account.BUYER, decision.late_penalty_to_buyer),
            ],
            decision.explanation.summary,
            key=label,
        )
        self._event(
            label, "system:rules",
            f"escrow released: {format_amount(decision.to_seller, self.inp.currency)} to seller, "
            f"fee {format_amount(decision.platform_fee, self.inp.currency)}"
            + (f", late penalty {format_amount(decision.late_penalty_to_buyer, self.inp.currency)} to buyer"
               if decision.late_penalty_to_buyer else ""),
        )
        await self._sync()

    def cancellation_facts(self, by: Role, reason: str, at: datetime | None = None) -> CancellationFacts:
        at = at or workflow.now()
        return CancellationFacts(
            stage=self.stage.value,
            cancelled_by="system" if by in (Role.SYSTEM, Role.OPS, Role.CARRIER) else by.value,
            reason=reason,
            price=self.inp.price,
            currency=self.inp.currency,
            payment_plan=self.inp.plan.kind.value,
            escrow_balance=self.balances[Account.ESCROW],
            paid_total=self.paid,
            costs_incurred=self.costs_incurred(),
            costs_by_milestone={m: sum(r.cost for r in self.milestones if r.milestone == m)
                                for m in ("materials", "fabrication", "finishing")},
            salvage_value=self.salvage_value,
            days_late=self._days_late(at),
            earnest_deposit=self._earnest_amount(),
            as_of=at,
        )

    def _earnest_amount(self) -> int:
        """The earnest part (定金) of the deposit actually paid: capped by the
        policy (20% of the price in PRC law)."""
        if not self.inp.earnest_deposit or not self.parts:
            return 0
        cap = self.inp.price * self.policy.payment_plans.earnest_deposit_max_bps // 10_000
        return min(self.parts[0].paid, cap)

    def _buyer_reason(self, by: Role, at: datetime | None = None) -> str:
        at = at or workflow.now()
        if by is Role.BUYER:
            if self._days_late(at) > 0 and self.promised_at is not None and (
                at >= self.promised_at + self.policy.deadlines.production_grace
            ) and self.stage in (Stage.IN_PRODUCTION, Stage.QUALITY_CHECK):
                return "late_delivery"
            return "buyer_request"
        if by is Role.SELLER and self._rework_limit_reached():
            return "qc_rework_limit"
        return "seller_request"

    def _rework_limit_reached(self) -> bool:
        return self.stage is Stage.QUALITY_CHECK and self.qc_failures > self.policy.limits.qc_max_rework

    async def _cancel(self, actor: Actor, reason: str, message: str) -> None:
        self.closing = True
        # A seller giving up after the rework limit is the quality process ending
        # the order, not the seller walking away: the policy decides it as such.
        by = Role.SYSTEM if reason == "qc_rework_limit" else actor.role
        facts = self.cancellation_facts(by, reason)
        decision = await workflow.execute_local_activity(
            cancellation_decision,
            CancellationRequest(policy=self.inp.policy, facts=facts,
                                decision_id=self._next_decision_id("cancellation")),
            **RULES,
        )
        self._record_decision(decision.explanation.model_dump(mode="json"))
        self._post(
            "cancellation",
            [
                (Account.ESCROW, -(decision.refund_to_buyer + decision.to_seller + decision.platform_fee)),
                (Account.BUYER, decision.refund_to_buyer),
                (Account.SELLER, decision.to_seller),
                (Account.PLATFORM_FEE, decision.platform_fee),
            ],
            decision.explanation.summary,
            key="cancellation",
        )
        if decision.seller_pays_buyer:
            self._post("seller_compensation", [(Account.SELLER, -decision.seller_pays_buyer),
                                               (Account.BUYER, decision.seller_pays_buyer)],
                       "seller compensates the buyer", key="seller-compensation")
        self.deadlines.clear()
        self._event("cancelled", actor, f"{message} ({reason}); {decision.explanation.summary}")
        self._set_stage(Stage.CANCELLED)
        await self._sync()
        if self.inp.plan.kind is PlanKind.CREDIT and self.credit_outstanding:
            self.credit_outstanding = 0
            await workflow.execute_activity_method(
                CreditActivities.release_credit,
                CreditRef(order_id=self.inp.order_id, buyer=self.inp.buyer), **DB_WRITE,
            )
        self.closed = True

    # ------------------------------------------------------------- queries

    @workflow.query
    def status(self) -> OrderView:
        part = self._current_part()
        return OrderView(
            order_id=self.inp.order_id,
            stage=self.stage,
            title=self.inp.title,
            buyer=self.inp.buyer,
            seller=self.inp.seller,
            policy=PolicyRef(name=self.policy.name, version=self.policy.version,
                             sha256=self.inp.pin.get("sha256", "")),
            payment_plan=self.inp.plan.label(),
            price=self.inp.price,
            currency=self.inp.currency,
            paid=self.paid,
            refunded=self.refunded,
            released_to_seller=self.balances[Account.SELLER],
            platform_fee=self.balances[Account.PLATFORM_FEE],
            escrow=self.balances[Account.ESCROW],
            costs_incurred=self.costs_incurred(),
            salvage_value=self.salvage_value,
            late_penalty=self.late_penalty,
            credit_outstanding=self.credit_outstanding,
            amount_due=self._amount_due(),
            next_step=self._next_step(part),
            promised_at=self.promised_at,
            deadlines=sorted(self.deadlines.values(), key=lambda v: v.due_at),
            milestones=self.milestones,
            payments=self.payments,
            shipment=self.shipment,
            qc_failures=self.qc_failures,
            timeline=self.timeline,
            decisions=[decision_entry(d) for d in self.decisions],
            created_at=self.created_at,
            updated_at=self.updated_at,
            cases=[c.view() for c in self.cases],
            open_case=self.case.view() if self.case is not None else None,
            repair_rounds=self.repair_rounds,
        )

    @workflow.query
    def quote_facts(self, by: Role, as_of: datetime | None = None) -> CancellationFacts:
        """The facts a cancellation by `by` would be decided on at `as_of`.

        A query's workflow.now() is the time of the last workflow task, which on
        an idle order can be days old; the caller passes its own clock (never
        earlier than the workflow's)."""
        self._require_cancellable(Actor(role=by, name="quote"))
        at = max(as_of, workflow.now()) if as_of is not None else workflow.now()
        reason = self._buyer_reason(by, at)
        return self.cancellation_facts(Role.SYSTEM if reason == "qc_rework_limit" else by, reason, at)

    @workflow.query
    def pinned_policy(self) -> dict:
        return self.inp.policy

    def _current_part(self) -> _Part | None:
        if self.stage in (Stage.AWAITING_DEPOSIT, Stage.AWAITING_BALANCE) and self.part_index < len(self.parts):
            part = self.parts[self.part_index]
            # Retention is due only once the buyer has accepted the goods.
            if part.name == "retention" and self.confirmed_by is None:
                return None
            return part
        return None

    def _amount_due(self) -> int:
        part = self._current_part()
        if part is not None:
            return part.due
        return self.credit_outstanding if self.stage is Stage.COMPLETED else 0

    def _next_step(self, part: _Part | None) -> str:
        s = self.stage
        if s is Stage.AWAITING_ACCEPTANCE:
            return "seller accepts the order"
        if part is not None:
            return f"buyer pays the {part.name}"
        if s is Stage.IN_PRODUCTION:
            return "seller records milestones and finishes production"
        if s is Stage.QUALITY_CHECK:
            return "seller ships the goods" if self.qc_passed else "seller records the quality check"
        if s is Stage.AWAITING_BALANCE:
            return "seller ships the goods"
        if s is Stage.SHIPPED:
            return "carrier records delivery"
        if s is Stage.DELIVERED:
            if self.inp.plan.kind is PlanKind.CASH_ON_DELIVERY:
                return "carrier remits the cash collected"
            return "buyer inspects and confirms receipt"
        if s is Stage.COMPLETED and self.credit_outstanding:
            return "buyer repays the credit"
        return "none"

    # ------------------------------------------------------------- updates

    def _require(self, actor: Actor, *roles: Role) -> None:
        if actor.role not in roles:
            allowed = " or ".join(r.value for r in roles)
            raise ValueError(f"only the {allowed} may do this, not {actor.role.value}")
        # Names compare in NFC, as the CLI and imports store them, so an API caller
        # typing "José" with a combining accent is still this order's buyer.
        if actor.role is Role.BUYER and not _same_name(actor.name, self.inp.buyer):
            raise ValueError(f"{actor} is not this order's buyer ({self.inp.buyer})")
        if actor.role is Role.SELLER and not _same_name(actor.name, self.inp.seller):
            raise ValueError(f"{actor} is not this order's seller ({self.inp.seller})")

    def _require_stage(self, *stages: Stage) -> None:
        if self.closing or self.stage not in stages:
            allowed = ", ".join(s.value for s in stages)
            raise ValueError(f"not allowed in stage {self.stage.value} (allowed in: {allowed})")

    @workflow.update
    async def accept(self, inp: ActorInput) -> ActionResult:
        self.accepted = True
        self._event("accepted", inp.actor, "seller accepted the order")
        await self._sync()
        await self._caught_up()
        return self._result("accepted")

    @accept.validator
    def _validate_accept(self, inp: ActorInput) -> None:
        self._require(inp.actor, Role.SELLER)
        self._require_stage(Stage.AWAITING_ACCEPTANCE)
        if self.accepted:
            raise ValueError("the order is already accepted")

    @workflow.update
    async def pay(self, inp: PayInput) -> ActionResult:
        self.references.add(inp.reference)
        cur = self.inp.currency
        if self.stage is Stage.COMPLETED:  # account-period repayment
            amount = min(inp.amount, self.credit_outstanding)
            self.credit_outstanding -= amount
            self._post("credit_repayment", [(Account.BUYER, -amount), (Account.CREDIT_LINE, amount)],
                       f"credit repayment {inp.reference}", key=f"pay:{inp.reference}")
            self.payments.append(PaymentRecord(reference=inp.reference, amount=amount, method=inp.method,
                                               actor=str(inp.actor), at=workflow.now(), part="credit"))
            self._event("credit_repayment", inp.actor, f"repaid {format_amount(amount, cur)} ({inp.reference})")
            await self._sync()
            await self._caught_up()
            return self._result(f"repaid {format_amount(amount, cur)}; {format_amount(self.credit_outstanding, cur)} outstanding")
        part = self._current_part()
        applied = min(inp.amount, part.due)
        excess = inp.amount - applied
        part.paid += applied
        self._post("payment", [(Account.BUYER, -inp.amount), (Account.ESCROW, inp.amount)],
                   f"{part.name} payment {inp.reference} via {inp.method}", key=f"pay:{inp.reference}")
        self.payments.append(PaymentRecord(reference=inp.reference, amount=inp.amount, method=inp.method,
                                           actor=str(inp.actor), at=workflow.now(), part=part.name))
        message = f"paid {format_amount(inp.amount, cur)} toward the {part.name} ({inp.reference})"
        if excess:
            # Over-payment by bank transfer: the excess goes straight back.
            self._post("overpayment_refund", [(Account.ESCROW, -excess), (Account.BUYER, excess)],
                       f"over-payment on {inp.reference} returned", key=f"overpay:{inp.reference}")
            message += f"; over-payment of {format_amount(excess, cur)} refunded"
        elif part.due:
            message += f"; {format_amount(part.due, cur)} still due"
        self._event("payment", inp.actor, message)
        await self._sync()
        await self._caught_up()
        return self._result(message)

    @pay.validator
    def _validate_pay(self, inp: PayInput) -> None:
        bank = self.inp.plan.kind is PlanKind.COLLECTION_ACCOUNT
        if inp.method == "bank_transfer":
            self._require(inp.actor, Role.SYSTEM, Role.OPS)
            if not bank:
                raise ValueError("bank transfers apply only to collection-account orders")
        else:
            self._require(inp.actor, Role.BUYER)
        if inp.currency != self.inp.currency:
            raise ValueError(f"currency {inp.currency} does not match the order's {self.inp.currency}")
        if inp.reference in self.references:
            raise ValueError(f"duplicate payment reference {inp.reference!r}: already recorded")
        if self.stage is Stage.COMPLETED and self.credit_outstanding:
            if inp.amount > self.credit_outstanding:
                raise ValueError(f"amount {inp.amount} exceeds the credit outstanding ({self.credit_outstanding})")
            return
        part = self._current_part()
        if part is None or part.due == 0 or self.closing:
            raise ValueError(f"nothing is due in stage {self.stage.value}")
        if inp.amount > part.due and inp.method != "bank_transfer":
            raise ValueError(f"amount {inp.amount} is more than the {part.name} due ({part.due})")

    @workflow.update
    async def milestone(self, inp: MilestoneInput) -> ActionResult:
        self.milestones.append(MilestoneRecord(milestone=inp.milestone, cost=inp.cost, note=inp.note,
                                               at=workflow.now(), actor=str(inp.actor)))
        self._event("milestone", inp.actor,
                    f"{inp.milestone} done, cost {format_amount(inp.cost, self.inp.currency)}"
                    + (f": {inp.note}" if inp.note else ""))
        await self._sync()
        await self._caught_up()
        return self._result(f"{inp.milestone} recorded; costs incurred {format_amount(self.costs_incurred(), self.inp.currency)}")

    @milestone.validator
    def _validate_milestone(self, inp: MilestoneInput) -> None:
        self._require(inp.actor, Role.SELLER)
        self._require_stage(Stage.IN_PRODUCTION)
        if self.costs_incurred() + inp.cost > self.inp.price * 10:
            raise ValueError("costs incurred would exceed ten times the price: check the amount")

    @workflow.update
    async def salvage(self, inp: SalvageInput) -> ActionResult:
        self.salvage_value = inp.value
        self._event("salvage", inp.actor, f"salvage value set to {format_amount(inp.value, self.inp.currency)}")
        await self._sync()
        await self._caught_up()
        return self._result("salvage value recorded")

    @salvage.validator
    def _validate_salvage(self, inp: SalvageInput) -> None:
        self._require(inp.actor, Role.SELLER)
        self._require_stage(Stage.IN_PRODUCTION, Stage.QUALITY_CHECK, Stage.AWAITING_BALANCE)
        if inp.value > self.inp.price:
            raise ValueError("salvage value cannot exceed the price")

    @workflow.update
    async def finish_production(self, inp: ActorInput) -> ActionResult:
        self.production_done = True
        self._event("production_finished", inp.actor, "production finished; factory quality check")
        self._set_stage(Stage.QUALITY_CHECK)
        await self._sync()
        await self._caught_up()
        return self._result("ready for quality check")

    @finish_production.validator
    def _validate_finish(self, inp: ActorInput) -> None:
        self._require(inp.actor, Role.SELLER)
        self._require_stage(Stage.IN_PRODUCTION)

    @workflow.update
    async def quality_check(self, inp: QcInput) -> ActionResult:
        if inp.passed:
            self.qc_passed = True
            self._event("qc_passed", inp.actor, "quality check passed" + (f": {inp.note}" if inp.note else ""))
            message = "quality check passed"
        else:
            self.qc_failures += 1
            limit = self.policy.limits.qc_max_rework
            if self.qc_failures > limit:
                message = (f"quality check failed {self.qc_failures} times (rework limit {limit}): "
                           "the seller may cancel, or rework and check again")
            else:
                message = f"quality check failed ({self.qc_failures}/{limit} reworks): back to production"
            self._event("qc_failed", inp.actor, message + (f": {inp.note}" if inp.note else ""))
            if self.qc_failures <= limit:
                self._set_stage(Stage.IN_PRODUCTION)
        await self._sync()
        await self._caught_up()
        return self._result(message)

    @quality_check.validator
    def _validate_qc(self, inp: QcInput) -> None:
        self._require(inp.actor, Role.SELLER)
        self._require_stage(Stage.QUALITY_CHECK)
        if self.qc_passed:
            raise ValueError("the quality check has already passed")

    @workflow.update
    async def ship(self, inp: ShipInput) -> ActionResult:
        self.shipment = {"carrier": inp.carrier, "tracking": inp.tracking}
        self.shipped_at = workflow.now()
        self.deadlines.pop("promised_delivery", None)
        if self.inp.plan.kind is PlanKind.CREDIT:
            # Goods ship on credit: the buyer's credit line funds escrow.
            self._post("credit_advance", [(Account.CREDIT_LINE, -self.inp.price), (Account.ESCROW, self.inp.price)],
                       "account-period credit funds escrow at shipment", key="credit-advance")
        late = self._days_late(self.shipped_at)
        self._event("shipped", inp.actor, f"shipped by {inp.carrier}, tracking {inp.tracking}"
                    + (f" ({late} day(s) after the promised date)" if late else ""))
        self._set_stage(Stage.SHIPPED)
        await self._sync()
        await self._caught_up()
        return self._result("shipped")

    @ship.validator
    def _validate_ship(self, inp: ShipInput) -> None:
        self._require(inp.actor, Role.SELLER)
        self._require_stage(Stage.QUALITY_CHECK, Stage.AWAITING_BALANCE)
        if not self.qc_passed:
            raise ValueError("the goods have not passed the quality check")
        part = self._current_part()
        if part is not None and part.due:
            raise ValueError(f"the {part.name} ({part.due}) must be paid before shipping")

    @workflow.update
    async def deliver(self, inp: DeliverInput) -> ActionResult:
        cur = self.inp.currency
        if inp.collected is not None:
            self._post("cod_collection", [(Account.BUYER, -inp.collected), (Account.CARRIER_COD, inp.collected)],
                       f"cash collected at the door {inp.reference or ''}", key="cod-collection")
            self.payments.append(PaymentRecord(reference=inp.reference or "cod", amount=inp.collected,
                                               method="cash_on_delivery", actor=str(inp.actor),
                                               at=workflow.now(), part="cod"))
        self.delivered = True
        self.deliveries += 1
        self.delivered_at = workflow.now()
        self._event("delivered", inp.actor, "delivered" + (
            f"; buyer inspected and paid {format_amount(inp.collected, cur)} to the carrier" if inp.collected else ""))
        self._set_stage(Stage.DELIVERED)
        await self._sync()
        await self._caught_up()
        return self._result("delivered")

    @deliver.validator
    def _validate_deliver(self, inp: DeliverInput) -> None:
        self._require(inp.actor, Role.CARRIER)
        self._require_stage(Stage.SHIPPED)
        if self.inp.plan.kind is PlanKind.CASH_ON_DELIVERY and self.deliveries == 0:
            if inp.collected != self.inp.price:
                raise ValueError(f"cash on delivery: the carrier must collect exactly {self.inp.price}")
        elif inp.collected is not None:
            raise ValueError("nothing is collected at the door for this payment plan")

    @workflow.update
    async def refuse(self, inp: ReasonInput) -> ActionResult:
        self.refused = True
        self._event("refused", inp.actor, "buyer refused the goods at the door" + (f": {inp.reason}" if inp.reason else ""))
        await self._caught_up()
        return self._result("refused; goods return to the seller")

    @refuse.validator
    def _validate_refuse(self, inp: ReasonInput) -> None:
        self._require(inp.actor, Role.BUYER, Role.CARRIER)
        self._require_stage(Stage.SHIPPED)
        if self.inp.plan.kind is not PlanKind.CASH_ON_DELIVERY:
            raise ValueError("refusal at the door applies to cash-on-delivery orders; open a return instead")

    @workflow.update
    async def remit(self, inp: RemitInput) -> ActionResult:
        self.cod_remitted = True
        self._post("cod_remittance", [(Account.CARRIER_COD, -inp.amount), (Account.ESCROW, inp.amount)],
                   f"carrier remitted cash collected ({inp.reference})", key="cod-remittance")
        self._event("cod_remitted", inp.actor, f"carrier remitted {format_amount(inp.amount, self.inp.currency)}")
        await self._sync()
        await self._caught_up()
        return self._result("remitted")

    @remit.validator
    def _validate_remit(self, inp: RemitInput) -> None:
        self._require(inp.actor, Role.CARRIER)
        self._require_stage(Stage.DELIVERED)
        if self.inp.plan.kind is not PlanKind.CASH_ON_DELIVERY or self.cod_remitted:
            raise ValueError("there is no cash collection to remit")
        if inp.amount != self.balances[Account.CARRIER_COD]:
            raise ValueError(f"remit exactly the {self.balances[Account.CARRIER_COD]} collected")

    @workflow.update
    async def confirm(self, inp: ActorInput) -> ActionResult:
        self.confirmed_by = str(inp.actor)
        self._event("confirmed", inp.actor, "buyer confirmed receipt")
        await self._caught_up()
        return self._result("receipt confirmed; escrow released")

    @confirm.validator
    def _validate_confirm(self, inp: ActorInput) -> None:
        self._require(inp.actor, Role.BUYER)
        self._require_stage(Stage.DELIVERED)
        if self.inp.plan.kind is PlanKind.CASH_ON_DELIVERY:
            raise ValueError("cash-on-delivery goods were inspected at the door; nothing to confirm")
        if self.confirmed_by is not None:
            raise ValueError("receipt is already confirmed")
        if self.case is not None:
            raise ValueError(f"case {self.case.number} is open; it must close first")

    @workflow.update
    async def cancel(self, inp: CancelInput) -> ActionResult:
        reason = self._buyer_reason(inp.actor.role)
        await self._cancel(inp.actor, reason, f"cancelled by {inp.actor.role.value}"
                           + (f": {inp.reason}" if inp.reason else ""))
        return self._result(self.timeline[-2].message if len(self.timeline) > 1 else "cancelled")

    @cancel.validator
    def _validate_cancel(self, inp: CancelInput) -> None:
        self._require(inp.actor, Role.BUYER, Role.SELLER)
        self._require_cancellable(inp.actor)

    def _require_cancellable(self, actor: Actor) -> None:
        self._require_stage(*sorted(PRE_DELIVERY_STAGES - {Stage.SHIPPED}))

    # ------------------------------------------------------- after-sales updates

    def _require_party(self, actor: Actor) -> str:
        self._require(actor, Role.BUYER, Role.SELLER)
        return actor.role.value

    def _require_case(self, *states: str) -> _Case:
        case = self.case
        if case is None or case.outcome is not None:
            raise ValueError("there is no open case")
        if states and case.state not in states:
            raise ValueError(f"case {case.number} is {case.state}; allowed when {', '.join(states)}")
        return case

    @workflow.update
    async def request_return(self, inp: ReturnRequestInput) -> ActionResult:
        self.case = _Case(len(self.cases) + 1, inp, workflow.now())
        self.cases.append(self.case)
        await self._caught_up()
        return self._result(f"case {self.case.number if self.case else len(self.cases)} opened: {inp.reason}, "
                            f"wants {inp.remedy}" if self._case_open() else self.timeline[-1].message)

    @request_return.validator
    def _validate_request_return(self, inp: ReturnRequestInput) -> None:
        self._require(inp.actor, Role.BUYER)
        if self.case is not None:
            raise ValueError(f"case {self.case.number} is already open")
        if self.stage is Stage.DELIVERED:
            if self.inp.plan.kind is PlanKind.CASH_ON_DELIVERY and "aftersales_window" not in self.deadlines:
                raise ValueError("cash-on-delivery goods were inspected at the door; returns open after completion")
            if self.confirmed_by is not None:
                raise ValueError("receipt is already confirmed; wait for completion")
        elif self.stage is Stage.COMPLETED:
            if "aftersales_window" not in self.deadlines:
                raise ValueError("the after-sales window has closed")
        else:
            raise ValueError(f"returns open from delivered or completed, not {self.stage.value}")
        if not self.aftersales:
            raise ValueError("this order predates after-sales support")
        if inp.reason == "changed_mind" and inp.remedy == "repair":
            raise ValueError("a change of mind cannot ask for a repair")
        if self._refundable() <= 0:
            raise ValueError("nothing paid for this order is left to refund")
        if len(self.cases) >= self.policy.limits.max_cases_per_order:
            raise ValueError(f"this order has had the maximum of {self.policy.limits.max_cases_per_order} cases")

    @workflow.update
    async def respond_return(self, inp: ReturnResponseInput) -> ActionResult:
        case = self.case
        cur = self.inp.currency
        if inp.action == "approve":
            case.state = "approved"
            message = "seller approved the return"
        elif inp.action == "reject":
            case.state = "rejected"
            message = f"seller rejected the case: {inp.reason or 'no reason given'}; the buyer may open a dispute"
        elif inp.action == "offer_partial":
            case.state, case.offer = "offered_partial", inp.amount
            message = f"seller offers a partial refund of {format_amount(inp.amount, cur)} (buyer keeps the goods)"
        else:
            case.state = "offered_repair"
            message = "seller offers to repair the goods"
        self._event("return_response", inp.actor, message)
        await self._caught_up()
        return self._result(message)

    @respond_return.validator
    def _validate_respond_return(self, inp: ReturnResponseInput) -> None:
        self._require(inp.actor, Role.SELLER)
        case = self._require_case("requested")
        if inp.action == "offer_partial" and inp.amount >= self._refundable():
            raise ValueError(f"a partial refund must be less than the {self._refundable()} refundable")
        if inp.action == "offer_repair" and not case.repair_allowed:
            raise ValueError("the repair limit is reached: the buyer may demand a refund")

    @workflow.update
    async def answer_offer(self, inp: OfferAnswerInput) -> ActionResult:
        case = self.case
        if case.state == "offered_partial":
            case.state = "partial_accepted" if inp.accept else "rejected"
        else:
            if inp.accept:
                case.state, case.remedy = "approved", "repair"
            else:
                case.state = "rejected"
        message = ("buyer accepted the offer" if inp.accept
                   else "buyer declined the offer; either party may open a dispute")
        self._event("offer_answer", inp.actor, message)
        await self._caught_up()
        return self._result(message)

    @answer_offer.validator
    def _validate_answer_offer(self, inp: OfferAnswerInput) -> None:
        self._require(inp.actor, Role.BUYER)
        self._require_case("offered_partial", "offered_repair")

    @workflow.update
    async def ship_return(self, inp: ShipReturnInput) -> ActionResult:
        case = self.case
        case.return_shipment = {"carrier": inp.carrier, "tracking": inp.tracking}
        case.shipping_cost = inp.shipping_cost
        case.state = "in_transit"
        self._event("return_shipped", inp.actor, f"goods sent back by {inp.carrier}, tracking {inp.tracking}")
        await self._caught_up()
        return self._result("return shipped")

    @ship_return.validator
    def _validate_ship_return(self, inp: ShipReturnInput) -> None:
        self._require(inp.actor, Role.BUYER)
        self._require_case("approved")

    @workflow.update
    async def receive_return(self, inp: ReceiveReturnInput) -> ActionResult:
        case = self.case
        case.disposition = inp.disposition
        case.state = "received"
        if inp.disposition == "resell_as_stock":
            self.salvage_value = inp.salvage_value
        self._event("return_received", inp.actor, f"returned goods received: {inp.disposition.replace('_', ' ')}"
                    + (f", salvage value {format_amount(inp.salvage_value, self.inp.currency)}"
                       if inp.salvage_value else "") + (f": {inp.note}" if inp.note else ""))
        await self._caught_up()
        return self._result("return received")

    @receive_return.validator
    def _validate_receive_return(self, inp: ReceiveReturnInput) -> None:
        self._require(inp.actor, Role.SELLER)
        case = self._require_case("in_transit")
        if case.remedy == "repair" and inp.disposition != "rework":
            raise ValueError("goods sent for repair can only be reworked")
        if inp.disposition != "resell_as_stock" and inp.salvage_value:
            raise ValueError("a salvage value goes with resell_as_stock only")
        if inp.salvage_value > self.inp.price:
            raise ValueError("salvage value cannot exceed the price")

    @workflow.update
    async def reship(self, inp: ShipInput) -> ActionResult:
        self.shipment = {"carrier": inp.carrier, "tracking": inp.tracking}
        self.case.state = "reshipped"
        self._event("reshipped", inp.actor, f"repaired goods shipped by {inp.carrier}, tracking {inp.tracking}")
        self._set_stage(Stage.SHIPPED)
        await self._caught_up()
        return self._result("repaired goods shipped")

    @reship.validator
    def _validate_reship(self, inp: ShipInput) -> None:
        self._require(inp.actor, Role.SELLER)
        case = self._require_case("received")
        if case.remedy != "repair":
            raise ValueError("only a repair case reships goods")

    @workflow.update
    async def dispute(self, inp: DisputeInput) -> ActionResult:
        case = self.case
        case.state = "disputed"
        case.dispute_opened_by = inp.actor.role.value
        case.claim = inp.claim if inp.claim is not None else case.claim
        self._event("dispute_opened", inp.actor, f"dispute opened by the {inp.actor.role.value}"
                    + (f", claiming {format_amount(inp.claim, self.inp.currency)}" if inp.claim else "")
                    + (f": {inp.statement}" if inp.statement else ""))
        await self._caught_up()
        return self._result("dispute opened; both parties may submit evidence")

    @dispute.validator
    def _validate_dispute(self, inp: DisputeInput) -> None:
        self._require_party(inp.actor)
        case = self._require_case("rejected", "approved", "in_transit", "offered_partial", "offered_repair",
                                  "received")
        if inp.claim is not None and inp.claim > self._refundable():
            raise ValueError(f"the claim exceeds the {self._refundable()} refundable")
        if inp.actor.role is Role.SELLER and inp.claim is not None:
            raise ValueError("only the buyer claims a refund")
        if case.state == "received" and case.remedy != "repair":
            raise ValueError("the refund is already on its way")

    @workflow.update
    async def evidence(self, inp: EvidenceInput) -> ActionResult:
        case = self.case
        party = inp.actor.role.value
        now = workflow.now()
        case.evidence.extend(EvidenceItem(party=party, item=item, at=now) for item in inp.items)
        case.dispute_parties.add(party)
        if inp.final:
            case.finalised.append(party)
        self._event("evidence", inp.actor, ("evidence: " + ", ".join(inp.items) if inp.items else "no further evidence")
                    + (" (final)" if inp.final else " (staged)"))
        await self._caught_up()
        return self._result("evidence finalised" if inp.final else "evidence staged")

    @evidence.validator
    def _validate_evidence(self, inp: EvidenceInput) -> None:
        party = self._require_party(inp.actor)
        case = self._require_case("disputed")
        if party in case.finalised:
            raise ValueError(f"the {party}'s evidence is already final")
        if not inp.items and not inp.final:
            raise ValueError("no evidence given")
        if "dispute_evidence" not in self.deadlines:
            raise ValueError("the evidence deadline has passed")

    @workflow.update
    async def arbitrate(self, inp: ArbitrateInput) -> ActionResult:
        self.case.arbitration = (inp.refund, inp.note, inp.actor.name)
        self._event("arbitrated", inp.actor, f"ops decided a refund of {format_amount(inp.refund, self.inp.currency)}: "
                    f"{inp.note}")
        await self._caught_up()
        return self._result(f"arbitrated; order is {self.stage.value}")

    @arbitrate.validator
    def _validate_arbitrate(self, inp: ArbitrateInput) -> None:
        self._require(inp.actor, Role.OPS)
        case = self._require_case("disputed")
        if case.arbitration is not None:
            raise ValueError("already arbitrated")
        if inp.refund > self._refundable():
            raise ValueError(f"the refund exceeds the {self._refundable()} refundable")

    @workflow.update
    async def override_deadline(self, inp: OverrideDeadlineInput) -> ActionResult:
        view = self.deadlines[inp.deadline]
        now = workflow.now()
        if inp.now:
            due = now
            what = f"{inp.deadline} brought forward to now (was due {view.due_at:%Y-%m-%d %H:%M} UTC)"
        else:
            due = view.due_at + timedelta(seconds=inp.extend_seconds)
            what = (f"{inp.deadline} extended by {duration_words(timedelta(seconds=inp.extend_seconds))} "
                    f"to {due:%Y-%m-%d %H:%M} UTC")
        self.deadlines[inp.deadline] = view.model_copy(update={"due_at": due})
        self._event("deadline_overridden", inp.actor, f"{what}: {inp.reason}")
        await self._sync()
        await self._caught_up()
        return self._result(what)

    @override_deadline.validator
    def _validate_override_deadline(self, inp: OverrideDeadlineInput) -> None:
        self._require(inp.actor, Role.OPS)
        if self.closing or self.closed:
            raise ValueError(f"the order is {self.stage.value}: no deadline left to override")
        if inp.deadline not in MOVABLE_DEADLINES:
            raise ValueError(f"unknown or fixed deadline {inp.deadline!r}; "
                             f"movable: {', '.join(MOVABLE_DEADLINES)}")
        if inp.deadline not in self.deadlines:
            running = [n for n in self.deadlines if n in MOVABLE_DEADLINES]
            raise ValueError(f"{inp.deadline} is not running on this order"
                             + (f" (running: {', '.join(running)})" if running else " (no deadline is running)"))

    def _result(self, message: str) -> ActionResult:
        return ActionResult(order_id=self.inp.order_id, stage=self.stage, message=message)
