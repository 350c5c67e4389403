"""The words every layer shares, each written once: the frozen-model base, the
payment-plan kinds, return reasons and production milestones.

It imports nothing from bespoke, so `rules/` (free of temporalio and sqlmodel, and
imported in the workflow sandbox) and `domain/models.py` both build on it and
neither has to import the other.
Value sets are Literal types or an enum; the tuples used for membership tests and
messages are derived from them (`get_args`), never restated.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """Base of every model that crosses a boundary or is cached: immutable, and an
    unknown field is an error rather than silently dropped."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class PlanKind(StrEnum):
    """How the buyer pays; the values are part of the CLI/JSON contract and of policies."""

    FULL_PREPAYMENT = "full_prepayment"
    STAGED = "staged"
    CREDIT = "credit"
    CASH_ON_DELIVERY = "cash_on_delivery"
    COLLECTION_ACCOUNT = "collection_account"


# The plan names as plain strings (what facts and policy files carry), in PlanKind order.
PLAN_NAMES: tuple[str, ...] = tuple(k.value for k in PlanKind)

ReturnReason = Literal["defect", "not_as_specified", "damaged_in_transit", "changed_mind"]
Milestone = Literal["materials", "fabrication", "finishing"]


# What each party may do to an order: the names of the order workflow's updates.
# A policy's `[on_behalf]` lists which of them platform operations may take for
# that party (the CLI is such an operator path).
PARTY_ACTIONS: dict[str, tuple[str, ...]] = {
    "buyer": ("consent", "pay", "confirm", "refuse", "cancel", "request_return", "answer_offer", "ship_return",
              "dispute", "evidence", "extend_inspection", "answer_more_time"),
    "seller": ("accept", "milestone", "salvage", "finish_production", "quality_check", "ship", "cancel",
               "respond_return", "receive_return", "reship", "dispute", "evidence", "extend_inspection",
               "ask_more_time"),
    "carrier": ("deliver", "refuse", "remit"),
    "system": ("pay",),
}
