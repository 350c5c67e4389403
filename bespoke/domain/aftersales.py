"""After-sales payloads (returns, repairs, disputes) and the case view in `status`.

Fields may be added with defaults; never remove or rename one, or histories of
running orders stop decoding. `bespoke.domain.models` re-exports every name here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from bespoke.domain.actor import MAX_AMOUNT, ActorInput
from bespoke.domain.vocabulary import Frozen, ReturnReason

class ReturnRequestInput(ActorInput):
    reason: ReturnReason
    remedy: Literal["refund", "repair"] = "refund"
    description: str = Field(default="", max_length=2000)
    evidence: tuple[str, ...] = Field(default=(), max_length=50)


class ReturnResponseInput(ActorInput):
    action: Literal["approve", "reject", "offer_partial", "offer_repair"]
    amount: int | None = Field(default=None, gt=0, le=MAX_AMOUNT)  # the partial refund offered
    reason: str = Field(default="", max_length=1000)

    @model_validator(mode="after")
    def _amount_for_offer(self) -> ReturnResponseInput:
        if self.action == "offer_partial" and self.amount is None:
            raise ValueError("a partial-refund offer needs an amount")
        if self.action != "offer_partial" and self.amount is not None:
            raise ValueError(f"an amount only goes with offer_partial, not {self.action}")
        return self


class OfferAnswerInput(ActorInput):
    accept: bool


class ShipReturnInput(ActorInput):
    carrier: str = Field(min_length=1, max_length=100)
    tracking: str = Field(min_length=1, max_length=100)
    shipping_cost: int = Field(default=0, ge=0, le=MAX_AMOUNT)


class ReceiveReturnInput(ActorInput):
    """The seller confirms the returned goods arrived and records what becomes of
    them (seed 002: rejected goods become stock the maker can resell)."""

    disposition: Literal["resell_as_stock", "scrap", "rework"]
    salvage_value: int = Field(default=0, ge=0, le=MAX_AMOUNT)
    note: str = Field(default="", max_length=1000)


class DisputeInput(ActorInput):
    claim: int | None = Field(default=None, gt=0, le=MAX_AMOUNT)  # the refund the buyer claims
    statement: str = Field(default="", max_length=4000)


class EvidenceInput(ActorInput):
    items: tuple[str, ...] = Field(default=(), max_length=50)
    final: bool = False


class ArbitrateInput(ActorInput):
    refund: int = Field(ge=0, le=MAX_AMOUNT)
    note: str = Field(min_length=1, max_length=4000)


class EvidenceItem(Frozen):
    party: str
    item: str
    at: datetime


class CaseView(Frozen):
    """One return / repair / dispute case and where it stands."""

    number: int
    reason: str
    remedy: str
    state: str
    opened_at: datetime
    description: str = ""
    evidence: list[EvidenceItem] = []
    offer: int | None = None
    return_shipping_payer: str | None = None
    return_shipment: dict[str, str] | None = None
    disposition: str | None = None
    dispute_opened_by: str | None = None
    claim: int | None = None
    finalised: list[str] = []
    outcome: str | None = None
    closed_at: datetime | None = None
