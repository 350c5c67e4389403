"""The order workflow's state, in one model.

Everything an order knows lives in `OrderState`: money, payment parts, deadlines,
after-sales cases, timeline, decisions and counters. `status` is a view of it, and
when a run nears Temporal's limits the whole model is carried into the next run
(`OrderInput.state`), which resumes the lifecycle at `phase`.

These models are mutable (the workflow changes them in place) and live in
`domain/` because they cross the workflow boundary as the continued run's input.
Fields may be added with defaults; never remove or rename one: a run that
continued as new with an older model must still decode.
"""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bespoke.domain.models import (
    Account,
    Actor,
    OrderInput,
    CaseView,
    DeadlineView,
    Debt,
    EvidenceItem,
    MilestoneRecord,
    PaymentRecord,
    Stage,
    TimelineEntry,
    Transaction,
)


class Mutable(BaseModel):
    # No validation on assignment: the workflow assigns values it computed itself,
    # and a validated assignment costs more than the update it records.
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


class Part(Mutable):
    """One scheduled payment of the plan (deposit, balance, retention)."""

    name: str
    amount: int
    paid: int = 0

    @property
    def due(self) -> int:
        return self.amount - self.paid


class Phase(IntEnum):
    """Where the lifecycle is, in the order it passes through; a continued run
    skips the phases before this one and resumes this one's wait."""

    ACCEPTANCE = 0
    FUNDING = 1  # credit reservation or the deposit
    PRODUCTION = 2  # production and the factory quality check
    BALANCE = 3  # balance parts due before shipping (staged plans)
    SHIPMENT = 4
    DELIVERY = 5
    INSPECTION = 6  # the buyer's inspection (or the COD remittance), cases included
    SETTLEMENT = 7  # escrow released; retention (30/60/10) after acceptance
    COMPLETED = 8  # after-sales window and credit repayment, side by side
    REPAYMENT = 9  # a refund closed the order with credit still owed: the rest is repaid
    DONE = 10


class CaseState(StrEnum):
    """Where an after-sales case stands. Values are in `status --json` (`cases[].state`)."""

    REQUESTED = "requested"  # the buyer asked; the seller must respond
    APPROVED = "approved"  # the goods go back (for a refund or a repair)
    REJECTED = "rejected"  # the seller (or the buyer, of an offer) said no; a dispute may follow
    OFFERED_PARTIAL = "offered_partial"  # the seller offers part of the money back, goods kept
    OFFERED_REPAIR = "offered_repair"
    PARTIAL_ACCEPTED = "partial_accepted"
    IN_TRANSIT = "in_transit"  # the buyer shipped the goods back
    RECEIVED = "received"  # the seller has the goods back
    RESHIPPED = "reshipped"  # repaired goods on their way to the buyer
    DISPUTED = "disputed"  # platform operations decide


# Which state may follow which; `Case.move` refuses anything else. Terminal states
# map to nothing: the case then closes with an outcome.
CASE_TRANSITIONS: dict[CaseState, frozenset[CaseState]] = {
    CaseState.REQUESTED: frozenset(
        {CaseState.APPROVED, CaseState.REJECTED, CaseState.OFFERED_PARTIAL, CaseState.OFFERED_REPAIR}
    ),
    CaseState.OFFERED_PARTIAL: frozenset({CaseState.PARTIAL_ACCEPTED, CaseState.REJECTED, CaseState.DISPUTED}),
    CaseState.OFFERED_REPAIR: frozenset({CaseState.APPROVED, CaseState.REJECTED, CaseState.DISPUTED}),
    CaseState.REJECTED: frozenset({CaseState.DISPUTED}),
    CaseState.APPROVED: frozenset({CaseState.IN_TRANSIT, CaseState.DISPUTED}),
    CaseState.IN_TRANSIT: frozenset({CaseState.RECEIVED, CaseState.DISPUTED}),
    CaseState.RECEIVED: frozenset({CaseState.RESHIPPED, CaseState.DISPUTED}),
    CaseState.PARTIAL_ACCEPTED: frozenset(),
    CaseState.RESHIPPED: frozenset(),
    CaseState.DISPUTED: frozenset(),
}
# A party may open a dispute from these states (a repair case also from RECEIVED).
DISPUTABLE = tuple(s for s, nxt in CASE_TRANSITIONS.items() if CaseState.DISPUTED in nxt)


class IllegalCaseTransition(ValueError):
    pass


class Arbitration(Mutable):
    refund: int
    note: str
    actor: str  # the ops principal's name


class Case(Mutable):
    """An after-sales case (return, repair, dispute) while it runs and after."""

    number: int
    opened_by: str
    reason: str
    remedy: str  # "refund" or "repair"
    description: str = ""
    state: CaseState = CaseState.REQUESTED
    opened_at: datetime
    evidence: list[EvidenceItem] = []
    offer: int | None = None
    return_shipping_payer: str | None = None
    return_shipment: dict[str, str] | None = None
    shipping_cost: int = 0
    disposition: str | None = None
    dispute_opened_by: str | None = None
    claim: int | None = None
    finalised: list[str] = []  # parties whose evidence is final
    dispute_parties: list[str] = []  # parties that put in any evidence
    arbitration: Arbitration | None = None
    repair_allowed: bool = True
    back_to: Stage = Stage.DELIVERED  # the stage the order returns to if the goods are kept
    # Progress a continued run resumes from: whether the lifecycle has taken the
    # case up (opened it on the timeline, decided its terms); deliveries counted
    # when the repaired goods were awaited; whether the evidence period is over.
    started: bool = False
    deliveries_before: int = 0
    awaiting_arbitration: bool = False
    outcome: str | None = None
    closed_at: datetime | None = None
    closing_message: str = ""  # why it closed, as the timeline says

    def move(self, to: CaseState) -> None:
        if to not in CASE_TRANSITIONS[self.state]:
            raise IllegalCaseTransition(f"case {self.number}: {self.state.value} cannot become {to.value}")
        self.state = to

    def submitted(self, party: str) -> bool:
        """Whether `party` put evidence into the dispute (staged or final)."""
        return party in self.finalised or party in self.dispute_parties

    def view(self) -> CaseView:
        return CaseView(
            number=self.number, reason=self.reason, remedy=self.remedy, state=self.state.value,
            opened_at=self.opened_at, description=self.description, evidence=list(self.evidence),
            offer=self.offer, return_shipping_payer=self.return_shipping_payer,
            return_shipment=self.return_shipment, disposition=self.disposition,
            dispute_opened_by=self.dispute_opened_by, claim=self.claim, finalised=list(self.finalised),
            outcome=self.outcome, closed_at=self.closed_at,
        )


class OrderState(Mutable):
    """Everything the order knows. See the module docstring."""

    stage: Stage = Stage.AWAITING_ACCEPTANCE
    phase: Phase = Phase.ACCEPTANCE
    created_at: datetime
    updated_at: datetime
    # Timeline and decisions as `status` shows them; the read model has them all.
    timeline: list[TimelineEntry] = []
    timeline_seq: int = 0  # seq of the last entry (entries carried into a new run may be trimmed)
    decisions: list[dict[str, Any]] = []
    decision_seq: int = 0
    # The books: balances per account, and transactions not yet posted to the ledger.
    balances: dict[Account, int] = Field(default_factory=lambda: {a: 0 for a in Account})
    unposted: list[Transaction] = []
    txn_seq: int = 0
    paid: int = 0
    refunded: int = 0
    late_penalty: int = 0
    credit_outstanding: int = 0
    # The payment plan's schedule and what was paid toward it.
    parts: list[Part] = []
    part_index: int = 0
    payments: list[PaymentRecord] = []
    references: list[str] = []  # payment references seen (a duplicate is refused)
    # Both parties agree: the seller accepts; the buyer consents (implied when the
    # buyer, or ops for the buyer, created the order; see CONSENT_PATCH).
    accepted: bool = False
    consented: bool = True
    # Production.
    promised_at: datetime | None = None
    markers_passed: int = 0  # late-delivery markers already on the timeline
    milestones: list[MilestoneRecord] = []
    salvage_value: int = 0
    salvage_records: int = 0
    qc_failures: int = 0
    qc_passed: bool = False
    # Delivery and settlement.
    shipment: dict[str, str] | None = None
    shipped_at: datetime | None = None
    delivered: bool = False
    deliveries: int = 0
    delivered_at: datetime | None = None
    refused: bool = False
    refused_by: Actor | None = None  # who refused the goods at the door (cash on delivery)
    confirmed_by: str | None = None
    cod_remitted: bool = False
    cod_overdue: bool = False
    credit_overdue: bool = False
    credit_reminders: int = 0
    credit_done: bool = False
    # A partial refund closed a credit order while the buyer still owes the rest:
    # the repayment runs on to the end of the settlement period (CREDIT_DEBT_PATCH).
    credit_kept: bool = False
    aftersales: bool = False  # after-sales support applies (see AFTERSALES_PATCH)
    aftersales_done: bool = False
    # The after-sales window counts from delivery, as the policy and the return
    # rules say (time a case is open does not count); None/False: orders whose
    # window started at completion (before WINDOW_FROM_DELIVERY_PATCH).
    window_from_delivery: bool | None = None
    reinspecting: bool = False  # repaired goods under a fresh inspection, inside the after-sales window
    # Deadlines running now, and when each last fell due (ops may move them).
    deadlines: dict[str, DeadlineView] = {}
    last_due: dict[str, datetime] = {}
    paused: dict[str, int] = {}  # microseconds a paused window had left (a case paused it)
    cases: list[Case] = []
    repair_rounds: int = 0
    # Claims decisions recorded (a party owes another beyond what escrow covered);
    # status adds the debts that follow from the books (see OrderCore._owes).
    claims: list[Debt] = []
    closing: bool = False  # a cancellation is being carried out
    blocked: str | None = None  # why a due decision keeps failing (it is retried)
    closed: bool = False
    # How far the read model is: the last timeline seq and decision count projected.
    projected_seq: int = 0
    projected_decisions: int = 0
    runs: int = 1  # workflow runs this order has had (1 + times continued as new)
    # Reminders (REMINDER_PATCH): whether this order sends them, and the ones already
    # handled, as "deadline|due_at|lead" keys (bounded; see workflows/reminders.py).
    reminders_on: bool | None = None
    reminders_sent: list[str] = []
    # Party-requested extensions (workflows/extensions.py): how many each kind used,
    # and the seller's open request for more production time (seconds), if any.
    extensions_used: dict[str, int] = {}
    extended_seconds: dict[str, int] = {}
    more_time_asked: int | None = None
    more_time_note: str = ""

    @property
    def case(self) -> Case | None:
        """The open case, if any."""
        if self.cases and self.cases[-1].outcome is None:
            return self.cases[-1]
        return None

    def current_part(self) -> Part | None:
        if self.stage in (Stage.AWAITING_DEPOSIT, Stage.AWAITING_BALANCE) and self.part_index < len(self.parts):
            part = self.parts[self.part_index]
            # Retention is due only once the buyer has accepted the goods.
            if part.name == "retention" and self.confirmed_by is None:
                return None
            return part
        return None

    def costs_incurred(self) -> int:
        return sum(m.cost for m in self.milestones)


OrderInput.model_rebuild(_types_namespace={"OrderState": OrderState})
