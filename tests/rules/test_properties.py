"""Property tests: money conserved, never negative, deterministic."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bespoke.rules import CancellationFacts, SettlementFacts, decide_cancellation, decide_settlement
from bespoke.rules.facts import PAYMENT_PLANS, REASONS_BY_PARTY, STAGES, STAGES_BY_REASON

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
