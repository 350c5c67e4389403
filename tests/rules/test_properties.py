"""Property tests: money conserved, never negative, deterministic."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bespoke.rules import (
    CancellationFacts,
    DisputeFacts,
    RefundFacts,
    ReturnFacts,
    SettlementFacts,
    decide_cancellation,
    decide_dispute_default,
    decide_refund,
    decide_return_terms,
    decide_settlement,
    load_policy_text,
)
from bespoke.rules.facts import (
    PAYMENT_PLANS,
    REASONS_BY_PARTY,
    REFUND_OUTCOMES,
    RETURN_REASONS,
    STAGES,
    STAGES_BY_REASON,
)

from .helpers import default_policy

POLICY = default_policy()
COMBOS = sorted(
    (stage, party, reason)
    for party, reasons in REASONS_BY_PARTY.items()
    for reason in reasons
    for stage in STAGES
    if stage in STAGES_BY_REASON[reason]
)
money = st.integers(min_value=0, max_value=10**11)


@st.composite
def cancellation_facts(draw: Any) -> CancellationFacts:
    stage, party, reason = draw(st.sampled_from(COMBOS))
    price = draw(st.integers(min_value=1, max_value=10**11))
    paid = draw(money)
    escrow = draw(st.one_of(st.just(paid), money))
    milestones = draw(st.dictionaries(st.sampled_from(["materials", "fabrication", "finishing"]), money, max_size=3))
    return CancellationFacts(
        stage=stage,
        cancelled_by=party,
        reason=reason,
        price=price,
        currency=draw(st.sampled_from(["CNY", "USD", "JPY"])),
        payment_plan=draw(st.sampled_from(PAYMENT_PLANS)),
        escrow_balance=escrow,
        paid_total=paid,
        costs_incurred=draw(st.one_of(st.just(sum(milestones.values())), money)),
        costs_by_milestone=milestones,
        salvage_value=draw(money),
        days_late=draw(st.integers(min_value=0, max_value=400)),
        earnest_deposit=draw(st.integers(min_value=0, max_value=paid)),
        as_of=draw(st.datetimes(timezones=st.just(timezone.utc), min_value=datetime(2020, 1, 1))),
    )


@settings(max_examples=400, deadline=None)
@given(cancellation_facts())
def test_cancellation_conserves_escrow_never_negative_and_is_deterministic(facts: CancellationFacts) -> None:
    d = decide_cancellation(POLICY, facts, decision_id="p")
    amounts = (d.refund_to_buyer, d.to_seller, d.platform_fee, d.seller_pays_buyer, d.buyer_owes_seller)
    assert all(isinstance(a, int) and a >= 0 for a in amounts)
    assert d.refund_to_buyer + d.to_seller + d.platform_fee == facts.escrow_balance
    assert not (d.seller_pays_buyer and d.buyer_owes_seller)
    if facts.stage in ("awaiting_acceptance", "awaiting_deposit"):
        assert d.refund_to_buyer == facts.escrow_balance
    again = decide_cancellation(POLICY, CancellationFacts.model_validate(facts.model_dump()), decision_id="p")
    assert again.model_dump_json() == d.model_dump_json()


@settings(max_examples=400, deadline=None)
@given(
    price=st.integers(min_value=1, max_value=10**11),
    escrow=money,
    days_late=st.integers(min_value=0, max_value=400),
    plan=st.sampled_from(PAYMENT_PLANS),
)
def test_settlement_conserves_escrow_never_negative_and_is_deterministic(price: int, escrow: int, days_late: int, plan: str) -> None:
    facts = SettlementFacts(
        price=price, currency="EUR", escrow_balance=escrow, days_late=days_late, payment_plan=plan,
        as_of=datetime(2025, 1, 1, tzinfo=timezone.utc),
    )  # fmt: skip
    d = decide_settlement(POLICY, facts, decision_id="s")
    assert min(d.to_seller, d.platform_fee, d.late_penalty_to_buyer) >= 0
    assert d.to_seller + d.platform_fee + d.late_penalty_to_buyer == escrow
    assert d.late_penalty_to_buyer <= (price * POLICY.fees.late_penalty_cap_bps + 5000) // 10000
    assert decide_settlement(POLICY, facts, decision_id="s").model_dump_json() == d.model_dump_json()


# --- after-sales ------------------------------------------------------------------------

KEEP_FEE = load_policy_text(
    'name = "keep-fee"\nversion = "1"\n[tables.refund]\n[[tables.refund.rules]]\nid = "KEEP"\n'
    'because = "The platform keeps its fee."\nthen = { fee_refund = "none" }\n',
    "keep-fee.toml",
)
BARE = load_policy_text('name = "bare"\nversion = "1"\n', "bare.toml")
AS_OFS = st.datetimes(timezones=st.just(timezone.utc), min_value=datetime(2020, 1, 1))


@st.composite
def refund_facts(draw: Any) -> RefundFacts:
    """Consistent money: what was paid and not refunded is in escrow, with the seller or the platform fee
    (possibly more, when the seller holds money from elsewhere)."""
    price = draw(st.integers(min_value=1, max_value=10**11))
    paid = draw(st.one_of(st.just(price), st.integers(min_value=0, max_value=2 * price)))
    refunded = draw(st.integers(min_value=0, max_value=paid))
    unrefunded = paid - refunded
    escrow = draw(st.one_of(st.just(0), st.just(unrefunded), st.integers(min_value=0, max_value=unrefunded)))
    released_gross = unrefunded - escrow
    escrow += draw(st.one_of(st.just(0), money))  # a credit line's advance can sit in escrow too
    fee = draw(st.one_of(st.just(0), st.just(released_gross * 5 // 100), st.integers(min_value=0, max_value=released_gross)))
    released = released_gross - fee + draw(st.one_of(st.just(0), money))
    outcome = draw(st.sampled_from(REFUND_OUTCOMES))
    return RefundFacts(
        reason=draw(st.sampled_from(RETURN_REASONS)),
        outcome=outcome,
        requested_refund=draw(st.one_of(st.just(price), st.integers(min_value=1, max_value=price))),
        price=price,
        currency=draw(st.sampled_from(["CNY", "USD", "JPY"])),
        paid_total=paid,
        refunded_so_far=refunded,
        escrow_balance=escrow,
        released_to_seller=released,
        platform_fee_charged=fee,
        return_shipping_cost=0 if outcome == "partial_offer_accepted" else draw(money),
        return_shipping_payer=draw(st.sampled_from(["buyer", "seller"])),
        as_of=draw(AS_OFS),
    )


@settings(max_examples=500, deadline=None)
@given(refund_facts())
def test_refund_conserves_money_uses_escrow_first_never_negative_and_is_deterministic(facts: RefundFacts) -> None:
    d = decide_refund(POLICY, facts, decision_id="r")
    amounts = (d.refund_from_escrow, d.chargeback_from_seller, d.fee_refund_to_seller, d.shipping_reimbursement)
    assert all(isinstance(a, int) and a >= 0 for a in amounts)
    total = min(facts.requested_refund, facts.paid_total - facts.refunded_so_far)
    assert d.refund_from_escrow + d.chargeback_from_seller == total == d.explanation.amounts["refund_total"]
    assert d.refund_from_escrow <= facts.escrow_balance
    assert d.chargeback_from_seller == 0 or d.refund_from_escrow == facts.escrow_balance  # escrow first
    assert d.fee_refund_to_seller <= facts.platform_fee_charged
    assert d.chargeback_from_seller <= facts.released_to_seller + d.fee_refund_to_seller
    assert d.shipping_reimbursement in (0, facts.return_shipping_cost)
    if facts.return_shipping_payer == "buyer":
        assert d.shipping_reimbursement == 0
    again = decide_refund(POLICY, RefundFacts.model_validate(facts.model_dump()), decision_id="r")
    assert again.model_dump_json() == d.model_dump_json()


@settings(max_examples=300, deadline=None)
@given(refund_facts())
def test_refund_keeping_the_fee_still_conserves_money_and_never_refunds_fee(facts: RefundFacts) -> None:
    d = decide_refund(KEEP_FEE, facts, decision_id="r")
    assert d.fee_refund_to_seller == 0 and min(d.refund_from_escrow, d.chargeback_from_seller) >= 0
    assert d.refund_from_escrow + d.chargeback_from_seller == min(facts.requested_refund, facts.paid_total - facts.refunded_so_far)


@settings(max_examples=300, deadline=None)
@given(
    reason=st.sampled_from(RETURN_REASONS),
    stage=st.sampled_from(["delivered", "completed"]),
    remedy=st.sampled_from(["refund", "repair"]),
    days=st.integers(min_value=0, max_value=400),
    rounds=st.integers(min_value=0, max_value=10),
    as_of=AS_OFS,
)
def test_return_terms_respect_the_repair_limit_match_the_built_in_terms_and_are_deterministic(
    reason: str, stage: str, remedy: str, days: int, rounds: int, as_of: datetime
) -> None:
    if reason == "changed_mind" and remedy == "repair":
        remedy = "refund"
    facts = ReturnFacts(
        reason=reason, stage=stage, remedy=remedy, days_since_delivery=days, repair_rounds=rounds,
        price=100_000, currency="CNY", as_of=as_of,
    )  # fmt: skip
    d = decide_return_terms(POLICY, facts, decision_id="t")
    if d.repair_allowed:
        assert d.allowed and rounds < POLICY.limits.max_repair_rounds and not d.refund_only
    if d.refund_only:
        assert d.allowed and rounds >= POLICY.limits.max_repair_rounds
    if not d.allowed:
        assert not (d.repair_allowed or d.refund_only)
    b = decide_return_terms(BARE, facts, decision_id="t")
    assert (d.allowed, d.return_shipping_payer, d.repair_allowed, d.refund_only) == (
        b.allowed, b.return_shipping_payer, b.repair_allowed, b.refund_only
    )  # fmt: skip
    assert decide_return_terms(POLICY, facts, decision_id="t").model_dump_json() == d.model_dump_json()


@settings(max_examples=200, deadline=None)
@given(
    opened_by=st.sampled_from(["buyer", "seller"]),
    buyer=st.booleans(),
    seller=st.booleans(),
    claim_price=st.integers(min_value=1, max_value=10**11).flatmap(lambda p: st.tuples(st.integers(min_value=1, max_value=p), st.just(p))),
)
def test_dispute_default_refunds_the_claim_only_to_a_winning_buyer(
    opened_by: str, buyer: bool, seller: bool, claim_price: tuple[int, int]
) -> None:
    claim, price = claim_price
    facts = DisputeFacts(
        opened_by=opened_by, buyer_submitted=buyer, seller_submitted=seller, claim=claim, price=price,
        currency="EUR", as_of=datetime(2025, 1, 1, tzinfo=timezone.utc),
    )  # fmt: skip
    d = decide_dispute_default(POLICY, facts, decision_id="x")
    assert d.refund == (claim if d.outcome == "buyer_wins" else 0)
    if buyer != seller:  # exactly one side sent evidence: the other side loses
        assert d.outcome == ("buyer_wins" if buyer else "seller_wins")
    assert decide_dispute_default(POLICY, facts, decision_id="x").model_dump_json() == d.model_dump_json()
