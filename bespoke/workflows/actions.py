"""What the parties do before and at delivery, as Temporal updates: accept, pay,
record production, quality check, ship, deliver, refuse, remit, confirm, cancel;
and ops moving a deadline.

Each update has a validator: a wrong actor, a wrong stage, a bad amount or a
per-order limit reached is refused there, before anything reaches history. A
handler changes the state, then returns once the lifecycle has reacted
(`_caught_up`), so its result shows the stage the order moved to.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from bespoke.domain.events import EventKind
    from bespoke.domain.models import (
        Account,
        ActionResult,
        ActorInput,
        CancelInput,
        DeliverInput,
        MilestoneInput,
        MilestoneRecord,
        OverrideDeadlineInput,
        PayInput,
        PaymentRecord,
        QcInput,
        ReasonInput,
        RemitInput,
        Role,
        SalvageInput,
        ShipInput,
        Stage,
    )
    from bespoke.rules.durations import duration_words
    from bespoke.workflows import cancellation
    from bespoke.workflows.core import CANCEL_IN_PROGRESS, OrderCore
    from bespoke.workflows.deadlines import MOVABLE_DEADLINES
    from bespoke.workflows.payment_plans import REPAYABLE

# A payment ops records by hand carries its reason onto the payment record and the
# timeline entry.
PAY_REASON_PATCH = "pay-reason-v1"


class Actions(OrderCore):
    # ------------------------------------------------------------ acceptance and money

    @workflow.update
    async def accept(self, inp: ActorInput) -> ActionResult:
        self.s.accepted = True
        self._event(EventKind.ACCEPTED, inp.actor, "seller accepted the order")
        await self._sync()
        await self._caught_up()
        return self._result("accepted")

    @accept.validator
    def _validate_accept(self, inp: ActorInput) -> None:
        self._require(inp.actor, Role.SELLER)
        self._require_stage(Stage.AWAITING_ACCEPTANCE)
        if self.s.accepted:
            raise ValueError("the order is already accepted")

    @workflow.update
    async def consent(self, inp: ActorInput) -> ActionResult:
        self.s.consented = True
        self._event(EventKind.CONSENTED, inp.actor, "buyer agreed to the order")
        await self._sync()
        await self._caught_up()
        return self._result("buyer agreed to the order")

    @consent.validator
    def _validate_consent(self, inp: ActorInput) -> None:
        self._require(inp.actor, Role.BUYER)
        self._require_stage(Stage.AWAITING_ACCEPTANCE)
        if self.s.consented:
            raise ValueError("the buyer has already agreed to this order")

    @workflow.update
    async def pay(self, inp: PayInput) -> ActionResult:
        s = self.s
        s.references.append(inp.reference)
        if s.stage in REPAYABLE:  # account-period repayment
            amount = min(inp.amount, s.credit_outstanding)
            s.credit_outstanding -= amount
            self.books.post("credit_repayment", [(Account.BUYER, -amount), (Account.CREDIT_LINE, amount)],
                            f"credit repayment {inp.reference}", at=workflow.now(), key=f"pay:{inp.reference}")
            s.payments.append(PaymentRecord(reference=inp.reference, amount=amount, method=inp.method,
                                            actor=str(inp.actor), at=workflow.now(), part="credit"))
            self._event(EventKind.CREDIT_REPAYMENT, inp.actor, f"repaid {self._money(amount)} ({inp.reference})")
            await self._sync()
            await self._caught_up()
            return self._result(f"repaid {self._money(amount)}; {self._money(s.credit_outstanding)} outstanding")
        part = s.current_part()
        applied = min(inp.amount, part.due)
        excess = inp.amount - applied
        part.paid += applied
        reason = inp.reason if inp.reason and self._patched(PAY_REASON_PATCH) else ""
        self.books.post("payment", [(Account.BUYER, -inp.amount), (Account.ESCROW, inp.amount)],
                        f"{part.name} payment {inp.reference} via {inp.method}", at=workflow.now(),
                        key=f"pay:{inp.reference}")
        s.payments.append(PaymentRecord(reference=inp.reference, amount=inp.amount, method=inp.method,
                                        actor=str(inp.actor), at=workflow.now(), part=part.name,
                                        reason=reason))
        # A one-part plan (full prepayment, collection account) is paid toward the price.
        message = f"paid {self._money(inp.amount)} toward the {self._part_label(part)} ({inp.reference})"
        if reason:
            message += f", recorded by hand: {reason}"
        if excess:
            # Over-payment by bank transfer: the excess goes straight back.
            self.books.post("overpayment_refund", [(Account.ESCROW, -excess), (Account.BUYER, excess)],
                            f"over-payment on {inp.reference} returned", at=workflow.now(),
                            key=f"overpay:{inp.reference}")
            message += f"; over-payment of {self._money(excess)} refunded"
        elif part.due:
            message += f"; {self._money(part.due)} still due"
        self._event(EventKind.PAYMENT, inp.actor, message)
        await self._sync()
        await self._caught_up()
        return self._result(message)

    @pay.validator
    def _validate_pay(self, inp: PayInput) -> None:
        s = self.s
        # Money the bank integration saw arrive may exceed what is due (the excess is
        # refunded); a payment ops records by hand moves no money by itself, so it
        # must say why and cannot be more than is due.
        by_hand = inp.actor.party.role is Role.OPS
        if inp.method == "bank_transfer":
            self._require(inp.actor, Role.SYSTEM, Role.OPS)
            if not self.plan.bank_transfers:
                raise ValueError("bank transfers apply only to collection-account orders")
            if by_hand and not inp.reason.strip():
                raise ValueError("a bank transfer recorded by ops needs a reason (--reason)")
            if by_hand:
                self._note(inp.reason, "reason")
        else:
            self._require(inp.actor, Role.BUYER)
        if inp.currency != self.inp.currency:
            raise ValueError(f"currency {inp.currency} does not match the order's {self.inp.currency}")
        if inp.reference in s.references:
            raise ValueError(f"duplicate payment reference {inp.reference!r}: already recorded")
        self._limit(len(s.payments), self.policy.limits.max_payments, "payments")
        if s.stage in REPAYABLE and s.credit_outstanding:
            if inp.amount > s.credit_outstanding:
                raise ValueError(f"amount {self._money(inp.amount)} exceeds the credit outstanding "
                                 f"({self._money(s.credit_outstanding)})")
            return
        if s.closing:
            raise ValueError(CANCEL_IN_PROGRESS)
        part = s.current_part()
        if part is None or part.due == 0:
            raise ValueError(f"nothing is due in stage {s.stage.value}")
        if inp.amount > part.due and (inp.method != "bank_transfer" or by_hand):
            raise ValueError(f"amount {self._money(inp.amount)} is more than the {self._part_label(part)} due "
                             f"({self._money(part.due)})")

    # ------------------------------------------------------------ production

    @workflow.update
    async def milestone(self, inp: MilestoneInput) -> ActionResult:
        s = self.s
        s.milestones.append(MilestoneRecord(milestone=inp.milestone, cost=inp.cost, note=inp.note,
                                            at=workflow.now(), actor=str(inp.actor)))
        self._event(EventKind.MILESTONE, inp.actor,
                    f"{inp.milestone} done, cost {self._money(inp.cost)}" + (f": {inp.note}" if inp.note else ""))
        await self._sync()
        await self._caught_up()
        return self._result(f"{inp.milestone} recorded; costs incurred {self._money(s.costs_incurred())}")

    @milestone.validator
    def _validate_milestone(self, inp: MilestoneInput) -> None:
        self._require(inp.actor, Role.SELLER)
        self._require_stage(Stage.IN_PRODUCTION)
        self._limit(len(self.s.milestones), self.policy.limits.max_milestones, "milestone records")
        self._note(inp.note)
        if self.s.costs_incurred() + inp.cost > self.inp.price * 10:
            raise ValueError("costs incurred would exceed ten times the price: check the amount")

    @workflow.update
    async def salvage(self, inp: SalvageInput) -> ActionResult:
        self.s.salvage_value = inp.value
        self.s.salvage_records += 1
        self._event(EventKind.SALVAGE, inp.actor, f"salvage value set to {self._money(inp.value)}")
        await self._sync()
        await self._caught_up()
        return self._result("salvage value recorded")

    @salvage.validator
    def _validate_salvage(self, inp: SalvageInput) -> None:
        self._require(inp.actor, Role.SELLER)
        self._require_stage(Stage.IN_PRODUCTION, Stage.QUALITY_CHECK, Stage.AWAITING_BALANCE)
        self._limit(self.s.salvage_records, self.policy.limits.max_salvage_records, "salvage records")
        if inp.value > self.inp.price:
            raise ValueError("salvage value cannot exceed the price")

    @workflow.update
    async def finish_production(self, inp: ActorInput) -> ActionResult:
        self._event(EventKind.PRODUCTION_FINISHED, inp.actor, "production finished; factory quality check")
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
        s = self.s
        if inp.passed:
            s.qc_passed = True
            self._event(EventKind.QC_PASSED, inp.actor, "quality check passed" + (f": {inp.note}" if inp.note else ""))
            message = "quality check passed"
        else:
            s.qc_failures += 1
            limit = self.policy.limits.qc_max_rework
            if s.qc_failures > limit:
                message = (f"quality check failed {s.qc_failures} times (rework limit {limit}): "
                           "the seller may cancel, or rework and check again")
            else:
                message = f"quality check failed ({s.qc_failures}/{limit} reworks): back to production"
            self._event(EventKind.QC_FAILED, inp.actor, message + (f": {inp.note}" if inp.note else ""))
            if s.qc_failures <= limit:
                self._set_stage(Stage.IN_PRODUCTION)
        await self._sync()
        await self._caught_up()
        return self._result(message)

    @quality_check.validator
    def _validate_qc(self, inp: QcInput) -> None:
        self._require(inp.actor, Role.SELLER)
        self._require_stage(Stage.QUALITY_CHECK)
        if self.s.qc_passed:
            raise ValueError("the quality check has already passed")
        self._note(inp.note)
        if not inp.passed:
            self._limit(self.s.qc_failures, self.policy.limits.max_qc_failures, "failed quality checks")

    # ------------------------------------------------------------ delivery

    @workflow.update
    async def ship(self, inp: ShipInput) -> ActionResult:
        s = self.s
        s.shipment = {"carrier": inp.carrier, "tracking": inp.tracking}
        s.shipped_at = workflow.now()
        self.deadlines.pop("promised_delivery")
        self.plan.on_ship(self)
        late = self._days_late(s.shipped_at)
        self._event(EventKind.SHIPPED, inp.actor, f"shipped by {inp.carrier}, tracking {inp.tracking}"
                    + (f" ({late} day(s) after the promised date)" if late else ""))
        self._set_stage(Stage.SHIPPED)
        await self._sync()
        await self._caught_up()
        return self._result("shipped")

    @ship.validator
    def _validate_ship(self, inp: ShipInput) -> None:
        self._require(inp.actor, Role.SELLER)
        self._require_stage(Stage.QUALITY_CHECK, Stage.AWAITING_BALANCE)
        if not self.s.qc_passed:
            raise ValueError("the goods have not passed the quality check")
        part = self.s.current_part()
        if part is not None and part.due:
            raise ValueError(f"the {self._part_label(part)} ({self._money(part.due)}) must be paid before shipping")

    @workflow.update
    async def deliver(self, inp: DeliverInput) -> ActionResult:
        s = self.s
        if inp.collected is not None:
            self.books.post("cod_collection", [(Account.BUYER, -inp.collected), (Account.CARRIER_COD, inp.collected)],
                            f"cash collected at the door {inp.reference or ''}", at=workflow.now(),
                            key="cod-collection")
            s.payments.append(PaymentRecord(reference=inp.reference or "cod", amount=inp.collected,
                                            method="cash_on_delivery", actor=str(inp.actor),
                                            at=workflow.now(), part="cod"))
        s.delivered = True
        s.deliveries += 1
        s.delivered_at = workflow.now()
        self._event(EventKind.DELIVERED, inp.actor, "delivered" + (
            f"; buyer inspected and paid {self._money(inp.collected)} to the carrier" if inp.collected else ""))
        self._set_stage(Stage.DELIVERED)
        await self._sync()
        await self._caught_up()
        return self._result("delivered")

    @deliver.validator
    def _validate_deliver(self, inp: DeliverInput) -> None:
        self._require(inp.actor, Role.CARRIER)
        self._require_stage(Stage.SHIPPED)
        self.plan.check_collection(self, inp.collected)

    @workflow.update
    async def refuse(self, inp: ReasonInput) -> ActionResult:
        self.s.refused = True
        self.s.refused_by = inp.actor
        self._event(EventKind.REFUSED, inp.actor,
                    "buyer refused the goods at the door" + (f": {inp.reason}" if inp.reason else ""))
        await self._caught_up()
        return self._result("refused; goods return to the seller")

    @refuse.validator
    def _validate_refuse(self, inp: ReasonInput) -> None:
        self._require(inp.actor, Role.BUYER, Role.CARRIER)
        self._require_stage(Stage.SHIPPED)
        if not self.plan.cash_on_delivery:
            raise ValueError("refusal at the door applies to cash-on-delivery orders; open a return instead")
        self._note(inp.reason, "reason")

    @workflow.update
    async def remit(self, inp: RemitInput) -> ActionResult:
        self.s.cod_remitted = True
        self.books.post("cod_remittance", [(Account.CARRIER_COD, -inp.amount), (Account.ESCROW, inp.amount)],
                        f"carrier remitted cash collected ({inp.reference})", at=workflow.now(), key="cod-remittance")
        self._event(EventKind.COD_REMITTED, inp.actor, f"carrier remitted {self._money(inp.amount)}")
        await self._sync()
        await self._caught_up()
        return self._result("remitted")

    @remit.validator
    def _validate_remit(self, inp: RemitInput) -> None:
        self._require(inp.actor, Role.CARRIER)
        self._require_stage(Stage.DELIVERED)
        if not self.plan.cash_on_delivery or self.s.cod_remitted:
            raise ValueError("there is no cash collection to remit")
        if inp.amount != self.s.balances[Account.CARRIER_COD]:
            raise ValueError(f"remit exactly the {self._money(self.s.balances[Account.CARRIER_COD])} collected")

    @workflow.update
    async def confirm(self, inp: ActorInput) -> ActionResult:
        self.s.confirmed_by = str(inp.actor)
        self._event(EventKind.CONFIRMED, inp.actor, "buyer confirmed receipt")
        await self._caught_up()
        return self._result("receipt confirmed; escrow released")

    @confirm.validator
    def _validate_confirm(self, inp: ActorInput) -> None:
        self._require(inp.actor, Role.BUYER)
        self._require_stage(Stage.DELIVERED)
        if self.plan.cash_on_delivery:
            raise ValueError("cash-on-delivery goods were inspected at the door; nothing to confirm")
        if self.s.confirmed_by is not None:
            raise ValueError("receipt is already confirmed")
        if self.s.case is not None:
            raise ValueError(f"case {self.s.case.number} is open; it must close first")

    # ------------------------------------------------------------ cancellation

    @workflow.update
    async def cancel(self, inp: CancelInput) -> ActionResult:
        reason = cancellation.reason_for(self, inp.actor.party.role)
        message = await cancellation.cancel(self, inp.actor, reason, f"cancelled by {inp.actor.party.role.value}"
                                            + (f": {inp.reason}" if inp.reason else ""))
        return self._result(message)

    @cancel.validator
    def _validate_cancel(self, inp: CancelInput) -> None:
        self._require(inp.actor, Role.BUYER, Role.SELLER)
        self._require_stage(*cancellation.CANCELLABLE)
        self._note(inp.reason, "reason")

    # ------------------------------------------------------------ operations

    @workflow.update
    async def override_deadline(self, inp: OverrideDeadlineInput) -> ActionResult:
        view = self.deadlines.get(inp.deadline)
        if inp.now:
            due = workflow.now()
            what = f"{inp.deadline} brought forward to now (was due {view.due_at:%Y-%m-%d %H:%M} UTC)"
        else:
            due = view.due_at + timedelta(seconds=inp.extend_seconds)
            what = (f"{inp.deadline} extended by {duration_words(timedelta(seconds=inp.extend_seconds))} "
                    f"to {due:%Y-%m-%d %H:%M} UTC")
        self.deadlines.move(inp.deadline, due)
        self._event(EventKind.DEADLINE_OVERRIDDEN, inp.actor, f"{what}: {inp.reason}")
        await self._sync()
        await self._caught_up()
        return self._result(what)

    @override_deadline.validator
    def _validate_override_deadline(self, inp: OverrideDeadlineInput) -> None:
        self._require(inp.actor, Role.OPS)
        if self.s.closing and self.s.stage is not Stage.CANCELLED:
            raise ValueError(CANCEL_IN_PROGRESS)
        if self.s.closing or self.s.closed:
            raise ValueError(f"the order is {self.s.stage.value}: no deadline left to override")
        if inp.deadline not in MOVABLE_DEADLINES:
            raise ValueError(f"unknown or fixed deadline {inp.deadline!r}; "
                             f"movable: {', '.join(MOVABLE_DEADLINES)}")
        if inp.deadline not in self.deadlines:
            running = [n for n in self.deadlines.names() if n in MOVABLE_DEADLINES]
            raise ValueError(f"{inp.deadline} is not running on this order"
                             + (f" (running: {', '.join(running)})" if running else " (no deadline is running)"))
        self._note(inp.reason, "reason")
