"""What each built-in decision table may test and output.

A table named `cancellation` or `settlement` feeds a built-in decision, so its
conditions must name facts that decision provides (with values of the right type)
and its outputs must be parameters that decision understands. Other tables are
free-form: any fact name, any output name.
"""

from __future__ import annotations

from dataclasses import dataclass

from .facts import PARTIES, PAYMENT_PLANS, REASONS, STAGES


@dataclass(frozen=True)
class Spec:
    type: str  # "str" | "int" | "bool" | "map"
    doc: str
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None


_MONEY = "int"

CANCELLATION_FACTS: dict[str, Spec] = {
    "stage": Spec("str", "order stage when cancelled", STAGES),
    "cancelled_by": Spec("str", "who cancels", PARTIES),
    "reason": Spec("str", "why", REASONS),
    "payment_plan": Spec("str", "payment plan", PAYMENT_PLANS),
    "currency": Spec("str", "ISO 4217 currency"),
    "price": Spec(_MONEY, "order price, minor units", minimum=0),
    "escrow_balance": Spec(_MONEY, "buyer money held in escrow now", minimum=0),
    "paid_total": Spec(_MONEY, "everything the buyer has paid", minimum=0),
    "costs_incurred": Spec(_MONEY, "seller's costs so far", minimum=0),
    "salvage_value": Spec(_MONEY, "what the made goods resell for as stock", minimum=0),
    "days_late": Spec("int", "days past the promised date", minimum=0),
    "earnest_deposit": Spec(_MONEY, "earnest deposit paid", minimum=0),
    "costs_by_milestone": Spec("map", "costs per milestone (plugins only)"),
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
    "price": Spec(_MONEY, "order price", minimum=0),
    "currency": Spec("str", "ISO 4217 currency"),
    "escrow_balance": Spec(_MONEY, "buyer money in escrow", minimum=0),
    "days_late": Spec("int", "days past the promised date", minimum=0),
    "payment_plan": Spec("str", "payment plan", PAYMENT_PLANS),
    "past_grace": Spec("bool", "late by more than the production grace period"),
}

SETTLEMENT_OUTPUTS: dict[str, Spec] = {
    "late_penalty": Spec("bool", "seller pays the daily late penalty"),
    "penalty_free_days": Spec("int", "late days not counted for the penalty", minimum=0),
}

SETTLEMENT_OUTPUT_DEFAULTS: dict[str, object] = {"late_penalty": False, "penalty_free_days": 0}

TABLE_SCHEMAS: dict[str, tuple[dict[str, Spec], dict[str, Spec]]] = {
    "cancellation": (CANCELLATION_FACTS, CANCELLATION_OUTPUTS),
    "settlement": (SETTLEMENT_FACTS, SETTLEMENT_OUTPUTS),
}

DECISION_RESULT_FIELDS: dict[str, tuple[str, ...]] = {
    "cancellation": ("refund_to_buyer", "to_seller", "platform_fee", "seller_pays_buyer", "buyer_owes_seller"),
    "settlement": ("to_seller", "platform_fee", "late_penalty_to_buyer"),
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
