"""Every waiting stage's deadline takes its default action, in virtual time."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bespoke.domain.models import Stage
from tests.helpers import (
    accept,
    assert_view_matches_ledger,
    confirm,
    create_order,
    deliver,
    pay,
    produce,
    ship,
    status,
)
from tests.helpers_accounts import buyer_account, set_credit_limit

pytestmark = pytest.mark.usefixtures("worker")


def _oid(handle) -> str:
    return handle.id.removeprefix("order-")


async def test_seller_silent_past_acceptance_deadline_cancels_at_no_cost(client, task_queue, engine):
    handle = await create_order(client, task_queue)
    result = await handle.result()  # time skips two days
    assert result.stage is Stage.CANCELLED
    view = await status(handle)
    assert any(e.kind == "cancelled" and "acceptance_timeout" in e.message for e in view.timeline)
    assert view.paid == 0 and view.refunded == 0
    assert view.decisions[-1]["kind"] == "cancellation"


async def test_unpaid_deposit_cancels_and_refunds_a_partial_payment(client, task_queue, engine):
    handle = await create_order(client, task_queue, plan="collection_account", price=100_000)
    await accept(handle)
    from tests.helpers import BANK

    await pay(handle, 40_000, "BANK-partial", actor=BANK, method="bank_transfer")
    result = await handle.result()
    assert result.stage is Stage.CANCELLED
    view = await assert_view_matches_ledger(handle, engine, _oid(handle), closed=True)
    assert view.refunded == 40_000
    assert any("deposit_timeout" in e.message for e in view.timeline)


async def test_unpaid_balance_cancels_with_costs_allocated_by_the_policy(client, task_queue, engine):
    handle = await create_order(client, task_queue, plan="staged:30/70", price=100_000)
    await accept(handle)
    await pay(handle, 30_000)
    await produce(handle, costs=(10_000, 8_000, 2_000))
    assert (await status(handle)).stage is Stage.AWAITING_BALANCE
    result = await handle.result()
    assert result.stage is Stage.CANCELLED
    view = await assert_view_matches_ledger(handle, engine, _oid(handle), closed=True)
    assert any("balance_timeout" in e.message for e in view.timeline)
    # The buyer breached: the seller keeps at least part of the deposit toward costs.
    assert view.released_to_seller > 0
    assert view.refunded + view.released_to_seller + view.platform_fee == 30_000


async def test_inspection_window_expiry_auto_confirms_and_releases_escrow(client, task_queue, engine):
    handle = await create_order(client, task_queue, price=50_000)
    await accept(handle)
    await pay(handle, 50_000)
    await produce(handle)
    await ship(handle)
    await deliver(handle)
    view = await status(handle)
    assert [d.name for d in view.deadlines] == ["inspection_window"]
    result = await handle.result()
    assert result.stage is Stage.COMPLETED
    view = await assert_view_matches_ledger(handle, engine, _oid(handle), closed=True)
    assert any(e.kind == "auto_confirmed" for e in view.timeline)
    assert view.released_to_seller == 47_500


async def test_overdue_credit_freezes_the_buyer_and_repayment_unfreezes(client, task_queue, engine, env):
    set_credit_limit(engine, "carol", 300_000)
    handle = await create_order(client, task_queue, plan="credit", price=200_000, buyer="carol")
    await accept(handle)
    await produce(handle)
    await ship(handle)
    await deliver(handle)
    from bespoke.domain.models import ActorInput, Actor
    from bespoke.workflows.order import OrderWorkflow

    await handle.execute_update(OrderWorkflow.confirm, ActorInput(actor=Actor.parse("buyer:carol")))
    await env.sleep(timedelta(days=40))
    view = await status(handle)
    assert any(e.kind == "credit_overdue" for e in view.timeline)
    assert any(e.kind == "credit_reminder" for e in view.timeline)
    assert buyer_account(engine, "carol").frozen
    # A frozen buyer cannot take new credit: the next credit order is cancelled.
    second = await create_order(client, task_queue, plan="credit", price=10_000, buyer="carol")
    await accept(second)
    assert (await second.result()).stage is Stage.CANCELLED
    assert "frozen" in (await status(second)).timeline[-2].message
    await pay(handle, 200_000, actor=Actor.parse("buyer:carol"), method="credit_repayment")
    await handle.result()
    assert not buyer_account(engine, "carol").frozen
    await assert_view_matches_ledger(handle, engine, _oid(handle), closed=True)


async def test_credit_beyond_the_limit_cancels_the_order_at_acceptance(client, task_queue, engine):
    set_credit_limit(engine, "dave", 50_000)
    handle = await create_order(client, task_queue, plan="credit", price=60_000, buyer="dave")
    await accept(handle)
    assert (await handle.result()).stage is Stage.CANCELLED
    view = await status(handle)
    assert "credit limit exceeded" in view.timeline[-2].message


async def test_late_production_is_marked_and_penalised_at_settlement(client, task_queue, engine, env):
    handle = await create_order(client, task_queue, price=100_000, production_days=5)
    await accept(handle)
    await pay(handle, 100_000)
    await env.sleep(timedelta(days=10))  # promised date + 5 days
    view = await status(handle)
    kinds = [e.kind for e in view.timeline]
    assert "promised_date_passed" in kinds and "grace_period_over" in kinds
    await produce(handle)
    await ship(handle)
    await deliver(handle)
    await confirm(handle)
    await handle.result()
    view = await assert_view_matches_ledger(handle, engine, _oid(handle), closed=True)
    assert view.late_penalty > 0
    assert view.refunded == view.late_penalty
    assert view.released_to_seller + view.platform_fee + view.late_penalty == 100_000
