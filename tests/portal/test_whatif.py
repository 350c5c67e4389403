"""The what-if calculator's facts, checked against real orders: for the same plan,
price, stage and costs, a running order's `quote-cancel` (its own facts, queried
from the workflow) and the what-if (facts built from the plan's schedule) reach the
same decision, amounts and rule. Both decide with `decide_cancellation`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bespoke.domain.models import ActorInput, MilestoneInput, QcInput, Role, SalvageInput
from bespoke.rules import decide_cancellation, find_policy
from bespoke.rules.whatif import WhatIfError, paid_by_stage, unpaid_by_stage, whatif_cancellation
from bespoke.workflows.order import OrderWorkflow
from tests.helpers import SELLER, accept, create_order, order_policy, pay, ship, status

POLICY = find_policy("default")
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_readme_example_what_if_gives_the_documented_split():
    # README "Cancellation and what-if quotes": 8,000.00 staged 30/70, 3,000.00 of
    # materials, 1,000.00 salvage, the buyer cancels: 400.00 back, 1,900.00 to the
    # seller after a 100.00 fee, rule R07.
    facts, d = whatif_cancellation(
        POLICY, plan="staged", ratios=(30, 70), price=800_000, currency="CNY", stage="in_production",
        cancelled_by="buyer", costs_incurred=300_000, salvage_value=100_000, as_of=NOW,
    )
    assert facts.paid_total == 240_000
    assert (d.refund_to_buyer, d.to_seller, d.platform_fee) == (40_000, 190_000, 10_000)
    assert [m.rule_id for m in d.explanation.matched] == ["R07"]


def test_paid_by_stage_follows_the_plan_schedule():
    assert paid_by_stage("staged", (30, 60, 10), 1001, "in_production") == (300, 300)  # largest remainder: 300.3, 600.6 -> 601, 100.1
    assert paid_by_stage("staged", (30, 60, 10), 1001, "shipped") == (901, 300)  # retention not yet due
    assert paid_by_stage("staged", (30, 70), 1000, "awaiting_balance") == (300, 300)
    assert paid_by_stage("full_prepayment", (), 1000, "awaiting_deposit") == (0, 0)
    assert paid_by_stage("credit", (), 1000, "shipped") == (0, 0)
    assert unpaid_by_stage("staged", (30, 60, 10), 1001, "awaiting_balance") == 601
    assert unpaid_by_stage("full_prepayment", (), 1000, "awaiting_deposit") == 1000
    assert unpaid_by_stage("credit", (), 1000, "in_production") == 1000
    assert unpaid_by_stage("staged", (30, 70), 1000, "in_production") == 0


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"plan": "staged", "ratios": (1, 99)}, "not offered"),
        ({"plan": "full_prepayment", "earnest": True}, "staged plans only"),
        ({"plan": "staged", "ratios": (30, 70), "earnest": True}, "at most 20%"),
        ({"stage": "awaiting_deposit", "costs_incurred": 5}, "before production"),
        ({"cancelled_by": "ops"}, "buyer or the seller"),
        ({"stage": "shipped"}, "cannot be cancelled"),
        ({"stage": "awaiting_balance"}, "only a staged plan"),
    ],
)
def test_what_if_refuses_impossible_orders(kw, match):
    base = dict(plan="full_prepayment", price=100_000, currency="CNY", stage="in_production", cancelled_by="buyer",
                as_of=NOW)
    with pytest.raises(WhatIfError, match=match):
        whatif_cancellation(POLICY, **{**base, **kw})


async def _quote(env, handle, by: Role):
    facts = await handle.query(OrderWorkflow.quote_facts, args=[by, await env.get_current_time()])
    return facts, decide_cancellation(await order_policy(handle), facts, decision_id="q")


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize(
    "plan, ratios, stage, earnest",
    [
        ("staged:20/80", (20, 80), "in_production", True),
        ("staged:30/70", (30, 70), "in_production", False),
        ("staged:30/60/10", (30, 60, 10), "awaiting_balance", False),
        ("staged:20/80", (20, 80), "quality_check", False),
        ("full_prepayment", (), "quality_check", False),
        ("full_prepayment", (), "awaiting_deposit", False),
    ],
)
async def test_what_if_matches_a_real_orders_quote(env, client, task_queue, plan, ratios, stage, earnest):
    price = 123_457
    handle = await create_order(client, task_queue, plan=plan, price=price, earnest_deposit=earnest)
    await accept(handle)
    costs = salvage = 0
    if stage != "awaiting_deposit":
        await pay(handle, (await status(handle)).amount_due)
        await handle.execute_update(OrderWorkflow.milestone, MilestoneInput(actor=SELLER, milestone="materials",
                                                                             cost=40_000))
        await handle.execute_update(OrderWorkflow.salvage, SalvageInput(actor=SELLER, value=7_000))
        costs, salvage = 40_000, 7_000
    if stage in ("quality_check", "awaiting_balance", "shipped"):
        await handle.execute_update(OrderWorkflow.finish_production, ActorInput(actor=SELLER))
    if stage in ("awaiting_balance", "shipped"):
        await handle.execute_update(OrderWorkflow.quality_check, QcInput(actor=SELLER, passed=True))
    if stage == "shipped":
        await pay(handle, (await status(handle)).amount_due)
        await ship(handle)
    assert (await status(handle)).stage.value == stage
    for by in (Role.BUYER, Role.SELLER):
        real_facts, real = await _quote(env, handle, by)
        facts, what_if = whatif_cancellation(
            POLICY, plan=plan.split(":")[0], ratios=ratios, price=price, currency="CNY", stage=stage,
            cancelled_by=by.value, costs_incurred=costs, salvage_value=salvage, earnest=earnest,
            as_of=real_facts.as_of,
        )
        assert facts.model_dump(exclude={"costs_by_milestone"}) == real_facts.model_dump(exclude={"costs_by_milestone"})
        assert what_if.model_dump(exclude={"explanation"}) == real.model_dump(exclude={"explanation"})
        assert [m.rule_id for m in what_if.explanation.matched] == [m.rule_id for m in real.explanation.matched]
