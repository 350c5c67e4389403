"""After-sales decisions: return terms, refunds, dispute defaults."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from bespoke.rules import (
    DecisionError,
    DisputeDefaultDecision,
    Limits,
    PolicyError,
    RefundDecision,
    ReturnFacts,
    ReturnTermsDecision,
    decide_dispute_default,
    decide_refund,
    decide_return_terms,
    load_policy_text,
    pin_policy,
)
from bespoke.rules.check import check_policy
from bespoke.rules.describe import describe_policy, quote_text

from .helpers import AS_OF, DEFAULT_TOML, default_policy, dispute_facts, edited_default, refund_facts, return_facts

POLICY = default_policy()


def _default_with(extra: str) -> Any:
    return load_policy_text(DEFAULT_TOML.read_text() + "\n" + extra, "default+.toml")


def _policy(body: str, name: str = "t") -> Any:
    return load_policy_text(f'name = "{name}"\nversion = "1"\n{body}', f"{name}.toml")


def _terms(d: ReturnTermsDecision) -> tuple[bool, str, bool, bool]:
    return (d.allowed, d.return_shipping_payer, d.repair_allowed, d.refund_only)


# --- return terms -------------------------------------------------------------------


def test_defect_found_during_inspection_may_be_returned_at_the_sellers_cost_and_each_table_explains() -> None:
    d = decide_return_terms(POLICY, return_facts(), decision_id="rt-1")
    assert _terms(d) == (True, "seller", True, False)
    e = d.explanation
    assert (e.decision_id, e.kind, e.as_of) == ("rt-1", "return_terms", AS_OF)
    assert [(m.table, m.rule_id) for m in e.matched] == [("return_terms", "RT01"), ("return_shipping", "RS01"), ("repair", "RP01")]
    rt = e.matched[0]
    assert [(c.field, c.op, c.actual) for c in rt.conditions] == [("reason", "in", "defect"), ("stage", "eq", "delivered")]
    assert e.facts["within_window"] is True and e.facts["repair_limit_reached"] is False and e.facts["max_repair_rounds"] == 2
    assert e.results == {"allowed": True, "return_shipping_payer": "seller", "repair_allowed": True, "refund_only": False}
    assert e.amounts == {}
    assert e.summary == (
        "Return for a defect during the inspection window, asking for a refund: allowed; the seller pays return "
        "shipping; the seller may offer a repair (0 of 2 repairs used) (rules RT01, RS01, RP01)."
    )


def test_changed_mind_return_of_made_to_order_goods_is_refused_citing_consumer_law() -> None:
    d = decide_return_terms(POLICY, return_facts(reason="changed_mind", stage="completed", days_since_delivery=1), decision_id="d")
    assert _terms(d) == (False, "buyer", False, False)
    assert d.explanation.matched[0].rule_id == "RT04"
    assert "exempts custom-made goods from no-reason returns" in d.explanation.matched[0].because
    assert "not allowed" in d.explanation.summary


@pytest.mark.parametrize("reason", ["defect", "not_as_specified", "damaged_in_transit"])
def test_seller_pays_return_shipping_for_every_fault_reason(reason: str) -> None:
    d = decide_return_terms(POLICY, return_facts(reason=reason), decision_id="d")
    assert d.allowed and d.return_shipping_payer == "seller"


def test_after_sales_window_counts_whole_days_from_delivery_and_follows_the_policy_deadline() -> None:
    completed = dict(stage="completed", reason="not_as_specified")
    assert decide_return_terms(POLICY, return_facts(days_since_delivery=15, **completed), decision_id="d").allowed
    late = decide_return_terms(POLICY, return_facts(days_since_delivery=16, **completed), decision_id="d")
    assert not late.allowed and late.explanation.matched[0].rule_id == "RT03"
    longer = edited_default('aftersales_window = "P15D"', 'aftersales_window = "P20D"')
    assert decide_return_terms(longer, return_facts(days_since_delivery=20, **completed), decision_id="d").allowed
    short = edited_default('aftersales_window = "P15D"', 'aftersales_window = "PT36H"')
    assert decide_return_terms(short, return_facts(days_since_delivery=1, **completed), decision_id="d").allowed
    assert not decide_return_terms(short, return_facts(days_since_delivery=2, **completed), decision_id="d").allowed


def test_inspection_window_allows_a_return_even_past_a_shorter_after_sales_window() -> None:
    short = edited_default('aftersales_window = "P15D"', 'aftersales_window = "P5D"')
    d = decide_return_terms(short, return_facts(stage="delivered", days_since_delivery=8), decision_id="d")
    assert d.allowed and d.explanation.matched[0].rule_id == "RT01"


def test_repair_limit_reached_means_refund_only() -> None:
    d = decide_return_terms(POLICY, return_facts(remedy="repair", repair_rounds=2), decision_id="d")
    assert _terms(d) == (True, "seller", False, True)
    assert d.explanation.matched[2].rule_id == "RP02"
    assert "the repair limit is reached (2 of 2 repairs used)" in d.explanation.summary
    assert decide_return_terms(POLICY, return_facts(repair_rounds=1), decision_id="d").repair_allowed


def test_a_policy_without_repairs_is_refund_only_from_the_first_case() -> None:
    none = edited_default("max_repair_rounds = 2", "max_repair_rounds = 0")
    assert _terms(decide_return_terms(none, return_facts(), decision_id="d")) == (True, "seller", False, True)


def test_repair_limit_is_a_hard_limit_a_table_cannot_lift() -> None:
    lenient = _policy(
        """
[limits]
max_repair_rounds = 1
[tables.repair]
[[tables.repair.rules]]
id = "ALWAYS"
because = "Repairs are always possible."
then = { repair_allowed = true, refund_only = false }
"""
    )
    assert _terms(decide_return_terms(lenient, return_facts(repair_rounds=0), decision_id="d")) == (True, "seller", True, False)
    assert _terms(decide_return_terms(lenient, return_facts(repair_rounds=1), decision_id="d")) == (True, "seller", False, True)


def test_a_return_that_is_not_allowed_offers_neither_repair_nor_refund() -> None:
    d = decide_return_terms(POLICY, return_facts(stage="completed", days_since_delivery=30, repair_rounds=5), decision_id="d")
    assert _terms(d) == (False, "seller", False, False)


def test_a_policy_may_allow_changed_mind_returns_at_the_buyers_cost() -> None:
    liberal = edited_default(
        'when = { reason = "changed_mind" }\nthen = { allowed = false }',
        'when = { reason = "changed_mind" }\nthen = { allowed = true }',
    )
    d = decide_return_terms(liberal, return_facts(reason="changed_mind"), decision_id="d")
    assert _terms(d) == (True, "buyer", True, False)


def test_policy_without_after_sales_tables_uses_the_built_in_terms() -> None:
    bare = _policy("")
    d = decide_return_terms(bare, return_facts(), decision_id="d")
    assert _terms(d) == (True, "seller", True, False)
    assert d.explanation.matched == [] and d.explanation.summary.endswith("(built-in terms).")
    assert _terms(decide_return_terms(bare, return_facts(reason="changed_mind"), decision_id="d")) == (False, "buyer", False, False)
    assert not decide_return_terms(bare, return_facts(stage="completed", days_since_delivery=16), decision_id="d").allowed


def test_return_facts_reject_impossible_inputs() -> None:
    with pytest.raises(ValidationError, match="cannot be asked for with reason 'changed_mind'"):
        return_facts(reason="changed_mind", remedy="repair")
    for bad in (
        {"days_since_delivery": -1},
        {"repair_rounds": -1},
        {"repair_rounds": 1.0},
        {"price": 0},
        {"stage": "shipped"},
        {"reason": "regret"},
        {"as_of": AS_OF.replace(tzinfo=None)},
        {"currency": "cny"},
    ):
        with pytest.raises(ValidationError):
            return_facts(**bad)
    with pytest.raises(ValidationError):
        ReturnFacts.model_validate({**return_facts().model_dump(), "extra": 1})


# --- refund ---------------------------------------------------------------------------


def test_refund_after_completion_is_charged_back_with_the_platform_fee_returned_pro_rata() -> None:
    d = decide_refund(POLICY, refund_facts(), decision_id="rf-1")
    assert (d.refund_from_escrow, d.chargeback_from_seller, d.fee_refund_to_seller, d.shipping_reimbursement) == (0, 100000, 5000, 2000)
    e = d.explanation
    assert e.kind == "refund" and [m.rule_id for m in e.matched] == ["RF01"]
    assert e.amounts == {
        "refund_total": 100000,
        "refund_from_escrow": 0,
        "chargeback_from_seller": 100000,
        "fee_refund_to_seller": 5000,
        "shipping_reimbursement": 2000,
        "seller_net_cost": 97000,
    }
    assert e.facts["unrefunded"] == 100000 and e.facts["escrow_covers"] is False
    assert e.summary == (
        "Refund 1,000.00 CNY because the seller confirmed the returned goods: 1,000.00 CNY charged back to the "
        "seller (the platform returns 50.00 CNY of its fee to the seller); the seller reimburses 20.00 CNY return "
        "shipping (rule RF01)."
    )


def test_refund_on_credit_comes_from_the_advanced_escrow_up_to_what_the_buyer_paid() -> None:
    # A credit line advanced the price into escrow; the buyer has repaid 30000 of it.
    f = refund_facts(paid_total=30000, escrow_balance=100000, released_to_seller=0, platform_fee_charged=0)
    d = decide_refund(POLICY, f, decision_id="d")
    assert (d.refund_from_escrow, d.chargeback_from_seller) == (30000, 0)


def test_refund_during_inspection_comes_from_escrow_only() -> None:
    f = refund_facts(escrow_balance=100000, released_to_seller=0, platform_fee_charged=0, requested_refund=40000)
    d = decide_refund(POLICY, f, decision_id="d")
    assert (d.refund_from_escrow, d.chargeback_from_seller, d.fee_refund_to_seller) == (40000, 0, 0)
    assert d.explanation.facts["escrow_covers"] is True


def test_escrow_is_used_first_then_the_rest_is_charged_back() -> None:
    f = refund_facts(outcome="arbitration", requested_refund=40000, escrow_balance=10000, released_to_seller=85500, platform_fee_charged=4500)
    d = decide_refund(POLICY, f, decision_id="d")
    assert (d.refund_from_escrow, d.chargeback_from_seller, d.fee_refund_to_seller) == (10000, 30000, 1500)
    assert "100.00 CNY from escrow, 300.00 CNY charged back" in d.explanation.summary


def test_refund_is_capped_at_what_has_not_been_refunded_yet() -> None:
    f = refund_facts(refunded_so_far=2000, released_to_seller=93100, platform_fee_charged=4900, return_shipping_cost=0)
    d = decide_refund(POLICY, f, decision_id="d")
    assert d.refund_from_escrow + d.chargeback_from_seller == 98000
    assert "(capped at the 980.00 CNY not yet refunded)" in d.explanation.summary


def test_buyer_bears_return_shipping_when_the_buyer_pays_it() -> None:
    d = decide_refund(POLICY, refund_facts(reason="changed_mind", return_shipping_payer="buyer"), decision_id="d")
    assert d.shipping_reimbursement == 0
    assert "the buyer bears the 20.00 CNY return shipping" in d.explanation.summary


def test_partial_offer_keeps_the_goods_so_no_return_shipping_and_fee_share_rounds_by_largest_remainder() -> None:
    f = refund_facts(outcome="partial_offer_accepted", requested_refund=33333, return_shipping_cost=0)
    d = decide_refund(POLICY, f, decision_id="d")
    assert (d.chargeback_from_seller, d.fee_refund_to_seller, d.shipping_reimbursement) == (33333, 1667, 0)
    assert d.explanation.matched[0].rule_id == "RF03"


def test_a_policy_may_keep_the_platform_fee_on_charge_backs() -> None:
    keep = _policy(
        """
[tables.refund]
[[tables.refund.rules]]
id = "KEEP"
because = "The platform keeps its fee on charged-back money."
then = { fee_refund = "none", reimburse_shipping = false }
"""
    )
    d = decide_refund(keep, refund_facts(requested_refund=30000), decision_id="d")
    assert (d.chargeback_from_seller, d.fee_refund_to_seller, d.shipping_reimbursement) == (30000, 0, 0)
    assert d.explanation.results == {"fee_refund": "none", "reimburse_shipping": False}


def test_refund_without_a_table_uses_built_in_terms() -> None:
    bare = _policy("")
    d = decide_refund(bare, refund_facts(), decision_id="d")
    assert (d.chargeback_from_seller, d.fee_refund_to_seller, d.shipping_reimbursement) == (100000, 5000, 2000)
    d = decide_refund(bare, refund_facts(outcome="partial_offer_accepted", return_shipping_cost=0), decision_id="d")
    assert d.shipping_reimbursement == 0 and d.explanation.matched == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"requested_refund": 100001}, "cannot exceed the price"),
        ({"requested_refund": 0}, "greater than 0"),
        ({"refunded_so_far": 100001, "released_to_seller": 0, "platform_fee_charged": 0}, "cannot exceed paid_total"),
        ({"escrow_balance": 100000}, None),  # more held than owed is possible (a credit line's advance in escrow)
        ({"released_to_seller": 90000}, "must be in escrow, with the seller, or the platform fee"),
        ({"outcome": "partial_offer_accepted"}, "return_shipping_cost must be 0"),
        ({"return_shipping_payer": "platform"}, "buyer' or 'seller"),
        ({"escrow_balance": -1}, "greater than or equal to 0"),
        ({"paid_total": "100000"}, "valid integer"),
    ],
)
def test_refund_facts_reject_impossible_money(overrides: dict[str, Any], message: str | None) -> None:
    if message is None:
        refund_facts(**overrides)
        return
    with pytest.raises(ValidationError, match=message):
        refund_facts(**overrides)


# --- dispute default ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("opened_by", "buyer", "seller", "rule", "outcome", "refund"),
    [
        ("buyer", True, False, "DD01", "buyer_wins", 50000),
        ("seller", True, False, "DD01", "buyer_wins", 50000),
        ("buyer", False, True, "DD02", "seller_wins", 0),
        ("seller", True, True, "DD03", "ops_review", 0),
        ("buyer", False, False, "DD04", "seller_wins", 0),
        ("seller", False, False, "DD05", "buyer_wins", 50000),
    ],
)
def test_dispute_default_decides_against_the_side_without_evidence(
    opened_by: str, buyer: bool, seller: bool, rule: str, outcome: str, refund: int
) -> None:
    f = dispute_facts(opened_by=opened_by, buyer_submitted=buyer, seller_submitted=seller)
    d = decide_dispute_default(POLICY, f, decision_id="dd")
    assert (d.outcome, d.refund) == (outcome, refund)
    assert [m.rule_id for m in d.explanation.matched] == [rule]
    assert d.explanation.kind == "dispute_default" and d.explanation.results == {"outcome": outcome}
    assert d.explanation.amounts == {"claim": 50000, "refund": refund}


def test_dispute_summary_says_who_sent_evidence_and_what_follows() -> None:
    d = decide_dispute_default(POLICY, dispute_facts(), decision_id="dd")
    assert d.explanation.summary == (
        "The evidence deadline passed and only the buyer sent evidence: decided for the buyer: refund 500.00 CNY "
        "of the 500.00 CNY claimed (rule DD01)."
    )
    d = decide_dispute_default(POLICY, dispute_facts(seller_submitted=True), decision_id="dd")
    assert "both sides sent evidence: platform operations must arbitrate" in d.explanation.summary


def test_a_policy_may_refund_part_of_the_claim_by_default() -> None:
    split = _policy(
        """
[tables.dispute_default]
[[tables.dispute_default.rules]]
id = "HALF"
because = "A missed deadline settles at half the claim."
then = { outcome = "buyer_wins", refund_bps = 5000 }
"""
    )
    assert decide_dispute_default(split, dispute_facts(claim=333), decision_id="d").refund == 167  # 166.5 rounds half up


def test_dispute_rows_must_agree_outcome_and_refund() -> None:
    body = """
[tables.dispute_default]
[[tables.dispute_default.rules]]
id = "BAD"
because = "x"
when = {{ buyer_submitted = true }}
then = {{ {then} }}
[[tables.dispute_default.rules]]
id = "OK"
because = "y"
when = {{ buyer_submitted = false }}
then = {{ outcome = "seller_wins" }}
"""
    with pytest.raises(PolicyError, match=r"rules\[0\]\.then\.refund_bps: only a buyer_wins row refunds"):
        _policy(body.format(then='outcome = "seller_wins", refund_bps = 100'))
    with pytest.raises(PolicyError, match="a buyer_wins row must refund something"):
        _policy(body.format(then='outcome = "buyer_wins", refund_bps = 0'))
    with pytest.raises(PolicyError, match="expected one of buyer_wins, seller_wins, ops_review"):
        _policy(body.format(then='outcome = "split"'))


def test_dispute_without_a_table_uses_built_in_terms_matching_the_default_policy() -> None:
    bare = _policy("")
    for opened_by in ("buyer", "seller"):
        for buyer in (True, False):
            for seller in (True, False):
                f = dispute_facts(opened_by=opened_by, buyer_submitted=buyer, seller_submitted=seller)
                a = decide_dispute_default(bare, f, decision_id="d")
                b = decide_dispute_default(POLICY, f, decision_id="d")
                assert (a.outcome, a.refund) == (b.outcome, b.refund)


def test_dispute_facts_reject_impossible_inputs() -> None:
    with pytest.raises(ValidationError, match="claim 100001 cannot exceed the price"):
        dispute_facts(claim=100001)
    with pytest.raises(ValidationError):
        dispute_facts(buyer_submitted="yes")
    with pytest.raises(ValidationError):
        dispute_facts(buyer_submitted=1)
    with pytest.raises(ValidationError):
        dispute_facts(opened_by="ops")


# --- common -------------------------------------------------------------------------------

DECISIONS = [
    (decide_return_terms, return_facts, ReturnTermsDecision),
    (decide_refund, refund_facts, RefundDecision),
    (decide_dispute_default, dispute_facts, DisputeDefaultDecision),
]


@pytest.mark.parametrize(("decide", "facts", "model"), DECISIONS)
def test_after_sales_decisions_round_trip_through_json(decide: Any, facts: Any, model: Any) -> None:
    d = decide(POLICY, facts(), decision_id="j")
    data = json.loads(d.model_dump_json())
    again = model.model_validate(data)
    assert again.model_dump(mode="json") == d.model_dump(mode="json")
    assert data["explanation"]["pin"]["name"] == "default" and data["explanation"]["summary"]


@pytest.mark.parametrize(("decide", "facts", "model"), DECISIONS)
def test_after_sales_decisions_refuse_a_policy_other_than_the_pinned_one(decide: Any, facts: Any, model: Any) -> None:
    pin = pin_policy(POLICY)
    decide(POLICY, facts(), decision_id="d", pin=pin)
    edited = edited_default("max_repair_rounds = 2", "max_repair_rounds = 3")
    with pytest.raises(PolicyError, match="is not the pinned default@"):
        decide(edited, facts(), decision_id="d", pin=pin)


@pytest.mark.parametrize(("decide", "facts", "model"), DECISIONS)
def test_after_sales_decisions_refuse_a_currency_the_policy_does_not_accept(decide: Any, facts: Any, model: Any) -> None:
    with pytest.raises(DecisionError, match="currency 'CHF' is not accepted"):
        decide(POLICY, facts(currency="CHF"), decision_id="d")


def test_max_cases_per_order_defaults_to_five_and_must_be_positive() -> None:
    assert Limits().max_cases_per_order == 5 and POLICY.limits.max_cases_per_order == 5
    with pytest.raises(ValidationError):
        Limits(max_cases_per_order=0)


def test_check_reports_wrong_after_sales_expectations_one_line_each() -> None:
    cases = """
[[cases]]
name = "wrong"
decision = "return_terms"
given = { reason = "defect", stage = "delivered", remedy = "refund", days_since_delivery = 1, repair_rounds = 0, price = 100, currency = "CNY" }
expect_rules = ["RT02", "RS01", "RP01"]
expect = { allowed = false, return_shipping_payer = "buyer" }
"""
    report = check_policy(_default_with(cases))
    [bad] = [c for c in report.cases if not c.ok]
    i = len(report.cases) - 1
    assert bad.problems == [
        f"case 'wrong' (cases[{i}]): expected rules RT02, RS01, RP01, matched RT01, RS01, RP01",
        f"case 'wrong' (cases[{i}]): expected allowed = False, got True",
        f"case 'wrong' (cases[{i}]): expected return_shipping_payer = 'buyer', got 'seller'",
    ]
    assert report.problems == bad.problems


def test_check_treats_true_and_one_as_different_expectations() -> None:
    cases = """
[[cases]]
name = "int for bool"
decision = "dispute_default"
given = { opened_by = "buyer", buyer_submitted = true, seller_submitted = false, claim = 1, price = 1, currency = "CNY" }
expect = { refund = true }
"""
    assert not check_policy(_policy(cases)).ok


def test_after_sales_case_with_impossible_facts_is_rejected_when_the_policy_loads() -> None:
    cases = """
[[cases]]
name = "impossible"
decision = "refund"
given = { reason = "defect", outcome = "partial_offer_accepted", requested_refund = 10, price = 100, currency = "CNY", paid_total = 100, refunded_so_far = 0, escrow_balance = 100, released_to_seller = 0, platform_fee_charged = 0, return_shipping_cost = 5, return_shipping_payer = "seller" }
"""
    with pytest.raises(PolicyError, match=r"cases\[0\]\.given: return_shipping_cost must be 0"):
        _policy(cases)


def test_after_sales_expect_rules_may_name_any_table_of_the_decision_but_not_others() -> None:
    text = (
        '[[cases]]\nname = "x"\ndecision = "return_terms"\n'
        'given = { reason = "defect", stage = "delivered", remedy = "refund", days_since_delivery = 1, repair_rounds = 0, price = 100, currency = "CNY" }\n'
        'expect_rules = ["RT01", "RS01", "RP01", "DD01"]\n'
    )
    with pytest.raises(PolicyError, match=r"expect_rules\[3\]: no rule 'DD01' in table 'return_terms' or 'return_shipping' or 'repair'"):
        _default_with(text)


def test_unreached_after_sales_row_is_reported() -> None:
    text = POLICY_TEXT_WITHOUT_CASE_FOR("DD05")
    report = check_policy(load_policy_text(text, "x.toml"))
    assert [(u.table, u.rule_id) for u in report.unreached] == [("dispute_default", "DD05")]


def POLICY_TEXT_WITHOUT_CASE_FOR(rule: str) -> str:  # noqa: N802 - reads as a phrase
    blocks = DEFAULT_TOML.read_text().split("\n[[cases]]\n")
    kept = [b for b in blocks if f'expect_rules = ["{rule}"]' not in b]
    assert len(kept) == len(blocks) - 1
    return "\n[[cases]]\n".join(kept)


# --- plain words ----------------------------------------------------------------------------


def test_policy_show_describes_return_windows_shipping_repairs_refunds_and_disputes() -> None:
    d = describe_policy(POLICY)
    sections = {s.title: s.lines for s in d.sections}
    returns = "\n".join(sections["Returns and after-sales"])
    assert "10 days to inspect" in returns and "within 15 days of delivery" in returns
    assert "If you changed your mind: You cannot return the goods. (RT04)" in returns
    assert "more than 15 days after delivery: You cannot return the goods. (RT03)" in returns
    assert "at most 5 after-sales cases" in returns
    assert sections["Who pays return shipping"] == [
        "If the goods are faulty or not as specified: The seller pays return shipping. (RS01)",
        "If the goods arrived damaged: The seller pays return shipping. (RS02)",
        "If you changed your mind: You pay return shipping. (RS03)",
    ]
    repairs = "\n".join(sections["Repairs"])
    assert "repaired at most 2 times" in repairs and "already repaired 2 times: You may demand a refund" in repairs
    assert any("no return shipping is reimbursed. (RF03)" in line for line in sections["Refunds"])
    disputes = "\n".join(sections["Disputes"])
    assert "7 days to send evidence" in disputes
    assert "If you sent evidence and the seller sent none: Decided for you, and 100% of your claim is refunded. (DD01)" in disputes
    assert "you opened the dispute: Decided for the seller, with no refund. (DD04)" in disputes
    assert {t.table for t in d.aftersales} == {"return_terms", "return_shipping", "repair", "refund", "dispute_default"}
    assert all(t.because for t in d.aftersales)


def test_policy_without_after_sales_tables_is_described_with_the_built_in_terms() -> None:
    d = describe_policy(_policy(""))
    sections = {s.title: s.lines for s in d.sections}
    assert "If you changed your mind: You cannot return made-to-order goods." in sections["Returns and after-sales"]
    assert "If neither side sent evidence: The side that opened the dispute loses." in sections["Disputes"]
    assert all(t.rule_id == "" for t in d.aftersales)


def test_quote_text_for_after_sales_decisions() -> None:
    text = quote_text(decide_refund(POLICY, refund_facts(requested_refund=30000), decision_id="q"))
    assert "Charged back to the seller: 300.00 CNY" in text and "Platform fee returned to the seller: 15.00 CNY" in text
    assert "Refund from escrow" not in text and "Why (RF01)" in text and "decision q" in text
    text = quote_text(decide_return_terms(POLICY, return_facts(repair_rounds=2), decision_id="q"))
    assert "Return allowed: yes" in text and "Refund only: the repair limit is reached" in text and "Why (RP02)" in text
    text = quote_text(decide_dispute_default(POLICY, dispute_facts(buyer_submitted=False, seller_submitted=True), decision_id="q"))
    assert "Refund to the buyer: 0.00 CNY" in text and "Why (DD02)" in text
