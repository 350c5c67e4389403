"""Each payment plan end to end on the time-skipping server, with the ledger
checked after every scenario."""

from __future__ import annotations

import pytest

from bespoke.domain.models import Stage
from tests.helpers import (
    BANK,
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

pytestmark = pytest.mark.usefixtures("worker")


async def test_full_prepayment_runs_to_completion_and_releases_escrow_minus_fee(client, task_queue, engine):
    handle = await create_order(client, task_queue, price=100_000)
    await accept(handle)
    assert (await status(handle)).stage is Stage.AWAITING_DEPOSIT
    await pay(handle, 100_000)
    assert (await status(handle)).stage is Stage.IN_PRODUCTION
    await produce(handle)
    await ship(handle)
    await deliver(handle)
    await confirm(handle)
    await handle.result()
    view = await assert_view_matches_ledger(handle, engine, handle.id.removeprefix("order-"), closed=True)
    assert view.stage is Stage.COMPLETED
    assert view.paid == 100_000
    assert view.platform_fee == 5_000  # 500 bp of the default policy
    assert view.released_to_seller == 95_000
    assert view.costs_incurred == 40_000


@pytest.mark.parametrize("ratios,parts", [("20/80", [20_000, 80_000]), ("30/70", [30_000, 70_000])])
async def test_staged_two_part_plan_takes_deposit_then_balance_after_quality_check(
    client, task_queue, engine, ratios, parts
):
    handle = await create_order(client, task_queue, plan=f"staged:{ratios}", price=100_000)
    await accept(handle)
    assert (await status(handle)).amount_due == parts[0]
    await pay(handle, parts[0])
    await produce(handle)
    view = await status(handle)
    assert view.stage is Stage.AWAITING_BALANCE and view.amount_due == parts[1]
    await pay(handle, parts[1])
    await ship(handle)
    await deliver(handle)
    await confirm(handle)
    await handle.result()
    view = await assert_view_matches_ledger(handle, engine, handle.id.removeprefix("order-"), closed=True)
    assert view.stage is Stage.COMPLETED and view.paid == 100_000


async def test_staged_30_60_10_holds_back_retention_until_after_acceptance(client, task_queue, engine):
    handle = await create_order(client, task_queue, plan="staged:30/60/10", price=99_999)
    await accept(handle)
    view = await status(handle)
    assert view.amount_due == 30_000  # largest remainder: 30000 + 59999 + 10000
    await pay(handle, 30_000)
    await produce(handle)
    view = await status(handle)
    assert view.amount_due == 59_999
    await pay(handle, 59_999)
    await ship(handle)
    await deliver(handle)
    await confirm(handle)
    view = await status(handle)
    assert view.stage is Stage.AWAITING_BALANCE and view.amount_due == 10_000
    assert view.escrow == 0 and view.released_to_seller > 0
    await pay(handle, 10_000)
    await handle.result()
    view = await assert_view_matches_ledger(handle, engine, handle.id.removeprefix("order-"), closed=True)
    assert view.stage is Stage.COMPLETED and view.paid == 99_999
    assert view.released_to_seller + view.platform_fee == 99_999


async def test_credit_plan_ships_on_credit_and_closes_when_buyer_repays(client, task_queue, engine):
    from tests.helpers_accounts import set_credit_limit

    set_credit_limit(engine, "alice", 500_000)
    handle = await create_order(client, task_queue, plan="credit", price=120_000)
    await accept(handle)
    assert (await status(handle)).stage is Stage.IN_PRODUCTION  # no deposit on credit
    await produce(handle)
    await ship(handle)
    await deliver(handle)
    await confirm(handle)
    view = await status(handle)
    assert view.stage is Stage.COMPLETED and view.credit_outstanding == 120_000
    assert view.released_to_seller == 114_000  # the seller is paid at confirmation
    assert sorted(d.name for d in view.deadlines) == ["aftersales_window", "credit_settlement"]
    await pay(handle, 50_000, method="credit_repayment")
    await pay(handle, 70_000, method="credit_repayment")
    await handle.result()
    view = await assert_view_matches_ledger(handle, engine, handle.id.removeprefix("order-"), closed=True)
    assert view.credit_outstanding == 0 and view.paid == 120_000


async def test_cash_on_delivery_collects_at_the_door_and_settles_on_remittance(client, task_queue, engine):
    from bespoke.domain.models import RemitInput
    from bespoke.workflows.order import OrderWorkflow
    from tests.helpers import CARRIER

    handle = await create_order(client, task_queue, plan="cod", price=80_000)
    await accept(handle)
    await produce(handle)
    await ship(handle)
    await deliver(handle, collected=80_000)
    view = await status(handle)
    assert view.stage is Stage.DELIVERED and view.paid == 80_000
    await handle.execute_update(OrderWorkflow.remit, RemitInput(actor=CARRIER, amount=80_000, reference="R1"))
    await handle.result()
    view = await assert_view_matches_ledger(handle, engine, handle.id.removeprefix("order-"), closed=True)
    assert view.stage is Stage.COMPLETED and view.released_to_seller == 76_000


async def test_cash_on_delivery_refused_at_the_door_cancels_with_no_money_moved(client, task_queue, engine):
    from bespoke.domain.models import ReasonInput
    from bespoke.workflows.order import OrderWorkflow
    from tests.helpers import BUYER

    handle = await create_order(client, task_queue, plan="cod", price=80_000)
    await accept(handle)
    await produce(handle)
    await ship(handle)
    await handle.execute_update(OrderWorkflow.refuse, ReasonInput(actor=BUYER, reason="changed mind"))
    await handle.result()
    view = await status(handle)
    assert view.stage is Stage.CANCELLED and view.paid == 0 and view.refunded == 0
    assert view.decisions and view.decisions[-1]["kind"] == "cancellation"


async def test_collection_account_matches_transfers_and_refunds_overpayment(client, task_queue, engine):
    handle = await create_order(client, task_queue, plan="collection_account", price=100_000)
    await accept(handle)
    await pay(handle, 60_000, "BANK-1", actor=BANK, method="bank_transfer")  # under-payment
    view = await status(handle)
    assert view.stage is Stage.AWAITING_DEPOSIT and view.amount_due == 40_000
    await pay(handle, 50_000, "BANK-2", actor=BANK, method="bank_transfer")  # 10,000 over
    view = await status(handle)
    assert view.stage is Stage.IN_PRODUCTION and view.refunded == 10_000 and view.escrow == 100_000
    await produce(handle)
    await ship(handle)
    await deliver(handle)
    await confirm(handle)
    await handle.result()
    view = await assert_view_matches_ledger(handle, engine, handle.id.removeprefix("order-"), closed=True)
    assert view.paid == 110_000 and view.refunded == 10_000 and view.released_to_seller == 95_000
