"""Facts a decision is made from: frozen, validated inputs.

The lifecycle passes these in; rules never read a clock or a database. Money is
integer minor units (strict ints: a float or a numeric string is rejected).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

STAGES: tuple[str, ...] = (
    "awaiting_acceptance",
    "awaiting_deposit",
    "in_production",
    "quality_check",
    "awaiting_balance",
    "shipped",
)
PRE_PRODUCTION_STAGES: tuple[str, ...] = ("awaiting_acceptance", "awaiting_deposit")
PARTIES: tuple[str, ...] = ("buyer", "seller", "system")
REASONS: tuple[str, ...] = (
    "buyer_request",
    "seller_request",
    "acceptance_timeout",
    "deposit_timeout",
    "balance_timeout",
    "qc_rework_limit",
    "late_delivery",
    "cod_refused",
)
PAYMENT_PLANS: tuple[str, ...] = (
    "full_prepayment",
    "staged",
    "credit",
    "cash_on_delivery",
    "collection_account",
)
MILESTONES: tuple[str, ...] = ("materials", "fabrication", "finishing")

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
