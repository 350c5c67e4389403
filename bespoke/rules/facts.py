"""Facts a decision is made from: frozen, validated inputs.

The lifecycle passes these in; rules never read a clock or a database. Money is
integer minor units (strict ints: a float or a numeric string is rejected). What a
decision table may test is read off these models (`schema.fact_specs`): a field's
type, bounds and description are its table spec.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import AwareDatetime, Field, model_validator

from bespoke.domain.vocabulary import PLAN_NAMES, Frozen, Milestone, ReturnReason

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
# The plan names are the PlanKind enum's values (bespoke.domain.vocabulary), as strings.
PaymentPlan = Literal[PLAN_NAMES]  # type: ignore[valid-type]

# The value sets are written once, as the Literal types above; the tuples are
# derived from them for membership tests and messages.
STAGES: tuple[str, ...] = get_args(Stage)
PARTIES: tuple[str, ...] = get_args(Party)
REASONS: tuple[str, ...] = get_args(Reason)
PAYMENT_PLANS: tuple[str, ...] = get_args(PaymentPlan)

Money = Annotated[int, Field(strict=True, ge=0)]
"""Integer minor units (cents, fen), never negative."""
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
"""ISO 4217 code."""
Count = Annotated[int, Field(strict=True, ge=0)]
Positive = Annotated[int, Field(strict=True, gt=0)]
Flag = Annotated[bool, Field(strict=True)]

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


class CancellationFacts(Frozen):
    """What is true when an order is cancelled before delivery.

    *Escrow* is buyer money the platform holds until the seller has earned it.
    *Salvage value* is what the seller can get by reselling goods already made as
    stock (an "end order"), which offsets the buyer's share of the cost.
    An *earnest deposit* (定金) is the part of the deposit that binds both sides:
    forfeited by a buyer who walks away, returned double by a seller who does; it
    has that effect only up to 20% of the price (the policy's cap).
    """

    stage: Stage = Field(description="order stage when cancelled")
    cancelled_by: Party = Field(description="who cancels")
    reason: Reason = Field(description="why")
    price: Positive = Field(description="order price, minor units")
    currency: Currency = Field(description="ISO 4217 currency")
    payment_plan: PaymentPlan = Field(description="payment plan")
    escrow_balance: Money = Field(description="buyer money held in escrow now")
    paid_total: Money = Field(description="everything the buyer has paid")
    costs_incurred: Money = Field(0, description="seller's costs so far")
    costs_by_milestone: dict[Milestone, Money] = Field(
        default_factory=dict, description="costs per milestone (plugins only)"
    )
    salvage_value: Money = Field(0, description="what the made goods resell for as stock")
    days_late: Count = Field(0, description="days past the promised date")
    earnest_deposit: Money = Field(0, description="earnest deposit paid")
    unpaid_commitment: Money = Field(
        0, description="what the buyer owes under its payment plan and has not paid: the price on "
                       "account-period credit or cash on delivery, a part that has fallen due")
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


class SettlementFacts(Frozen):
    """What is true when a completed order's escrow is settled."""

    price: Positive = Field(description="order price")
    currency: Currency = Field(description="ISO 4217 currency")
    escrow_balance: Money = Field(description="buyer money in escrow")
    days_late: Count = Field(0, description="days past the promised date")
    payment_plan: PaymentPlan = Field(description="payment plan")
    as_of: AwareDatetime


# --- after-sales -------------------------------------------------------------------

AftersalesStage = Literal["delivered", "completed"]
Remedy = Literal["refund", "repair"]
Payer = Literal["buyer", "seller"]
RefundOutcome = Literal[
    "return_received", "seller_silent_on_receipt", "partial_offer_accepted", "arbitration", "dispute_default"
]
DisputeOutcome = Literal["buyer_wins", "seller_wins", "ops_review"]

RETURN_REASONS: tuple[str, ...] = get_args(ReturnReason)
AFTERSALES_STAGES: tuple[str, ...] = get_args(AftersalesStage)
REMEDIES: tuple[str, ...] = get_args(Remedy)
PAYERS: tuple[str, ...] = get_args(Payer)
REFUND_OUTCOMES: tuple[str, ...] = get_args(RefundOutcome)
DISPUTE_OUTCOMES: tuple[str, ...] = get_args(DisputeOutcome)


class ReturnFacts(Frozen):
    """What is true when a buyer asks to return (or have repaired) delivered goods.

    `stage` is `delivered` while the inspection window is open, `completed` after
    the buyer confirmed (or the window lapsed); `days_since_delivery` is whole days.
    `repair_rounds` counts repairs already done on this order, across cases.
    """

    reason: ReturnReason = Field(description="why the buyer wants to return")
    stage: AftersalesStage = Field(description="delivered (inspection window open) or completed")
    remedy: Remedy = Field(description="what the buyer asks for")
    days_since_delivery: Count = Field(description="whole days since delivery")
    repair_rounds: Count = Field(description="repairs already done on this order")
    price: Positive = Field(description="order price, minor units")
    currency: Currency = Field(description="ISO 4217 currency")
    as_of: AwareDatetime

    @model_validator(mode="after")
    def _consistent(self) -> ReturnFacts:
        if self.reason == "changed_mind" and self.remedy == "repair":
            raise ValueError("remedy 'repair' cannot be asked for with reason 'changed_mind' (nothing is wrong with the goods)")
        return self


class RefundFacts(Frozen):
    """What is true when an after-sales case ends in a refund.

    Where the buyer's money is now: `escrow_balance` (still held), `released_to_seller`
    (net, already paid out and not yet charged back), `platform_fee_charged` (the
    platform's fee on released money, not yet refunded) and `refunded_so_far`. Money
    the buyer paid and was not refunded is in one of the first three, so
    `escrow_balance + released_to_seller + platform_fee_charged >= paid_total - refunded_so_far`
    (cash-on-delivery money still with the carrier must reach escrow first). Escrow
    may hold more than that (a credit line's advance).
    """

    reason: ReturnReason = Field(description="why the goods were returned")
    outcome: RefundOutcome = Field(description="how the case ended")
    requested_refund: Positive = Field(description="refund agreed or decided")
    price: Positive = Field(description="order price")
    currency: Currency = Field(description="ISO 4217 currency")
    paid_total: Money = Field(description="everything the buyer paid")
    refunded_so_far: Money = Field(description="already refunded")
    escrow_balance: Money = Field(description="buyer money still held")
    released_to_seller: Money = Field(description="net already paid out to the seller")
    platform_fee_charged: Money = Field(description="platform fee taken on released money")
    return_shipping_cost: Money = Field(0, description="what the buyer paid to ship the goods back")
    return_shipping_payer: Payer = Field(description="who pays return shipping")
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


class DisputeFacts(Frozen):
    """What is true when a dispute's evidence deadline passes.

    `buyer_submitted` / `seller_submitted`: that side submitted (or finalised)
    evidence before the deadline. `claim` is the refund the buyer asks for.
    """

    opened_by: Payer = Field(description="who escalated the case to a dispute")
    buyer_submitted: Flag = Field(description="the buyer submitted evidence before the deadline")
    seller_submitted: Flag = Field(description="the seller submitted evidence before the deadline")
    claim: Positive = Field(description="refund the buyer claims")
    price: Positive = Field(description="order price")
    currency: Currency = Field(description="ISO 4217 currency")
    as_of: AwareDatetime

    @model_validator(mode="after")
    def _consistent(self) -> DisputeFacts:
        if self.claim > self.price:
            raise ValueError(f"claim {self.claim} cannot exceed the price {self.price}")
        return self
