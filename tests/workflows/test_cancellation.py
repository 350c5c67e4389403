"""Cancellation at each pre-delivery stage on the time-skipping server.

Every scenario checks, against the default policy (`rules/policies/default.toml`):
the amounts the policy's rule gives, the ledger postings and invariants, that the
decision's explanation is the same in `status().decisions` and in the `decisions`
audit table, and that a what-if quote taken just before cancelling (what
`bespoke order quote-cancel` computes) predicted exactly what happened.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from bespoke.domain.models import (
    Account,
    ActorInput,
    CancelInput,
    MilestoneInput,
    QcInput,
    Role,
    SalvageInput,
    Stage,
)
from bespoke.rules import CancellationDecision, CancellationFacts, apply_bps, decide_cancellation, find_policy
from bespoke.store.tables import DecisionRow, LedgerEntry
from bespoke.workflows.order import OrderWorkflow
from tests.helpers import (
    order_policy,
    BUYER,
    SELLER,
    accept,
    assert_view_matches_ledger,
    create_order,
    pay,
    status,
)

pytestmark = pytest.mark.usefixtures("worker")

POLICY = find_policy("default")
FEE_BPS = POLICY.fees.platform_fee_bps  # 500: 5% of what the seller is paid
PENALTY_BPS_PER_DAY = POLICY.fees.late_penalty_bps_per_day  # 50: 0.5% of the price per day
PENALTY_CAP_BPS = POLICY.fees.late_penalty_cap_bps  # 1000: at most 10%
EARNEST_CAP_BPS = POLICY.payment_plans.earnest_deposit_max_bps  # 2000: 20% of the price
PRICE = 100_000  # 1,000.00 CNY


def _oid(handle) -> str:
    return handle.id.removeprefix("order-")


# --------------------------------------------------------------------- helpers


_CLOCK: list[Any] = []


@pytest.fixture(autouse=True)
def _clock(env):
    _CLOCK[:] = [env]


async def quote(handle, by: Role, **override: Any) -> CancellationDecision:
    """What cancelling by `by` would do right now, computed the way
    `bespoke order quote-cancel` does: the order's facts and pinned policy from
    queries, the decision evaluated client-side. `override` replaces facts (a
    deadline's reason, or who cancels for a timeout)."""
    # The CLI passes its clock; here the clock is the time-skipping server's.
    facts = await handle.query(OrderWorkflow.quote_facts, args=[by, await _CLOCK[0].get_current_time()])
    if override:
        facts = CancellationFacts.model_validate({**facts.model_dump(), **override})
    return decide_cancellation(await order_policy(handle), facts, decision_id=f"{_oid(handle)}:quote")


async def milestones(handle, **costs: int) -> None:
    for name, cost in costs.items():
        await handle.execute_update(OrderWorkflow.milestone, MilestoneInput(actor=SELLER, milestone=name, cost=cost))


async def cancel(handle, actor=BUYER, reason: str = "") -> None:
    await handle.execute_update(OrderWorkflow.cancel, CancelInput(actor=actor, reason=reason))


def postings(engine, order_id: str, kind: str) -> dict[str, int]:
    """Net amount per account of the ledger transactions of `kind`."""
    with Session(engine) as session:
        rows = session.exec(
            select(LedgerEntry).where(LedgerEntry.order_id == order_id, LedgerEntry.kind == kind)
        ).all()
    net: dict[str, int] = defaultdict(int)
    for row in rows:
        net[row.account] += row.amount
    return dict(net)


async def assert_cancelled(handle, engine, quoted: CancellationDecision, *, rule: str, refund: int,
                           to_seller: int, fee: int, seller_pays_buyer: int = 0, buyer_owes_seller: int = 0,
                           reason: str) -> dict:
    """The order closed as cancelled with these amounts; the ledger, the status
    view, the audit table and the quote all agree. Returns the explanation."""
    result = await handle.result()
    assert result.stage is Stage.CANCELLED
    order_id = _oid(handle)
    view = await assert_view_matches_ledger(handle, engine, order_id, closed=True)

    decisions = [d for d in view.decisions if d["kind"] == "cancellation"]
    assert len(decisions) == 1, view.decisions
    decision = decisions[0]
    explanation = decision["explanation"]
    # The status entry: what was decided, with the whole explanation under its own key.
    assert {k: decision[k] for k in ("decision_id", "kind", "as_of", "summary", "amounts")} == {
        k: explanation[k] for k in ("decision_id", "kind", "as_of", "summary", "amounts")}
    with Session(engine) as session:
        row = session.get(DecisionRow, explanation["decision_id"])
    assert row is not None, "decision missing from the audit table"
    assert row.order_id == order_id and row.kind == "cancellation"
    assert row.explanation == explanation

    amounts = explanation["amounts"]
    expected = {"refund_to_buyer": refund, "to_seller": to_seller, "platform_fee": fee,
                "seller_pays_buyer": seller_pays_buyer, "buyer_owes_seller": buyer_owes_seller}
    assert {k: amounts[k] for k in expected} == expected
    assert [m["rule_id"] for m in explanation["matched"]] == [rule]
    assert explanation["facts"]["reason"] == reason
    assert explanation["pin"]["sha256"] == view.policy.sha256
    # A rule's `because` reaches the buyer verbatim.
    because = next(r.because for r in POLICY.tables["cancellation"].rules if r.id == rule)
    assert explanation["matched"][0]["because"] == because

    # The quote taken just before predicted exactly this.
    assert {k: quoted.explanation.amounts[k] for k in amounts} == amounts
    assert [m.rule_id for m in quoted.explanation.matched] == [rule]

    # The ledger moved exactly the decided amounts.
    cancellation = postings(engine, order_id, "cancellation")
    moved = {Account.BUYER: refund, Account.SELLER: to_seller, Account.PLATFORM_FEE: fee,
             Account.ESCROW: -(refund + to_seller + fee)}
    assert cancellation == {k.value: v for k, v in moved.items() if v}
    compensation = postings(engine, order_id, "seller_compensation")
    assert compensation == ({"seller": -seller_pays_buyer, "buyer": seller_pays_buyer} if seller_pays_buyer else {})
    # No scenario here refunds or releases anything before the cancellation.
    assert view.refunded == refund + seller_pays_buyer
    assert view.released_to_seller == to_seller - seller_pays_buyer
    assert view.platform_fee == fee
    return explanation


# ------------------------------------------------------------------- scenarios


async def test_buyer_cancelling_before_production_gets_a_full_refund(client, task_queue, engine):
    handle = await create_order(client, task_queue, plan="staged:30/70", price=PRICE)
    await accept(handle)
    await pay(handle, 10_000)  # part of the 30,000 deposit: production has not started
    view = await status(handle)
    assert view.stage is Stage.AWAITING_DEPOSIT and view.amount_due == 20_000
    quoted = await quote(handle, Role.BUYER)
    await cancel(handle, reason="found a cheaper maker")
    await assert_cancelled(handle, engine, quoted, rule="R04", refund=10_000, to_seller=0, fee=0,
                           reason="buyer_request")
    assert (await status(handle)).refunded == 10_000


@pytest.mark.parametrize(
    ("costs", "salvage", "liability", "why"),
    [
        # Net cost 40,000 - 15,000 = 25,000 is under the 30,000 paid.
        ({"materials": 25_000, "fabrication": 15_000}, 15_000, 25_000, "costs minus salvage"),
        # Net cost 60,000 - 10,000 = 50,000 is capped by the 30,000 paid.
        ({"materials": 35_000, "fabrication": 25_000}, 10_000, 30_000, "capped by what was paid"),
    ],
)
async def test_buyer_cancelling_mid_production_bears_costs_minus_salvage_capped_by_payment(
    client, task_queue, engine, costs, salvage, liability, why
):
    handle = await create_order(client, task_queue, plan="staged:30/70", price=PRICE)
    await accept(handle)
    await pay(handle, 30_000)
    await milestones(handle, **costs)
    await handle.execute_update(OrderWorkflow.salvage, SalvageInput(actor=SELLER, value=salvage))
    assert (await status(handle)).stage is Stage.IN_PRODUCTION
    quoted = await quote(handle, Role.BUYER)
    await cancel(handle)
    fee = apply_bps(liability, FEE_BPS)
    explanation = await assert_cancelled(
        handle, engine, quoted, rule="R07", refund=30_000 - liability, to_seller=liability - fee, fee=fee,
        reason="buyer_request",
    )
    assert explanation["facts"]["costs_incurred"] == sum(costs.values())
    assert explanation["facts"]["salvage_value"] == salvage
    assert explanation["facts"]["costs_by_milestone"] == {"materials": costs["materials"],
                                                          "fabrication": costs["fabrication"], "finishing": 0}


async def test_earnest_deposit_is_forfeited_by_a_cancelling_buyer(client, task_queue, engine):
    handle = await create_order(client, task_queue, plan="staged:20/80", price=PRICE, earnest_deposit=True)
    await accept(handle)
    await pay(handle, 20_000)  # the earnest deposit: exactly the 20% cap
    await milestones(handle, materials=5_000)  # costs below the deposit
    quoted = await quote(handle, Role.BUYER)
    assert quoted.explanation.facts["earnest_deposit"] == apply_bps(PRICE, EARNEST_CAP_BPS) == 20_000
    await cancel(handle)
    # The buyer loses the whole deposit, not just the 5,000 of costs.
    fee = apply_bps(20_000, FEE_BPS)
    await assert_cancelled(handle, engine, quoted, rule="R07", refund=0, to_seller=20_000 - fee, fee=fee,
                           reason="buyer_request")


async def test_earnest_deposit_is_returned_double_by_a_cancelling_seller(client, task_queue, engine):
    handle = await create_order(client, task_queue, plan="staged:20/80", price=PRICE, earnest_deposit=True)
    await accept(handle)
    await pay(handle, 20_000)
    await milestones(handle, materials=12_000)  # the seller's own loss
    quoted = await quote(handle, Role.SELLER)
    await cancel(handle, actor=SELLER, reason="workshop fire")
    # Escrow goes back in full and the seller pays the deposit again on top.
    await assert_cancelled(handle, engine, quoted, rule="R11", refund=20_000, to_seller=0, fee=0,
                           seller_pays_buyer=20_000, reason="seller_request")
    view = await status(handle)
    assert view.refunded == 40_000 and view.released_to_seller == -20_000


async def test_seller_late_past_grace_lets_the_buyer_cancel_free_with_the_late_penalty(
    client, task_queue, engine, env
):
    handle = await create_order(client, task_queue, plan="staged:30/70", price=PRICE, production_days=5)
    await accept(handle)
    await pay(handle, 30_000)
    await milestones(handle, materials=20_000)
    await env.sleep(timedelta(days=10))  # promised date + 5 days, past the 3-day grace
    view = await status(handle)
    kinds = [e.kind for e in view.timeline]
    assert "promised_date_passed" in kinds and "grace_period_over" in kinds
    # The seller is still working (a workflow task at the current time, so the
    # quote is taken right after an action).
    await milestones(handle, fabrication=10_000)
    quoted = await quote(handle, Role.BUYER)
    days = quoted.explanation.facts["days_late"]
    assert days > POLICY.deadlines.production_grace.days
    await cancel(handle, reason="too late for the shop opening")
    penalty = apply_bps(PRICE, min(days * PENALTY_BPS_PER_DAY, PENALTY_CAP_BPS))
    explanation = await assert_cancelled(
        handle, engine, quoted, rule="R19", refund=30_000, to_seller=0, fee=0, seller_pays_buyer=penalty,
        reason="late_delivery",
    )
    assert explanation["facts"]["past_grace"] is True
    assert explanation["amounts"]["late_penalty"] == penalty


async def test_quote_for_an_idle_late_order_uses_the_current_time(client, task_queue, engine, env):
    handle = await create_order(client, task_queue, plan="staged:30/70", price=PRICE, production_days=5)
    await accept(handle)
    await pay(handle, 30_000)
    await env.sleep(timedelta(days=10))
    quoted = await quote(handle, Role.BUYER)
    await cancel(handle)
    await handle.result()
    actual = [d for d in (await status(handle)).decisions if d["kind"] == "cancellation"][0]
    assert quoted.explanation.amounts == actual["amounts"]


async def test_within_grace_a_late_order_is_an_ordinary_buyer_cancellation(client, task_queue, engine, env):
    handle = await create_order(client, task_queue, plan="staged:30/70", price=PRICE, production_days=5)
    await accept(handle)
    await pay(handle, 30_000)
    await milestones(handle, materials=20_000)
    await env.sleep(timedelta(days=6))  # promised date + 1 day: still within grace
    quoted = await quote(handle, Role.BUYER)
    assert 0 < quoted.explanation.facts["days_late"] <= POLICY.deadlines.production_grace.days
    await cancel(handle)
    fee = apply_bps(20_000, FEE_BPS)
    await assert_cancelled(handle, engine, quoted, rule="R07", refund=10_000, to_seller=20_000 - fee, fee=fee,
                           reason="buyer_request")


async def _fail_qc(handle) -> str:
    await handle.execute_update(OrderWorkflow.finish_production, ActorInput(actor=SELLER))
    result = await handle.execute_update(OrderWorkflow.quality_check, QcInput(actor=SELLER, passed=False))
    return result.message


async def test_seller_cancelling_after_the_rework_limit_is_decided_as_a_quality_failure(
    client, task_queue, engine
):
    limit = POLICY.limits.qc_max_rework
    handle = await create_order(client, task_queue, plan="staged:20/80", price=PRICE, earnest_deposit=True)
    await accept(handle)
    await pay(handle, 20_000)
    await milestones(handle, materials=30_000, fabrication=20_000)
    for _ in range(limit):
        await _fail_qc(handle)
        assert (await status(handle)).stage is Stage.IN_PRODUCTION  # back to rework
    # Within the limit a seller walking away is an ordinary seller cancellation.
    assert [m.rule_id for m in (await quote(handle, Role.SELLER)).explanation.matched] == ["R11"]
    message = await _fail_qc(handle)
    assert "rework limit" in message
    view = await status(handle)
    assert view.stage is Stage.QUALITY_CHECK and view.qc_failures == limit + 1
    # The workflow decides this cancellation as the quality process ending the
    # order (cancelled_by system, reason qc_rework_limit), so the quote does too.
    quoted = await quote(handle, Role.BUYER, cancelled_by="system", reason="qc_rework_limit")
    await cancel(handle, actor=SELLER, reason="cannot meet the finish spec")
    explanation = await assert_cancelled(
        handle, engine, quoted, rule="R15", refund=20_000, to_seller=0, fee=0, seller_pays_buyer=20_000,
        reason="qc_rework_limit",
    )
    assert explanation["facts"]["cancelled_by"] == "system"


async def test_quote_cancel_by_the_seller_after_the_rework_limit_works(client, task_queue, engine):
    handle = await create_order(client, task_queue, price=PRICE)
    await accept(handle)
    await pay(handle, PRICE)
    for _ in range(POLICY.limits.qc_max_rework + 1):
        await _fail_qc(handle)
    quoted = await quote(handle, Role.SELLER)
    assert [m.rule_id for m in quoted.explanation.matched] == ["R15"]


async def test_unpaid_balance_times_out_and_the_buyer_bears_the_net_cost_beyond_escrow(
    client, task_queue, engine
):
    handle = await create_order(client, task_queue, plan="staged:30/70", price=PRICE)
    await accept(handle)
    await pay(handle, 30_000)
    await milestones(handle, materials=30_000, fabrication=20_000, finishing=10_000)
    await handle.execute_update(OrderWorkflow.salvage, SalvageInput(actor=SELLER, value=20_000))
    await handle.execute_update(OrderWorkflow.finish_production, ActorInput(actor=SELLER))
    await handle.execute_update(OrderWorkflow.quality_check, QcInput(actor=SELLER, passed=True))
    view = await status(handle)
    assert view.stage is Stage.AWAITING_BALANCE and [d.name for d in view.deadlines][0] == "balance"
    # What the balance deadline will do if it passes.
    quoted = await quote(handle, Role.BUYER, cancelled_by="system", reason="balance_timeout")
    # Time skips the 7-day balance deadline: buyer breach, no cap on the net cost.
    net_cost = 60_000 - 20_000
    fee = apply_bps(30_000, FEE_BPS)
    await assert_cancelled(handle, engine, quoted, rule="R16", refund=0, to_seller=30_000 - fee, fee=fee,
                           buyer_owes_seller=net_cost - 30_000, reason="balance_timeout")
    view = await status(handle)
    assert any(e.kind == "cancelled" and "balance_timeout" in e.message for e in view.timeline)
