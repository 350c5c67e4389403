"""What each built-in decision table may test and output.

A table named `cancellation`, `settlement`, `return_terms`, `return_shipping`,
`repair`, `refund` or `dispute_default` feeds a built-in decision, so its
conditions must name facts that decision provides (with values of the right type)
and its outputs must be parameters that decision understands. Other tables are
free-form: any fact name, any output name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from .facts import (
    DISPUTE_OUTCOMES,
    PAYERS,
    CancellationFacts,
    DisputeFacts,
    RefundFacts,
    ReturnFacts,
    SettlementFacts,
)


@dataclass(frozen=True)
class Spec:
    type: str  # "str" | "int" | "bool" | "map"
    doc: str
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None


_MONEY = "int"


def _fact_spec(name: str, info: FieldInfo) -> Spec:
    ann, doc = info.annotation, info.description or ""
    if get_origin(ann) is Literal:
        return Spec("str", doc, tuple(get_args(ann)))
    if ann is bool:
        return Spec("bool", doc)
    if ann is str:
        return Spec("str", doc)
    if ann is int:
        minimum = None
        for m in info.metadata:
            if isinstance(m, annotated_types.Ge):
                minimum = int(m.ge)  # type: ignore[call-overload]
            elif isinstance(m, annotated_types.Gt):
                minimum = int(m.gt) + 1  # type: ignore[call-overload]
        return Spec("int", doc, minimum=minimum)
    if get_origin(ann) is dict:
        return Spec("map", doc)
    raise TypeError(f"fact {name!r}: no table spec for {ann!r}")


def fact_specs(model: type[BaseModel]) -> dict[str, Spec]:
    """What a table may test of a facts model: each field's type, choices, lower
    bound and description, read off the model so the two never disagree. `as_of` is
    left out: rules never look at the clock."""
    return {name: _fact_spec(name, info) for name, info in model.model_fields.items() if name != "as_of"}


CANCELLATION_FACTS: dict[str, Spec] = {
    **fact_specs(CancellationFacts),
    # derived by decide_cancellation
    "past_grace": Spec("bool", "late by more than the production grace period"),
    "has_earnest": Spec("bool", "an earnest deposit was paid"),
    "net_cost": Spec(_MONEY, "costs incurred minus salvage value, not below zero", minimum=0),
    "released_to_seller": Spec(_MONEY, "paid but no longer in escrow (already released)", minimum=0),
}

CANCELLATION_OUTPUTS: dict[str, Spec] = {
    "buyer_cost_share_bps": Spec("int", "share of net cost the buyer bears, basis points", minimum=0, maximum=10_000),
    "cap": Spec("str", "what bounds the buyer's cost share", ("paid", "price", "none")),
    "charge_bps": Spec("int", "agreed cancellation charge, basis points of price", minimum=0, maximum=10_000),
    "charge_fixed": Spec("int", "agreed cancellation charge, fixed minor units", minimum=0),
    "earnest": Spec("str", "what happens to an earnest deposit", ("refund", "forfeit", "double")),
    "late_penalty": Spec("bool", "seller pays the daily late penalty"),
    "platform_fee": Spec("bool", "platform takes its fee from the seller's compensation"),
    "breach": Spec("str", "who broke the deal", ("none", "buyer", "seller")),
}

CANCELLATION_OUTPUT_DEFAULTS: dict[str, object] = {
    "buyer_cost_share_bps": 0,
    "cap": "paid",
    "charge_bps": 0,
    "charge_fixed": 0,
    "earnest": "refund",
    "late_penalty": False,
    "platform_fee": True,
    "breach": "none",
}

SETTLEMENT_FACTS: dict[str, Spec] = {
    **fact_specs(SettlementFacts),
    # derived by decide_settlement
    "past_grace": Spec("bool", "late by more than the production grace period"),
}

SETTLEMENT_OUTPUTS: dict[str, Spec] = {
    "late_penalty": Spec("bool", "seller pays the daily late penalty"),
    "penalty_free_days": Spec("int", "late days not counted for the penalty", minimum=0),
}

SETTLEMENT_OUTPUT_DEFAULTS: dict[str, object] = {"late_penalty": False, "penalty_free_days": 0}

# --- after-sales ---------------------------------------------------------------
# decide_return_terms runs three tables over the same facts: `return_terms` (may the
# buyer return at all), `return_shipping` (who pays the carrier to send the goods
# back) and `repair` (may the seller still offer a repair).

RETURN_FACTS: dict[str, Spec] = {
    **fact_specs(ReturnFacts),
    # derived by decide_return_terms
    "within_window": Spec("bool", "within the policy's after-sales window of delivery"),
    "repair_limit_reached": Spec("bool", "repair_rounds has reached limits.max_repair_rounds"),
    "max_repair_rounds": Spec("int", "limits.max_repair_rounds", minimum=0),
}

RETURN_TERMS_OUTPUTS: dict[str, Spec] = {
    "allowed": Spec("bool", "the buyer may open this return"),
}
RETURN_SHIPPING_OUTPUTS: dict[str, Spec] = {
    "return_shipping_payer": Spec("str", "who pays to ship the goods back", PAYERS),
}
REPAIR_OUTPUTS: dict[str, Spec] = {
    "repair_allowed": Spec("bool", "the seller may (still) offer a repair"),
    "refund_only": Spec("bool", "the buyer may demand a refund instead of another repair"),
}
RETURN_OUTPUT_DEFAULTS: dict[str, object] = {
    "allowed": False,
    "return_shipping_payer": "seller",
    "repair_allowed": False,
    "refund_only": False,
}

REFUND_FACTS: dict[str, Spec] = {
    **fact_specs(RefundFacts),
    # derived by decide_refund
    "unrefunded": Spec(_MONEY, "paid_total - refunded_so_far", minimum=0),
    "escrow_covers": Spec("bool", "escrow alone covers the refund"),
}
REFUND_OUTPUTS: dict[str, Spec] = {
    "fee_refund": Spec("str", "platform fee on charged-back money goes back to the seller", ("pro_rata", "none")),
    "reimburse_shipping": Spec("bool", "a seller who pays return shipping reimburses the buyer's carrier cost"),
}
REFUND_OUTPUT_DEFAULTS: dict[str, object] = {"fee_refund": "pro_rata", "reimburse_shipping": True}

DISPUTE_FACTS: dict[str, Spec] = fact_specs(DisputeFacts)
DISPUTE_OUTPUTS: dict[str, Spec] = {
    "outcome": Spec("str", "who the dispute is decided for", DISPUTE_OUTCOMES),
    "refund_bps": Spec("int", "share of the claim refunded when the buyer wins, basis points", minimum=0, maximum=10_000),
}
DISPUTE_OUTPUT_DEFAULTS: dict[str, object] = {"outcome": "ops_review", "refund_bps": 10_000}

TABLE_SCHEMAS: dict[str, tuple[dict[str, Spec], dict[str, Spec]]] = {
    "cancellation": (CANCELLATION_FACTS, CANCELLATION_OUTPUTS),
    "settlement": (SETTLEMENT_FACTS, SETTLEMENT_OUTPUTS),
    "return_terms": (RETURN_FACTS, RETURN_TERMS_OUTPUTS),
    "return_shipping": (RETURN_FACTS, RETURN_SHIPPING_OUTPUTS),
    "repair": (RETURN_FACTS, REPAIR_OUTPUTS),
    "refund": (REFUND_FACTS, REFUND_OUTPUTS),
    "dispute_default": (DISPUTE_FACTS, DISPUTE_OUTPUTS),
}

# The tables each built-in decision evaluates, in order.
DECISION_TABLES: dict[str, tuple[str, ...]] = {
    "cancellation": ("cancellation",),
    "settlement": ("settlement",),
    "return_terms": ("return_terms", "return_shipping", "repair"),
    "refund": ("refund",),
    "dispute_default": ("dispute_default",),
}

DECISION_RESULT_FIELDS: dict[str, tuple[str, ...]] = {
    "cancellation": ("refund_to_buyer", "to_seller", "platform_fee", "seller_pays_buyer", "buyer_owes_seller"),
    "settlement": ("to_seller", "platform_fee", "late_penalty_to_buyer"),
    "return_terms": ("allowed", "return_shipping_payer", "repair_allowed", "refund_only"),
    "refund": ("refund_from_escrow", "chargeback_from_seller", "fee_refund_to_seller", "shipping_reimbursement"),
    "dispute_default": ("outcome", "refund"),
}


def value_matches(spec: Spec, value: object) -> str | None:
    """None if `value` fits `spec`, else what was expected."""
    t = spec.type
    if t == "bool":
        ok = isinstance(value, bool)
        return None if ok else "expected true or false"
    if t == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return "expected an integer"
        if spec.minimum is not None and value < spec.minimum:
            return f"expected an integer >= {spec.minimum}"
        if spec.maximum is not None and value > spec.maximum:
            return f"expected an integer <= {spec.maximum}"
        return None
    if t == "str":
        if not isinstance(value, str):
            return "expected a string"
        if spec.choices and value not in spec.choices:
            return "expected one of " + ", ".join(spec.choices)
        return None
    return "this fact cannot be used in a table condition"
