"""Facts a decision is made from: frozen, validated inputs.

The lifecycle passes these in; rules never read a clock or a database. Money is
integer minor units (strict ints: a float or a numeric string is rejected).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

Stage = Literal[
    "awaiting_acceptance", "awaiting_deposit", "in_production", "quality_check", "awaiting_balance", "shipped"
]
Party = Literal["buyer", "seller", "system"]
Reason = Literal[
    "buyer_request",
    "seller_request",
    "acceptance_timeout",
    "deposit_timeout",
    "balance_timeout",
    "qc_rework_limit",
    "late_delivery",
    "cod_refused",
]
PaymentPlan = Literal["full_prepayment", "staged", "credit", "cash_on_delivery", "collection_account"]
Milestone = Literal["materials", "fabrication", "finishing"]

# The value sets are written once, as the Literal types above; the tuples are
# derived from them for membership tests and messages.
STAGES: tuple[str, ...] = get_args(Stage)
PRE_PRODUCTION_STAGES: tuple[str, ...] = ("awaiting_acceptance", "awaiting_deposit")
PARTIES: tuple[str, ...] = get_args(Party)
REASONS: tuple[str, ...] = get_args(Reason)
PAYMENT_PLANS: tuple[str, ...] = get_args(PaymentPlan)
MILESTONES: tuple[str, ...] = get_args(Milestone)

Money = Annotated[int, Field(strict=True, ge=0)]
"""Integer minor units (cents, fen), never negative."""
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
"""ISO 4217 code."""

# Which reasons each party can give, and at which stages a reason can happen. A
# combination outside these is a caller bug, rejected before any rule runs.
REASONS_BY_PARTY: dict[str, frozenset[str]] = {
    "buyer": frozenset({"buyer_request", "late_delivery", "cod_refused"}),
    "seller": frozenset({"seller_request"}),
    "system": frozenset(
        {"acceptance_timeout", "deposit_timeout", "balance_timeout", "qc_rework_limit", "late_delivery", "cod_refused"}
    ),
}
STAGES_BY_REASON: dict[str, frozenset[str]] = {
    "buyer_request": frozenset(STAGES),
    "seller_request": frozenset(STAGES),
    "acceptance_timeout": frozenset({"awaiting_acceptance"}),
    "deposit_timeout": frozenset({"awaiting_deposit"}),
    "balance_timeout": frozenset({"awaiting_balance"}),
    "qc_rework_limit": frozenset({"quality_check"}),
    "late_delivery": frozenset({"in_production", "quality_check", "awaiting_balance", "shipped"}),
    "cod_refused": frozenset({"shipped"}),
}


class _Facts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CancellationFacts(_Facts):
    """What is true when an order is cancelled before delivery.

    *Escrow* is buyer money the platform holds until the seller has earned it.
    *Salvage value* is what the seller can get by reselling goods already made as
    stock (an "end order"), which offsets the buyer's share of the cost.
    An *earnest deposit* (定金) is the part of the deposit that binds both sides:
    forfeited by a buyer who walks away, returned double by a seller who does; it
    has that effect only up to 20% of the price (the policy's cap).
    """

    stage: Stage
    cancelled_by: Party
    reason: Reason
    price: Annotated[int, Field(strict=True, gt=0)]
    currency: Currency
    payment_plan: PaymentPlan
    escrow_balance: Money
    paid_total: Money
    costs_incurred: Money = 0
    costs_by_milestone: dict[Milestone, Money] = Field(default_factory=dict)
    salvage_value: Money = 0
    days_late: Annotated[int, Field(strict=True, ge=0)] = 0
    earnest_deposit: Money = 0
    as_of: AwareDatetime

    @model_validator(mode="after")
    def _consistent(self) -> CancellationFacts:
        if self.reason not in REASONS_BY_PARTY[self.cancelled_by]:
            allowed = ", ".join(sorted(REASONS_BY_PARTY[self.cancelled_by]))
            raise ValueError(f"reason {self.reason!r} cannot be given by the {self.cancelled_by} (expected one of {allowed})")
        if self.stage not in STAGES_BY_REASON[self.reason]:
            allowed = ", ".join(s for s in STAGES if s in STAGES_BY_REASON[self.reason])
            raise ValueError(f"reason {self.reason!r} cannot happen at stage {self.stage!r} (expected stage {allowed})")
        if self.earnest_deposit > self.paid_total:
            raise ValueError("earnest_deposit cannot exceed paid_total (an earnest deposit is money already paid)")
        return self


class SettlementFacts(_Facts):
    """What is true when a completed order's escrow is settled."""

    price: Annotated[int, Field(strict=True, gt=0)]
    currency: Currency
    escrow_balance: Money
    days_late: Annotated[int, Field(strict=True, ge=0)] = 0
    payment_plan: PaymentPlan
    as_of: AwareDatetime


def facts_dict(facts: BaseModel) -> dict[str, Any]:
    """The facts as a plain dict (datetime kept); cheaper than model_dump."""
    return dict(facts.__dict__)


def as_of_of(facts: BaseModel) -> datetime:
    return facts.__dict__["as_of"]


# --- after-sales -------------------------------------------------------------------

RETURN_REASONS: tuple[str, ...] = ("defect", "not_as_specified", "damaged_in_transit", "changed_mind")
AFTERSALES_STAGES: tuple[str, ...] = ("delivered", "completed")
REMEDIES: tuple[str, ...] = ("refund", "repair")
PAYERS: tuple[str, ...] = ("buyer", "seller")
REFUND_OUTCOMES: tuple[str, ...] = (
    "return_received",
    "seller_silent_on_receipt",
    "partial_offer_accepted",
    "arbitration",
    "dispute_default",
)
DISPUTE_OUTCOMES: tuple[str, ...] = ("buyer_wins", "seller_wins", "ops_review")

ReturnReason = Literal["defect", "not_as_specified", "damaged_in_transit", "changed_mind"]
AftersalesStage = Literal["delivered", "completed"]
Remedy = Literal["refund", "repair"]
Payer = Literal["buyer", "seller"]
RefundOutcome = Literal[
    "return_received", "seller_silent_on_receipt", "partial_offer_accepted", "arbitration", "dispute_default"
]
DisputeOutcome = Literal["buyer_wins", "seller_wins", "ops_review"]
Count = Annotated[int, Field(strict=True, ge=0)]
Positive = Annotated[int, Field(strict=True, gt=0)]
Flag = Annotated[bool, Field(strict=True)]


class ReturnFacts(_Facts):
    """What is true when a buyer asks to return (or have repaired) delivered goods.

    `stage` is `delivered` while the inspection window is open, `completed` after
    the buyer confirmed (or the window lapsed); `days_since_delivery` is whole days.
    `repair_rounds` counts repairs already done on this order, across cases.
    """

    reason: ReturnReason
    stage: AftersalesStage
    remedy: Remedy
    days_since_delivery: Count
    repair_rounds: Count
    price: Positive
    currency: Currency
    as_of: AwareDatetime

    @model_validator(mode="after")
    def _consistent(self) -> ReturnFacts:
        if self.reason == "changed_mind" and self.remedy == "repair":
            raise ValueError("remedy 'repair' cannot be asked for with reason 'changed_mind' (nothing is wrong with the goods)")
        return self


class RefundFacts(_Facts):
    """What is true when an after-sales case ends in a refund.

    Where the buyer's money is now: `escrow_balance` (still held), `released_to_seller`
    (net, already paid out and not yet charged back), `platform_fee_charged` (the
    platform's fee on released money, not yet refunded) and `refunded_so_far`. Money
    the buyer paid and was not refunded is in one of the first three, so
    `escrow_balance + released_to_seller + platform_fee_charged >= paid_total - refunded_so_far`
    (cash-on-delivery money still with the carrier must reach escrow first). Escrow
    may hold more than that (a credit line's advance).
    """

    reason: ReturnReason
    outcome: RefundOutcome
    requested_refund: Positive
    price: Positive
    currency: Currency
    paid_total: Money
    refunded_so_far: Money
    escrow_balance: Money
    released_to_seller: Money
    platform_fee_charged: Money
    return_shipping_cost: Money = 0
    return_shipping_payer: Payer
    as_of: AwareDatetime

    @model_validator(mode="after")
    def _consistent(self) -> RefundFacts:
        if self.requested_refund > self.price:
            raise ValueError(f"requested_refund {self.requested_refund} cannot exceed the price {self.price}")
        if self.refunded_so_far > self.paid_total:
            raise ValueError(f"refunded_so_far {self.refunded_so_far} cannot exceed paid_total {self.paid_total}")
        unrefunded = self.paid_total - self.refunded_so_far
        # Escrow may hold more than the buyer paid (a credit line advances the price
        # into escrow), so only the lower bound is checked: money paid and not yet
        # refunded must be somewhere a refund can come from.
        held = self.escrow_balance + self.released_to_seller + self.platform_fee_charged
        if held < unrefunded:
            raise ValueError(
                f"escrow_balance + released_to_seller + platform_fee_charged = {held} is less than "
                f"paid_total - refunded_so_far = {unrefunded}: the buyer's unrefunded money must be in escrow, "
                "with the seller, or the platform fee"
            )
        if self.outcome == "partial_offer_accepted" and self.return_shipping_cost:
            raise ValueError("return_shipping_cost must be 0 for outcome 'partial_offer_accepted' (the buyer keeps the goods)")
        return self


class DisputeFacts(_Facts):
    """What is true when a dispute's evidence deadline passes.

    `buyer_submitted` / `seller_submitted`: that side submitted (or finalised)
    evidence before the deadline. `claim` is the refund the buyer asks for.
    """

    opened_by: Payer
    buyer_submitted: Flag
    seller_submitted: Flag
    claim: Positive
    price: Positive
    currency: Currency
    as_of: AwareDatetime

    @model_validator(mode="after")
    def _consistent(self) -> DisputeFacts:
        if self.claim > self.price:
            raise ValueError(f"claim {self.claim} cannot exceed the price {self.price}")
        return self
