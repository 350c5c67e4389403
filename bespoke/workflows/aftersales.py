"""After-sales: the buyer's inspection and the after-sales window, the cases opened
in them (returns, repairs, disputes), their refunds, and the updates the parties
and ops use to drive a case.

A case is a small state machine (`CaseState`, with its allowed transitions in
`bespoke.domain.state.CASE_TRANSITIONS`): the buyer opens it, the seller responds
(approve, reject, offer a partial refund or a repair), the goods may travel back
and forth, either party may dispute, and ops arbitrates. `_run_case` drives it
from whatever state it is in, so a run that continued as new resumes a case
where it stood. Each waiting state has a deadline with a default action (the
seller silent → approved; the buyer does not ship → closed; …). While a case is
open, the inspection or after-sales window it interrupted is paused.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from bespoke.activities.rules import (
        DisputeRequest,
        RefundRequest,
        ReturnTermsRequest,
        dispute_default_decision,
        refund_decision,
        return_terms_decision,
    )
    from bespoke.domain.events import EventKind, SystemActor
    from bespoke.domain.models import (
        Account,
        ActionResult,
        ArbitrateInput,
        DisputeInput,
        EvidenceInput,
        EvidenceItem,
        OfferAnswerInput,
        ReceiveReturnInput,
        ReturnRequestInput,
        ReturnResponseInput,
        Role,
        ShipInput,
        ShipReturnInput,
        Stage,
    )
    from bespoke.domain.state import DISPUTABLE, Arbitration, Case, CaseState
    from bespoke.rules import DisputeFacts, RefundFacts, ReturnFacts
    from bespoke.workflows.core import OrderCore
    from bespoke.workflows.deadlines import CASE_DEADLINES
    from bespoke.workflows.settlement import settle
    from bespoke.workflows.windows import Windows

INSPECTION_ACTION = "receipt auto-confirmed, escrow released to the seller"
WINDOW_ACTION = "after-sales window closes; funds final"
OFFERED = (CaseState.OFFERED_PARTIAL, CaseState.OFFERED_REPAIR)


class AfterSales(Windows):
    # ------------------------------------------------------------ windows

    async def _inspect(self, resuming: bool) -> bool:
        """The buyer inspects delivered goods; False if a case ended in a refund."""
        s = self.s
        if s.aftersales:
            return await self._inspection() != "refunded"
        # Orders that predate after-sales: one window, no cases.
        self.deadlines.start("inspection_window", self.policy.deadlines.inspection_window, INSPECTION_ACTION)
        await self._sync()
        if not await self._wait(lambda: s.confirmed_by is not None, "inspection_window"):
            s.confirmed_by = SystemActor.TIMER.value
            self._event(EventKind.AUTO_CONFIRMED, SystemActor.TIMER, "inspection window ended: receipt auto-confirmed")
        return True

    async def _inspection(self) -> str:
        """The inspection window; it pauses while a case is open and starts afresh
        after a repair. Returns "confirmed" or "refunded"."""
        s, d = self.s, self.policy.deadlines
        while True:
            if s.case is None or not s.case.started:
                self.deadlines.resume("inspection_window", d.inspection_window, INSPECTION_ACTION)
                await self._sync()
                met = await self._wait(lambda: s.confirmed_by is not None or s.case is not None, "inspection_window")
                if not met:
                    s.confirmed_by = SystemActor.TIMER.value
                    self._event(EventKind.AUTO_CONFIRMED, SystemActor.TIMER,
                                "inspection window ended: receipt auto-confirmed")
                    return "confirmed"
                if s.confirmed_by is not None:
                    return "confirmed"
                self.deadlines.pause("inspection_window")
            outcome = await self._run_case(paused="inspection window")
            if outcome == "refunded":
                return "refunded"
            if outcome == "redelivered":
                self.deadlines.forget_pause("inspection_window")

    async def _aftersales_window(self) -> None:
        """After completion: cases may still be opened until the window closes."""
        s, d = self.s, self.policy.deadlines
        while not s.aftersales_done:
            if s.reinspecting:
                # A repaired order gets a fresh inspection; the window resumes after it.
                if await self._inspection() == "refunded":
                    s.aftersales_done = True
                    return
                s.reinspecting = False
                self._set_stage(Stage.COMPLETED)
                continue
            if s.case is None or not s.case.started:
                if s.window_from_delivery:
                    self.deadlines.forget_pause("aftersales_window")
                    self.deadlines.mark("aftersales_window", self._window_due(), WINDOW_ACTION)
                else:
                    self.deadlines.resume("aftersales_window", d.aftersales_window, WINDOW_ACTION)
                await self._sync()
                if not await self._wait(lambda: s.case is not None, "aftersales_window"):
                    self._event(EventKind.AFTERSALES_CLOSED, SystemActor.TIMER, "after-sales window closed")
                    await self._sync()
                    s.aftersales_done = True
                    return
                self.deadlines.pause("aftersales_window")
            outcome = await self._run_case(paused="after-sales window")
            if outcome == "refunded":
                s.aftersales_done = True
            elif outcome == "redelivered":
                s.confirmed_by = None
                s.reinspecting = True

    # ------------------------------------------------------------ the case machine

    async def _case_wait(self, cond: Callable[[], bool], deadline: str, duration: timedelta, action: str) -> str:
        """Wait inside a case: "met", "timeout" or "disputed"."""
        case = self.s.case
        self.deadlines.start(deadline, duration, action)
        await self._sync()
        disputed_before = case.state is CaseState.DISPUTED
        newly_disputed = lambda: case.state is CaseState.DISPUTED and not disputed_before  # noqa: E731
        if not await self.deadlines.until_due(lambda: cond() or newly_disputed(), deadline):
            return "timeout"
        return "disputed" if newly_disputed() else "met"

    async def _open_case(self, case: Case, paused: str) -> bool:
        """Take a new case up: timeline, stage, and the policy's terms. False if the
        policy does not allow it (the case is then closed)."""
        s = self.s
        case.back_to = s.stage
        self._event(EventKind.CASE_OPENED, case.opened_by, f"case {case.number}: {case.reason} → wants {case.remedy}; "
                    f"{paused} paused")
        self._set_stage(Stage.RETURN_REQUESTED)
        terms = await self._decide(
            return_terms_decision,
            ReturnTermsRequest(**self._rules_input(), decision_id=self._next_decision_id("return-terms"),
                               facts=ReturnFacts(
                                   reason=case.reason,
                                   stage="completed" if case.back_to is Stage.COMPLETED else "delivered",
                                   remedy=case.remedy,
                                   days_since_delivery=(self._window_days() if s.window_from_delivery
                                                        else self._days_since_delivery()),
                                   repair_rounds=s.repair_rounds, price=self.inp.price,
                                   currency=self.inp.currency, as_of=workflow.now())),
            "return terms",
        )
        self._record_decision(terms.explanation.model_dump(mode="json"))
        case.return_shipping_payer = terms.return_shipping_payer
        case.started = True
        if not terms.allowed:
            await self._close_case(case, case.back_to, "not_allowed", terms.explanation.summary)
            return False
        if case.remedy == "repair" and not terms.repair_allowed:
            case.remedy = "refund"
            self._event(EventKind.CASE_NOTE, SystemActor.RULES, "repair limit reached: the case proceeds as a refund")
        case.repair_allowed = terms.repair_allowed and not terms.refund_only
        return True

    async def _run_case(self, paused: str) -> str:
        """Drive the open case to its end from the state it is in: "kept",
        "refunded" or "redelivered"."""
        s, d = self.s, self.policy.deadlines
        case = s.case
        if not case.started and not await self._open_case(case, paused):
            return "kept"
        back_to = case.back_to
        while True:
            state = case.state
            if state is CaseState.REQUESTED:
                outcome = await self._case_wait(lambda: case.state is not CaseState.REQUESTED, "return_response",
                                                d.return_response, "seller silent: the return is approved")
                if outcome == "timeout":
                    case.move(CaseState.APPROVED)
                    self._event(EventKind.RETURN_AUTO_APPROVED, SystemActor.TIMER,
                                "seller did not respond in time: return approved")
            elif state in OFFERED:
                outcome = await self._case_wait(lambda: case.state not in OFFERED, "offer_response",
                                                d.partial_offer_response,
                                                "buyer silent: the offer lapses and the case closes")
                if outcome == "timeout":
                    return await self._close_case(case, back_to, "offer_lapsed", "the buyer did not answer the offer")
            elif state is CaseState.PARTIAL_ACCEPTED:
                return await self._refund(case, case.offer, "partial_offer_accepted")
            elif state is CaseState.REJECTED:
                outcome = await self._case_wait(lambda: False, "escalation", d.effective("escalation"),
                                                "no dispute opened: the case closes")
                if outcome == "timeout":
                    return await self._close_case(case, back_to, "rejected",
                                                  "the seller rejected the case; no dispute was opened")
            elif state is CaseState.DISPUTED:
                return await self._dispute(case, back_to)
            elif state is CaseState.APPROVED:  # the goods go back, for a refund or a repair
                if case.remedy == "repair":
                    self._set_stage(Stage.REPAIR)
                outcome = await self._case_wait(lambda: case.state is not CaseState.APPROVED, "return_ship",
                                                d.return_ship, "buyer did not ship the return: the case closes")
                if outcome == "timeout":
                    return await self._close_case(case, back_to, "not_shipped",
                                                  "the buyer did not ship the return in time")
            elif state is CaseState.IN_TRANSIT:
                if case.remedy == "refund":
                    self._set_stage(Stage.RETURN_IN_TRANSIT)
                outcome = await self._case_wait(lambda: case.state is not CaseState.IN_TRANSIT, "return_receive",
                                                d.return_receive,
                                                "seller did not confirm the returned goods: the refund goes out")
                if outcome == "timeout":
                    self._event(EventKind.RETURN_AUTO_REFUND, SystemActor.TIMER,
                                "seller did not confirm the returned goods in time: refund")
                    return await self._refund(case, self.books.refundable(), "seller_silent_on_receipt")
            elif state is CaseState.RECEIVED:
                if case.remedy == "refund":
                    return await self._refund(case, self.books.refundable(), "return_received")
                # Repair: the seller reships; the carrier delivers; a new inspection starts.
                case.deliveries_before = s.deliveries
                outcome = await self._case_wait(lambda: case.state is not CaseState.RECEIVED, "repair",
                                                d.effective("repair_reship"),
                                                "seller did not reship the repaired goods: refund")
                if outcome == "timeout":
                    return await self._refund(case, self.books.refundable(), "seller_silent_on_receipt")
            else:  # RESHIPPED
                await self.loop.block(lambda: s.deliveries > case.deliveries_before)
                s.repair_rounds += 1
                return await self._close_case(case, None, "repaired",
                                              f"repaired and redelivered (round {s.repair_rounds})",
                                              result="redelivered")

    async def _dispute(self, case: Case, back_to: Stage) -> str:
        """Evidence from both sides until the deadline; then the policy's default
        decision, or ops arbitrates."""
        d = self.policy.deadlines
        if not case.awaiting_arbitration:
            self._set_stage(Stage.DISPUTED)
            outcome = await self._case_wait(lambda: case.arbitration is not None or len(case.finalised) == 2,
                                            "dispute_evidence", d.dispute_evidence,
                                            "the side without evidence loses, per the policy")
            if case.arbitration is None and outcome == "timeout":
                facts = DisputeFacts(
                    opened_by=case.dispute_opened_by, buyer_submitted=case.submitted("buyer"),
                    seller_submitted=case.submitted("seller"), claim=case.claim or self.books.refundable(),
                    price=self.inp.price, currency=self.inp.currency, as_of=workflow.now(),
                )
                decision = await self._decide(
                    dispute_default_decision,
                    DisputeRequest(**self._rules_input(), facts=facts, decision_id=self._next_decision_id("dispute")),
                    "dispute",
                )
                self._record_decision(decision.explanation.model_dump(mode="json"))
                self._event(EventKind.DISPUTE_DEFAULT, SystemActor.RULES, decision.explanation.summary)
                if decision.outcome == "buyer_wins" and decision.refund > 0:
                    return await self._refund(case, decision.refund, "dispute_default")
                if decision.outcome == "seller_wins":
                    return await self._close_case(case, back_to, "seller_won", decision.explanation.summary)
            if case.arbitration is None:
                # No deadline runs on ops: status names them as the next step (no
                # fake due time; orders that carried this marker hide it in status).
                case.awaiting_arbitration = True
                await self._sync()
        if case.arbitration is None:
            await self.loop.block(lambda: case.arbitration is not None)
            self.deadlines.pop("arbitration")
        ruling = case.arbitration
        if ruling.refund > 0:
            return await self._refund(case, ruling.refund, "arbitration", note=f"ops {ruling.actor}: {ruling.note}")
        return await self._close_case(case, back_to, "arbitrated_no_refund", f"ops {ruling.actor}: {ruling.note}")

    async def _close_case(self, case: Case, back_to: Stage | None, outcome: str, message: str,
                          result: str = "kept") -> str:
        case.outcome = outcome
        case.closed_at = workflow.now()
        self.deadlines.pop(*CASE_DEADLINES)
        case.closing_message = f"case {case.number} closed ({outcome}): {message}"
        self._event(EventKind.CASE_CLOSED, SystemActor.RULES if outcome != "repaired" else SystemActor.WORKFLOW,
                    case.closing_message)
        if back_to is not None:
            self._set_stage(back_to)
        await self._sync()
        return result

    async def _refund(self, case: Case, amount: int, outcome: str, note: str = "") -> str:
        """Refund as the policy decides: escrow first, then charged back to the
        seller; then settle whatever escrow still holds and close as refunded."""
        s, books, inp = self.s, self.books, self.inp
        if min(amount, books.refundable()) <= 0:  # nothing left to give back
            return await self._close_case(case, case.back_to, "nothing_to_refund", "nothing paid is left to refund")
        facts = RefundFacts(
            reason=case.reason, outcome=outcome, requested_refund=min(amount, books.refundable()),
            price=inp.price, currency=inp.currency, paid_total=s.paid + s.credit_outstanding,
            refunded_so_far=s.refunded, escrow_balance=s.balances[Account.ESCROW],
            released_to_seller=max(s.balances[Account.SELLER], 0),
            platform_fee_charged=s.balances[Account.PLATFORM_FEE],
            return_shipping_cost=case.shipping_cost, return_shipping_payer=case.return_shipping_payer or "seller",
            as_of=workflow.now(),
        )
        decision = await self._decide(
            refund_decision,
            RefundRequest(**self._rules_input(), facts=facts, decision_id=self._next_decision_id("refund")),
            "refund",
        )
        self._record_decision(decision.explanation.model_dump(mode="json"))
        n, now = case.number, workflow.now()
        books.post("refund", [(Account.ESCROW, -decision.refund_from_escrow),
                              *books.to_buyer(decision.refund_from_escrow)],
                   decision.explanation.summary, at=now, key=f"case-{n}:refund-escrow")
        if decision.fee_refund_to_seller:
            books.post("fee_refund", [(Account.PLATFORM_FEE, -decision.fee_refund_to_seller),
                                      (Account.SELLER, decision.fee_refund_to_seller)],
                       "platform fee returned pro rata on the charged-back amount", at=now, key=f"case-{n}:fee-refund")
        if decision.chargeback_from_seller:
            books.post("chargeback", [(Account.SELLER, -decision.chargeback_from_seller),
                                      *books.to_buyer(decision.chargeback_from_seller)],
                       "refund charged back to the seller's balance", at=now, key=f"case-{n}:chargeback")
        if decision.shipping_reimbursement:
            books.post("return_shipping", [(Account.SELLER, -decision.shipping_reimbursement),
                                           (Account.BUYER, decision.shipping_reimbursement)],
                       "seller reimburses return shipping", at=now, key=f"case-{n}:shipping")
        total = decision.refund_from_escrow + decision.chargeback_from_seller
        self._event(EventKind.REFUNDED, SystemActor.RULES, f"refund {self._money(total)} ({outcome})"
                    + (f"; return shipping {self._money(decision.shipping_reimbursement)} reimbursed"
                       if decision.shipping_reimbursement else "")
                    + (f"; {note}" if note else ""))
        # What escrow still holds after a partial refund is the seller's.
        if s.balances[Account.ESCROW]:
            await settle(self, "settlement")
        await self.plan.after_refund(self)
        case.outcome = outcome
        case.closed_at = workflow.now()
        self.plan.keep_debt(self)
        self.deadlines.clear(keep=("credit_settlement",) if s.credit_kept else ())
        self._set_stage(Stage.REFUNDED)
        await self._sync()
        s.closed = True
        return "refunded"

    # ------------------------------------------------------------ updates

    def _check_evidence(self, case: Case | None, items: tuple[str, ...]) -> None:
        limits = self.policy.limits
        have = len(case.evidence) if case is not None else 0
        if have + len(items) > limits.max_evidence_items:
            raise ValueError(f"a case holds at most {limits.max_evidence_items} evidence items "
                             f"({have} recorded, {len(items)} more given)")
        for item in items:
            if len(item) > limits.max_evidence_item_length:
                raise ValueError(f"an evidence item is {len(item)} characters long; "
                                 f"this order's policy allows at most {limits.max_evidence_item_length}")

    @workflow.update
    async def request_return(self, inp: ReturnRequestInput) -> ActionResult:
        s, now = self.s, workflow.now()
        s.cases.append(Case(
            number=len(s.cases) + 1, opened_by=str(inp.actor), reason=inp.reason, remedy=inp.remedy,
            description=inp.description, opened_at=now,
            evidence=[EvidenceItem(party="buyer", item=e, at=now) for e in inp.evidence],
        ))
        await self._caught_up()
        case = s.cases[-1]
        if case.outcome is None:
            return self._result(f"case {case.number} opened: {inp.reason}, wants {inp.remedy}")
        return self._result(case.closing_message)

    @request_return.validator
    def _validate_request_return(self, inp: ReturnRequestInput) -> None:
        s = self.s
        self._require(inp.actor, Role.BUYER)
        if s.case is not None:
            raise ValueError(f"case {s.case.number} is already open")
        if s.stage is Stage.DELIVERED:
            if self.plan.cash_on_delivery and "aftersales_window" not in self.deadlines:
                raise ValueError("cash-on-delivery goods were inspected at the door; returns open after completion")
            if s.confirmed_by is not None:
                raise ValueError("receipt is already confirmed; wait for completion")
        elif s.stage is Stage.COMPLETED:
            if "aftersales_window" not in self.deadlines:
                raise ValueError("the after-sales window has closed")
        else:
            raise ValueError(f"returns open from delivered or completed, not {s.stage.value}")
        if not s.aftersales:
            raise ValueError("this order predates after-sales support")
        if inp.reason == "changed_mind" and inp.remedy == "repair":
            raise ValueError("a change of mind cannot ask for a repair")
        if self.books.refundable() <= 0:
            raise ValueError("nothing paid for this order is left to refund")
        if len(s.cases) >= self.policy.limits.max_cases_per_order:
            raise ValueError(f"this order has had the maximum of {self.policy.limits.max_cases_per_order} cases")
        self._note(inp.description, "description")
        self._check_evidence(None, inp.evidence)

    @workflow.update
    async def respond_return(self, inp: ReturnResponseInput) -> ActionResult:
        case = self.s.case
        if inp.action == "approve":
            case.move(CaseState.APPROVED)
            message = "seller approved the return"
        elif inp.action == "reject":
            case.move(CaseState.REJECTED)
            message = f"seller rejected the case: {inp.reason or 'no reason given'}; the buyer may open a dispute"
        elif inp.action == "offer_partial":
            case.move(CaseState.OFFERED_PARTIAL)
            case.offer = inp.amount
            message = f"seller offers a partial refund of {self._money(inp.amount)} (buyer keeps the goods)"
        else:
            case.move(CaseState.OFFERED_REPAIR)
            message = "seller offers to repair the goods"
        self._event(EventKind.RETURN_RESPONSE, inp.actor, message)
        await self._caught_up()
        return self._result(message)

    @respond_return.validator
    def _validate_respond_return(self, inp: ReturnResponseInput) -> None:
        self._require(inp.actor, Role.SELLER)
        case = self._require_case(CaseState.REQUESTED)
        refundable = self.books.refundable()
        if inp.action == "offer_partial" and inp.amount >= refundable:
            raise ValueError(f"a partial refund must be less than the {self._money(refundable)} refundable")
        if inp.action == "offer_repair" and not case.repair_allowed:
            raise ValueError("the repair limit is reached: the buyer may demand a refund")
        self._note(inp.reason, "reason")

    @workflow.update
    async def answer_offer(self, inp: OfferAnswerInput) -> ActionResult:
        case = self.s.case
        if case.state is CaseState.OFFERED_PARTIAL:
            case.move(CaseState.PARTIAL_ACCEPTED if inp.accept else CaseState.REJECTED)
        elif inp.accept:
            case.move(CaseState.APPROVED)
            case.remedy = "repair"
        else:
            case.move(CaseState.REJECTED)
        message = ("buyer accepted the offer" if inp.accept
                   else "buyer declined the offer; either party may open a dispute")
        self._event(EventKind.OFFER_ANSWER, inp.actor, message)
        await self._caught_up()
        return self._result(message)

    @answer_offer.validator
    def _validate_answer_offer(self, inp: OfferAnswerInput) -> None:
        self._require(inp.actor, Role.BUYER)
        self._require_case(*OFFERED)

    @workflow.update
    async def ship_return(self, inp: ShipReturnInput) -> ActionResult:
        case = self.s.case
        case.return_shipment = {"carrier": inp.carrier, "tracking": inp.tracking}
        case.shipping_cost = inp.shipping_cost
        case.move(CaseState.IN_TRANSIT)
        self._event(EventKind.RETURN_SHIPPED, inp.actor, f"goods sent back by {inp.carrier}, tracking {inp.tracking}")
        await self._caught_up()
        return self._result("return shipped")

    @ship_return.validator
    def _validate_ship_return(self, inp: ShipReturnInput) -> None:
        self._require(inp.actor, Role.BUYER)
        self._require_case(CaseState.APPROVED)

    @workflow.update
    async def receive_return(self, inp: ReceiveReturnInput) -> ActionResult:
        case = self.s.case
        case.disposition = inp.disposition
        case.move(CaseState.RECEIVED)
        if inp.disposition == "resell_as_stock":
            self.s.salvage_value = inp.salvage_value
        self._event(EventKind.RETURN_RECEIVED, inp.actor,
                    f"returned goods received: {inp.disposition.replace('_', ' ')}"
                    + (f", salvage value {self._money(inp.salvage_value)}" if inp.salvage_value else "")
                    + (f": {inp.note}" if inp.note else ""))
        await self._caught_up()
        return self._result("return received")

    @receive_return.validator
    def _validate_receive_return(self, inp: ReceiveReturnInput) -> None:
        self._require(inp.actor, Role.SELLER)
        case = self._require_case(CaseState.IN_TRANSIT)
        if case.remedy == "repair" and inp.disposition != "rework":
            raise ValueError("goods sent for repair can only be reworked")
        if inp.disposition != "resell_as_stock" and inp.salvage_value:
            raise ValueError("a salvage value goes with resell_as_stock only")
        if inp.salvage_value > self.inp.price:
            raise ValueError("salvage value cannot exceed the price")
        self._note(inp.note)

    @workflow.update
    async def reship(self, inp: ShipInput) -> ActionResult:
        self.s.shipment = {"carrier": inp.carrier, "tracking": inp.tracking}
        self.s.case.move(CaseState.RESHIPPED)
        self._event(EventKind.RESHIPPED, inp.actor, f"repaired goods shipped by {inp.carrier}, tracking {inp.tracking}")
        self._set_stage(Stage.SHIPPED)
        await self._caught_up()
        return self._result("repaired goods shipped")

    @reship.validator
    def _validate_reship(self, inp: ShipInput) -> None:
        self._require(inp.actor, Role.SELLER)
        case = self._require_case(CaseState.RECEIVED)
        if case.remedy != "repair":
            raise ValueError("only a repair case reships goods")

    @workflow.update
    async def dispute(self, inp: DisputeInput) -> ActionResult:
        case = self.s.case
        case.move(CaseState.DISPUTED)
        case.dispute_opened_by = inp.actor.party.role.value
        case.claim = inp.claim if inp.claim is not None else case.claim
        self._event(EventKind.DISPUTE_OPENED, inp.actor, f"dispute opened by the {inp.actor.party.role.value}"
                    + (f", claiming {self._money(inp.claim)}" if inp.claim else "")
                    + (f": {inp.statement}" if inp.statement else ""))
        await self._caught_up()
        return self._result("dispute opened; both parties may submit evidence")

    @dispute.validator
    def _validate_dispute(self, inp: DisputeInput) -> None:
        self._require_party(inp.actor)
        case = self._require_case(*DISPUTABLE)
        refundable = self.books.refundable()
        if inp.claim is not None and inp.claim > refundable:
            raise ValueError(f"the claim exceeds the {self._money(refundable)} refundable")
        if inp.actor.party.role is Role.SELLER and inp.claim is not None:
            raise ValueError("only the buyer claims a refund")
        if case.state is CaseState.RECEIVED and case.remedy != "repair":
            raise ValueError("the refund is already on its way")
        self._note(inp.statement, "statement")

    @workflow.update
    async def evidence(self, inp: EvidenceInput) -> ActionResult:
        case = self.s.case
        party = inp.actor.party.role.value
        now = workflow.now()
        case.evidence.extend(EvidenceItem(party=party, item=item, at=now) for item in inp.items)
        if party not in case.dispute_parties:
            case.dispute_parties.append(party)
        if inp.final:
            case.finalised.append(party)
        self._event(EventKind.EVIDENCE, inp.actor,
                    ("evidence: " + ", ".join(inp.items) if inp.items else "no further evidence")
                    + (" (final)" if inp.final else " (staged)"))
        await self._caught_up()
        return self._result("evidence finalised" if inp.final else "evidence staged")

    @evidence.validator
    def _validate_evidence(self, inp: EvidenceInput) -> None:
        party = self._require_party(inp.actor)
        case = self._require_case(CaseState.DISPUTED)
        if party in case.finalised:
            raise ValueError(f"the {party}'s evidence is already final")
        if not inp.items and not inp.final:
            raise ValueError("no evidence given")
        if "dispute_evidence" not in self.deadlines:
            raise ValueError("the evidence deadline has passed")
        self._check_evidence(case, inp.items)

    @workflow.update
    async def arbitrate(self, inp: ArbitrateInput) -> ActionResult:
        self.s.case.arbitration = Arbitration(refund=inp.refund, note=inp.note, actor=inp.actor.name)
        self._event(EventKind.ARBITRATED, inp.actor, f"ops decided a refund of {self._money(inp.refund)}: {inp.note}")
        await self._caught_up()
        return self._result(f"arbitrated; order is {self.s.stage.value}")

    @arbitrate.validator
    def _validate_arbitrate(self, inp: ArbitrateInput) -> None:
        self._require(inp.actor, Role.OPS)
        case = self._require_case(CaseState.DISPUTED)
        if case.arbitration is not None:
            raise ValueError("already arbitrated")
        refundable = self.books.refundable()
        if inp.refund > refundable:
            raise ValueError(f"the refund exceeds the {self._money(refundable)} refundable")
        self._note(inp.note)
