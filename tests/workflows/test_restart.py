"""A worker that stops mid-order and a new one that picks the order up."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from bespoke.domain.models import Stage
from bespoke.worker import build_worker
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


async def test_order_survives_a_worker_restart_mid_production(client, task_queue, engine):
    # The first worker keeps no sticky cache: the time-skipping server does not
    # redirect queries away from a dead worker's sticky queue.
    with ThreadPoolExecutor(max_workers=4) as pool:
        async with build_worker(client, task_queue=task_queue, engine=engine, executor=pool, max_cached_workflows=0):
            handle = await create_order(client, task_queue, plan="staged:30/70", price=100_000)
            await accept(handle)
            await pay(handle, 30_000, "DEP-1")
    # No worker now; a new one (fresh workflow cache) replays the history.
    with ThreadPoolExecutor(max_workers=4) as pool:
        async with build_worker(client, task_queue=task_queue, engine=engine, executor=pool):
            view = await status(handle)
            assert view.stage is Stage.IN_PRODUCTION and view.paid == 30_000
            await produce(handle)
            await pay(handle, 70_000, "BAL-1")
            await ship(handle)
            await deliver(handle)
            await confirm(handle)
            await handle.result()
            view = await assert_view_matches_ledger(handle, engine, handle.id.removeprefix("order-"), closed=True)
            assert view.stage is Stage.COMPLETED
