"""Pydantic models that cross the workflow boundary: inputs, update payloads,
ledger transactions and the live order view returned by the `status` query.

Fields may be added with defaults; never remove or rename one, or histories of
running orders stop decoding.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from bespoke.domain.actor import MAX_AMOUNT, Actor, ActorInput, Role  # noqa: F401  (re-exported)
from bespoke.domain.aftersales import (  # noqa: F401  (re-exported)
    ArbitrateInput,
    CaseView,
    DisputeInput,
    EvidenceInput,
    EvidenceItem,
    OfferAnswerInput,
    ReceiveReturnInput,
    ReturnRequestInput,
    ReturnResponseInput,
    ShipReturnInput,
)
from bespoke.domain.money import CURRENCY_EXPONENTS
from bespoke.domain.names import ORDER_ID_PATTERN
from bespoke.domain.text import clean_name  # noqa: F401  (callers import it from here too)
from bespoke.domain.vocabulary import Frozen, Milestone, PlanKind

if TYPE_CHECKING:
    from bespoke.domain.state import OrderState

class Stage(StrEnum):
    """Lifecycle stages; their values are part of the CLI/JSON contract."""

    AWAITING_ACCEPTANCE = "awaiting_acceptance"
    AWAITING_DEPOSIT = "awaiting_deposit"
    IN_PRODUCTION = "in_production"
    QUALITY_CHECK = "quality_check"
    AWAITING_BALANCE = "awaiting_balance"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    RETURN_REQUESTED = "return_requested"
    RETURN_IN_TRANSIT = "return_in_transit"
    REPAIR = "repair"
    DISPUTED = "disputed"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"


TERMINAL_STAGES = frozenset({Stage.COMPLETED, Stage.REFUNDED, Stage.CANCELLED})
PRE_DELIVERY_STAGES = frozenset(
    {
        Stage.AWAITING_ACCEPTANCE,
        Stage.AWAITING_DEPOSIT,
        Stage.IN_PRODUCTION,
        Stage.QUALITY_CHECK,
        Stage.AWAITING_BALANCE,
        Stage.SHIPPED,
    }
)


class Account(StrEnum):
    """Ledger accounts of one order."""

    BUYER = "buyer"
    ESCROW = "escrow"
    SELLER = "seller"
    PLATFORM_FEE = "platform_fee"
    CARRIER_COD = "carrier_cod"
    CREDIT_LINE = "credit_line"


class PaymentPlan(Frozen):
    """How the buyer pays. `ratios` (percent, summing to 100) only for staged:
    the first part is the deposit, middle parts are due after the quality check,
    and with three or more parts the last is retention paid after acceptance."""

    kind: PlanKind
    ratios: tuple[int, ...] = ()
    # Account-period credit: days after the buyer confirms receipt by which the
    # buyer repays; None takes the policy's `credit_settlement` deadline.
    settlement_days: int | None = Field(default=None, ge=1, le=365)

    @model_validator(mode="after")
    def _check(self) -> PaymentPlan:
        if self.kind is PlanKind.STAGED:
            if len(self.ratios) < 2:
                raise ValueError("a staged plan needs at least two parts, e.g. 30/70")
            if any(r <= 0 for r in self.ratios) or sum(self.ratios) != 100:
                raise ValueError(
                    f"staged ratios must be positive and sum to 100, got {'/'.join(map(str, self.ratios))}"
                )
        elif self.ratios:
            raise ValueError(f"ratios only apply to staged plans, not {self.kind.value}")
        return self

    @classmethod
    def parse(cls, text: str) -> PaymentPlan:
        """Parse `full_prepayment`, `staged:30/60/10`, `credit`, `credit:45`,
        `cash_on_delivery` (or `cod`), `collection_account`."""
        kind, _, arg = text.strip().partition(":")
        kind = {"cod": "cash_on_delivery", "full": "full_prepayment"}.get(kind, kind)
        try:
            plan_kind = PlanKind(kind)
        except ValueError:
            kinds = ", ".join(k.value for k in PlanKind)
            raise ValueError(f"unknown payment plan {kind!r} (plans: {kinds})") from None
        if plan_kind is PlanKind.STAGED:
            if arg.count("/") + arg.count(",") >= 10:
                raise ValueError("a staged plan has at most 10 parts")
            try:
                ratios = tuple(int(p) for p in arg.replace(",", "/").split("/") if p)
            except ValueError:
                raise ValueError(f"staged ratios must be integers like 30/70, got {arg!r}") from None
            return cls(kind=plan_kind, ratios=ratios)
        if plan_kind is PlanKind.CREDIT and arg:
            try:
                days = int(arg)
            except ValueError:
                raise ValueError(f"credit settlement days must be an integer, got {arg!r}") from None
            if not 1 <= days <= 365:
                raise ValueError(f"credit settlement days must be between 1 and 365, got {arg!r}")
            return cls(kind=plan_kind, settlement_days=days)
        if arg:
            raise ValueError(f"plan {plan_kind.value} takes no argument, got {arg!r}")
        return cls(kind=plan_kind)

    def label(self) -> str:
        if self.kind is PlanKind.STAGED:
            return f"staged:{'/'.join(map(str, self.ratios))}"
        return self.kind.value


def _check_amount(value: int) -> int:
    if value <= 0:
        raise ValueError(f"amount must be positive, got {value}")
    if value > MAX_AMOUNT:
        raise ValueError(f"amount {value} is larger than the maximum {MAX_AMOUNT}")
    return value


def _check_currency(value: str) -> str:
    if value not in CURRENCY_EXPONENTS:
        raise ValueError(f"unknown currency {value!r}")
    return value


class OrderInput(Frozen):
    """Workflow input. The order is pinned to its policy by name, version, the
    sha256 of the policy's canonical content and the plugin versions, so editing or
    publishing a policy never changes a running order. The input carries the
    policy's `terms` (what the workflow reads itself: deadlines, fees, limits,
    payment plans); the rules activities load the whole policy from the policy
    store by the pin. Orders started before the store carry the whole `policy`
    instead (and still replay)."""

    order_id: str = Field(min_length=1, max_length=64, pattern=ORDER_ID_PATTERN)
    buyer: str = Field(min_length=1, max_length=200)
    seller: str = Field(min_length=1, max_length=200)
    title: str = Field(default="", max_length=500)
    price: int
    currency: str
    plan: PaymentPlan
    production_days: int = Field(ge=1, le=365)
    earnest_deposit: bool = False
    # Policy.model_dump(mode="json"), whole: orders started before the policy store.
    policy: dict[str, Any] | None = None
    pin: dict[str, Any]  # PolicyPin.model_dump(mode="json")
    # bespoke.rules.pins.policy_terms of the pinned policy; checked against the
    # stored policy before the order starts.
    terms: dict[str, Any] | None = None
    created_by: Actor
    virtual_account: str | None = None
    shipping_address: str = Field(default="", max_length=1000)
    # With payload encryption: what the BespokeBuyer / BespokeSeller search
    # attributes hold instead of the names (a keyed hash, set by start_order).
    index_buyer: str | None = Field(default=None, max_length=64)
    index_seller: str | None = Field(default=None, max_length=64)
    # Set only when a run continues as new: everything the order knows so far.
    state: OrderState | None = None

    _price = field_validator("price")(classmethod(lambda cls, v: _check_amount(v)))
    _currency = field_validator("currency")(classmethod(lambda cls, v: _check_currency(v)))


# --- update payloads -------------------------------------------------------


class PayInput(ActorInput):
    amount: int
    currency: str
    reference: str = Field(min_length=1, max_length=200)
    method: Literal["card", "bank_transfer", "wallet", "credit_repayment"] = "card"
    # Why ops records this payment by hand (a bank transfer seen outside the
    # collection-account matching): required from ops, kept on the timeline.
    reason: str = Field(default="", max_length=500)

    _amount = field_validator("amount")(classmethod(lambda cls, v: _check_amount(v)))
    _currency = field_validator("currency")(classmethod(lambda cls, v: _check_currency(v)))



class MilestoneInput(ActorInput):
    milestone: Milestone
    cost: int = Field(ge=0, le=MAX_AMOUNT)
    note: str = Field(default="", max_length=1000)


class SalvageInput(ActorInput):
    """The seller's estimate of what the made goods resell for as stock."""

    value: int = Field(ge=0, le=MAX_AMOUNT)


class QcInput(ActorInput):
    passed: bool
    note: str = Field(default="", max_length=1000)


class ShipInput(ActorInput):
    carrier: str = Field(min_length=1, max_length=100)
    tracking: str = Field(min_length=1, max_length=100)


class DeliverInput(ActorInput):
    # Cash on delivery: what the carrier collected from the buyer at the door.
    collected: int | None = Field(default=None, gt=0, le=MAX_AMOUNT)
    reference: str | None = Field(default=None, max_length=200)


class RemitInput(ActorInput):
    amount: int
    reference: str = Field(min_length=1, max_length=200)

    _amount = field_validator("amount")(classmethod(lambda cls, v: _check_amount(v)))


class CancelInput(ActorInput):
    reason: str = Field(default="", max_length=500)


class ReasonInput(ActorInput):
    reason: str = Field(default="", max_length=500)


class ActionResult(Frozen):
    order_id: str
    stage: Stage
    message: str


# --- ledger ----------------------------------------------------------------


class Leg(Frozen):
    account: Account
    amount: int  # positive: the account receives; negative: it gives


class Transaction(Frozen):
    """One balanced ledger transaction; `key` makes posting idempotent."""

    order_id: str
    key: str
    kind: str
    currency: str
    legs: tuple[Leg, ...]
    memo: str = ""
    at: datetime

    @model_validator(mode="after")
    def _balanced(self) -> Transaction:
        if sum(leg.amount for leg in self.legs) != 0:
            raise ValueError(f"transaction {self.key} does not sum to zero")
        return self


# --- live view ---------------------------------------------------------------


class TimelineEntry(Frozen):
    seq: int
    at: datetime
    kind: str
    actor: str
    message: str
    # Structured detail for machines (a reminder's deadline, due time, lead, party
    # and default action); None for entries whose message says it all.
    data: dict[str, Any] | None = None


class DeadlineView(Frozen):
    name: str
    due_at: datetime
    default_action: str


class PolicyRef(Frozen):
    name: str
    version: str
    sha256: str


class MilestoneRecord(Frozen):
    milestone: str
    cost: int
    note: str
    at: datetime
    actor: str


class PaymentRecord(Frozen):
    reference: str
    amount: int
    method: str
    actor: str
    at: datetime
    part: str
    reason: str = ""


class Debt(Frozen):
    """What one party owes another on an order, beyond what the ledger has moved: a
    claim a decision recorded (the buyer's share of the maker's costs that escrow
    could not cover, an unpaid retention), credit not yet repaid, cash a carrier has
    not remitted, a seller's balance below zero. Parties as ROLE:NAME, or
    "platform"."""

    debtor: str
    creditor: str
    amount: int
    why: str
    since: datetime
    due_at: datetime | None = None


class ExtensionsNow(Frozen):
    """The extensions the parties may ask for now (policy `[extensions]`), as the
    workflow's validators see it; the validator still decides when the update comes."""

    # From when the buyer may extend the inspection window (once little of it is
    # left), and by how much; None: not in this window (used, a case is open).
    buyer_inspection_from: datetime | None = None
    buyer_inspection_by_seconds: int = 0
    # How much longer the seller may still extend it for the buyer (0: not now).
    seller_inspection_max_seconds: int = 0
    # How much more production time the seller may still ask for (0: not now).
    more_time_max_seconds: int = 0
    # The seller's request waiting for the buyer's answer (None: none waits).
    more_time_asked_seconds: int | None = None
    more_time_reason: str = ""


class OrderView(Frozen):
    """What `bespoke order status --json` prints. Amounts in minor units."""

    order_id: str
    stage: Stage
    title: str
    buyer: str
    seller: str
    policy: PolicyRef
    payment_plan: str
    price: int
    currency: str
    paid: int
    refunded: int
    released_to_seller: int
    platform_fee: int
    escrow: int
    costs_incurred: int
    salvage_value: int
    late_penalty: int
    credit_outstanding: int
    amount_due: int
    next_step: str
    promised_at: datetime | None
    deadlines: list[DeadlineView]
    milestones: list[MilestoneRecord]
    payments: list[PaymentRecord]
    shipment: dict[str, str] | None
    qc_failures: int
    timeline: list[TimelineEntry]
    decisions: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime
    cases: list[CaseView] = []
    open_case: CaseView | None = None
    repair_rounds: int = 0
    # Workflow runs the order has had: it continues as new before a run gets long.
    runs: int = 1
    # Why the order cannot move on right now (a rules decision keeps failing; it is retried).
    blocked: str | None = None
    # False while an order someone else created waits for the buyer to agree to it.
    buyer_consented: bool = True
    # `timeline` is a page of the newest entries the workflow keeps (bounded); the
    # order has `timeline_total` in all, every one of them in the read model
    # (`bespoke order history ORDER_ID --all`). `timeline_more`: older entries exist.
    timeline_total: int = 0
    timeline_more: bool = False
    # What each party owes (claims and debts), and when the next step is due (None:
    # nobody has to act by a deadline, e.g. ops deciding a dispute).
    owes: list[Debt] = []
    next_step_due: datetime | None = None
    # The extensions open now (None: the policy allows none, or the order is closing).
    extensions: ExtensionsNow | None = None


class OrderProjection(Frozen):
    """The read-model row an activity upserts after every change."""

    order_id: str
    stage: Stage
    title: str
    buyer: str
    seller: str
    payment_plan: str
    price: int
    currency: str
    policy_name: str
    policy_version: str
    paid: int
    refunded: int
    released_to_seller: int
    created_at: datetime
    updated_at: datetime
    # As OrderView's next_step / next_step_due / blocked (the workflow cuts the texts
    # to the columns' sizes); projections from before these fields read as "", None, None.
    next_step: str = ""
    next_step_due: datetime | None = None
    blocked: str | None = None


class ProjectInput(Frozen):
    projection: OrderProjection
    timeline: list[TimelineEntry] = []
    decisions: list[dict[str, Any]] = []
    # The order's debts as they stand (replacing the stored ones); None: unchanged
    # (a workflow from before debts were projected).
    owes: list[Debt] | None = None
    # The carrier the goods were last shipped with: who, besides the parties, may
    # see the order's events (the outbox records it); None before shipping and in
    # runs recorded before it was sent.
    carrier: str | None = None


class ReadModelSync(Frozen):
    """One read-model write (the `sync_read_model` activity, "sync-local-v1"): the
    ledger transactions to post and the order's projection, in one database
    transaction. Run as a local activity it returns itself, so the history's marker
    holds what was written, as an activity's scheduled event holds its input
    (`bespoke db rebuild` reads both)."""

    transactions: list[Transaction] = []
    project: ProjectInput


class OrderResult(Frozen):
    order_id: str
    stage: Stage
    paid: int
    refunded: int
    released_to_seller: int
    platform_fee: int


MAX_OVERRIDE_EXTENSION_S = 365 * 86400


class OverrideDeadlineInput(ActorInput):
    """Platform operations move a running deadline: extend it (the buyer is
    travelling, the carrier lost a week) or bring it to now, so its default action
    happens at once. Only ops may; the reason goes on the timeline with the actor."""

    deadline: str = Field(min_length=1, max_length=100)
    extend_seconds: int = Field(default=0, ge=0, le=MAX_OVERRIDE_EXTENSION_S)
    now: bool = False
    reason: str = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _one_change(self) -> OverrideDeadlineInput:
        if self.now == (self.extend_seconds > 0):
            raise ValueError("give either an extension (more than 0 seconds) or now, not both and not neither")
        if not self.reason.strip():
            raise ValueError("a reason is required")
        return self


# OrderInput.state refers to the state model, which is built from the models above;
# importing it here completes OrderInput (state.py rebuilds it) whichever module
# is imported first.
import bespoke.domain.state  # noqa: E402,F401
