from __future__ import annotations

import json

import pytest

from bespoke.rules import (
    CancellationDecision,
    DecisionError,
    Explanation,
    PolicyError,
    SettlementFacts,
    allocate,
    apply_bps,
    decide_cancellation,
    decide_settlement,
    load_policy_text,
    pin_policy,
    staged_amounts,
)
from bespoke.rules.describe import describe_policy, quote_text

from .helpers import AS_OF, DEFAULT_TOML, cancellation_facts, default_policy


def _escrow_conserved(d: CancellationDecision, escrow: int) -> None:
    assert d.refund_to_buyer + d.to_seller + d.platform_fee == escrow


def test_buyer_cancelling_in_production_pays_net_cost_and_explains_why() -> None:
    d = decide_cancellation(default_policy(), cancellation_facts(), decision_id="d-1")
    assert (d.refund_to_buyer, d.to_seller, d.platform_fee) == (5000, 23750, 1250)
    e = d.explanation
    assert e.decision_id == "d-1" and e.kind == "cancellation" and e.as_of == AS_OF
    assert e.pin.name == "default" and len(e.pin.sha256) == 64
    [m] = e.matched
    assert m.table == "cancellation" and m.rule_id == "R07" and "costs so far" in m.because
    assert [(c.field, c.op, c.expected, c.actual, c.result) for c in m.conditions] == [
        ("stage", "eq", "in_production", "in_production", True),
        ("cancelled_by", "eq", "buyer", "buyer", True),
        ("reason", "eq", "buyer_request", "buyer_request", True),
    ]
    assert e.facts["net_cost"] == 25000 and e.facts["salvage_value"] == 15000
    assert e.amounts["refund_to_buyer"] == 5000
    assert "50.00 CNY back to the buyer" in e.summary and e.summary.endswith("(rule R07).")
    _escrow_conserved(d, 30000)


def test_explanation_is_json_serialisable_and_validates_back() -> None:
    d = decide_cancellation(default_policy(), cancellation_facts(), decision_id="d-1")
    data = json.loads(d.model_dump_json())
    assert data["explanation"]["matched"][0]["conditions"][0] == {
        "field": "stage", "op": "eq", "expected": "in_production", "actual": "in_production", "result": True}
    again = CancellationDecision.model_validate(data)
    assert again.model_dump(mode="json") == d.model_dump(mode="json")
    assert isinstance(again.explanation, Explanation)
    # Explanations stored before conditions were named (bare arrays) still validate.
    legacy = json.loads(json.dumps(data))
    for m in legacy["explanation"]["matched"]:
        m["conditions"] = [list(c.values()) for c in m["conditions"]]
    assert CancellationDecision.model_validate(legacy).model_dump(mode="json") == d.model_dump(mode="json")


def test_same_inputs_give_identical_results() -> None:
    p = default_policy()
    a = decide_cancellation(p, cancellation_facts(), decision_id="same")
    b = decide_cancellation(load_policy_text(DEFAULT_TOML.read_text(), "again"), cancellation_facts(), decision_id="same")
    assert a.model_dump_json() == b.model_dump_json()


def test_seller_cancelling_returns_earnest_deposit_double_from_own_balance() -> None:
    f = cancellation_facts(cancelled_by="seller", reason="seller_request", earnest_deposit=20000)
    d = decide_cancellation(default_policy(), f, decision_id="d")
    assert (d.refund_to_buyer, d.to_seller, d.seller_pays_buyer) == (30000, 0, 20000)


def test_late_delivery_past_grace_is_free_for_the_buyer_with_penalty() -> None:
    f = cancellation_facts(reason="late_delivery", days_late=4)
    d = decide_cancellation(default_policy(), f, decision_id="d")
    assert d.explanation.matched[0].rule_id == "R19"
    assert (d.refund_to_buyer, d.seller_pays_buyer) == (30000, 2000)


def test_grace_period_boundary_uses_the_policy_deadline() -> None:
    p = default_policy()
    assert decide_cancellation(p, cancellation_facts(reason="late_delivery", days_late=3), decision_id="d").explanation.matched[0].rule_id == "R20"
    longer = load_policy_text(DEFAULT_TOML.read_text().replace('production_grace = "P3D"', 'production_grace = "P5D"'), "x")
    assert decide_cancellation(longer, cancellation_facts(reason="late_delivery", days_late=4), decision_id="d").explanation.matched[0].rule_id == "R20"


def test_released_money_counts_toward_liability_and_excess_comes_back() -> None:
    # 10000 of 30000 already released to the seller for materials; net cost 25000.
    f = cancellation_facts(escrow_balance=20000, paid_total=30000)
    d = decide_cancellation(default_policy(), f, decision_id="d")
    assert d.to_seller + d.platform_fee == 15000 and d.refund_to_buyer == 5000
    f = cancellation_facts(escrow_balance=20000, paid_total=30000, costs_incurred=5000, salvage_value=0)
    d = decide_cancellation(default_policy(), f, decision_id="d")
    assert (d.refund_to_buyer, d.to_seller, d.seller_pays_buyer) == (20000, 0, 5000)


def test_invalid_fact_combinations_are_rejected_before_rules_run() -> None:
    with pytest.raises(ValueError, match="cannot be given by the seller"):
        cancellation_facts(cancelled_by="seller", reason="buyer_request")
    with pytest.raises(ValueError, match="cannot happen at stage"):
        cancellation_facts(cancelled_by="system", reason="balance_timeout", stage="in_production")
    with pytest.raises(ValueError):
        cancellation_facts(price=100.0)
    with pytest.raises(ValueError):
        cancellation_facts(as_of=AS_OF.replace(tzinfo=None))


def test_unaccepted_currency_is_a_decision_error() -> None:
    with pytest.raises(DecisionError, match="currency 'CHF' is not accepted"):
        decide_cancellation(default_policy(), cancellation_facts(currency="CHF"), decision_id="d")


def test_policy_without_cancellation_table_cannot_decide_cancellation() -> None:
    p = load_policy_text('name = "x"\nversion = "1"\n', "x")
    with pytest.raises(PolicyError, match="has no cancellation table"):
        decide_cancellation(p, cancellation_facts(), decision_id="d")


def test_settlement_without_table_uses_builtin_late_rule() -> None:
    p = load_policy_text('name = "x"\nversion = "1"\n', "x")
    f = SettlementFacts(price=100000, currency="USD", escrow_balance=100000, days_late=2, payment_plan="staged", as_of=AS_OF)
    d = decide_settlement(p, f, decision_id="s")
    assert (d.to_seller, d.platform_fee, d.late_penalty_to_buyer) == (94050, 4950, 1000)
    assert d.explanation.matched == []


def test_settlement_fee_rounds_half_up() -> None:
    f = SettlementFacts(price=30, currency="CNY", escrow_balance=30, days_late=0, payment_plan="staged", as_of=AS_OF)
    d = decide_settlement(default_policy(), f, decision_id="s")
    assert d.platform_fee == 2 and d.to_seller == 28  # 30 * 5% = 1.5 → 2


def test_pinned_decision_refuses_a_changed_policy() -> None:
    p = default_policy()
    pin = pin_policy(p)
    decide_cancellation(p, cancellation_facts(), decision_id="d", pin=pin)
    edited = load_policy_text(DEFAULT_TOML.read_text().replace("platform_fee_bps = 500", "platform_fee_bps = 600"), "x")
    with pytest.raises(PolicyError, match="is not the pinned default@1.2.0"):
        decide_cancellation(edited, cancellation_facts(), decision_id="d", pin=pin)


def test_money_helpers() -> None:
    assert apply_bps(100, 50) == 1 and apply_bps(99, 50) == 0 and apply_bps(101, 50) == 1
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert sum(allocate(1001, [30, 60, 10])) == 1001
    assert staged_amounts(99999, [30, 60, 10]) == [30000, 59999, 10000]
    with pytest.raises(ValueError):
        staged_amounts(100, [50, 40])


def test_describe_policy_speaks_plain_words_for_every_stage() -> None:
    d = describe_policy(default_policy())
    titles = [s.title for s in d.sections]
    assert titles[:6] == [
        "Cancelling — before the seller accepts",
        "Cancelling — before the deposit is paid",
        "Cancelling — during production",
        "Cancelling — at quality check",
        "Cancelling — while the balance is due",
        "Cancelling — after shipping, before delivery",
    ]
    assert {"Late delivery", "Returns and after-sales", "Deadlines", "Payment"} <= set(titles)
    text = "\n".join(line for s in d.sections for line in s.lines)
    assert "more than 3 days late" in text and "0.5% of the price per day late" in text
    assert "10 days to inspect" in text


def test_quote_text_lists_amounts_and_reasons() -> None:
    d = decide_cancellation(default_policy(), cancellation_facts(), decision_id="q-1")
    text = quote_text(d)
    assert "Refund to the buyer: 50.00 CNY" in text and "Why (R07)" in text and "decision q-1" in text
