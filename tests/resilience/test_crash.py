"""Crash survival: 200 orders run through the whole happy path while the worker
process is SIGKILLed and restarted several times, and while the Temporal
server itself restarts on its SQLite file. Every order must complete with its
ledger exact: paid once, settled once, escrow empty, no duplicate posting."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from bespoke.domain.models import Stage
from bespoke.rules import find_policy
from bespoke.runtime.embedded import EmbeddedServer

from .conftest import spawn
from .harness import PLANS, Stats, check_books, drive_order, wait_completed

# RESILIENCE_ORDERS scales the run down for a quick local check; CI runs 200.
ORDERS = int(os.environ.get("RESILIENCE_ORDERS", "200"))
RESTART_ORDERS = ORDERS // 2  # one outage needs fewer orders in flight to prove the point
# Correctness, not speed, is asserted: on a loaded machine 200 orders take minutes,
# and every order runs for about as long as the whole batch.
ORDER_TIMEOUT = 900.0

pytestmark = pytest.mark.timeout(1500)


def _plans(n: int, prefix: str) -> dict[str, str]:
    kinds = list(PLANS)
    return {f"{prefix}{i:03d}": kinds[i % len(kinds)] for i in range(n)}


async def _run_orders(temporal, plans: dict[str, str], stats: Stats, task_queue: str, db) -> asyncio.Future:
    policy = find_policy("default")
    return asyncio.gather(
        *(drive_order(temporal, oid, plan, task_queue=task_queue, policy=policy, stats=stats, timeout=ORDER_TIMEOUT,
                      store=db)
          for oid, plan in plans.items())
    )


async def _when_progress(stats: Stats, updates: int, driving: asyncio.Future) -> None:
    while stats.updates < updates and not driving.done():
        stats.progress.clear()
        await stats.progress.wait()


def _total_steps(plans: dict[str, str]) -> int:
    return sum(9 + len(PLANS[p]) for p in plans.values())


async def test_200_orders_complete_with_exact_books_while_the_worker_is_killed_four_times(
    server: EmbeddedServer, temporal, workers, db, database_url, tmp_path: Path
):
    plans = _plans(ORDERS, "K")
    worker = spawn(workers, "a", server, database_url, tmp_path / "worker")
    stats = Stats()
    began = time.monotonic()
    driving = await _run_orders(temporal, plans, stats, server.settings.task_queue, db)
    total = _total_steps(plans)
    kill_log = []
    # Kill at fixed fractions of progress, so every kill lands mid-flight
    # whatever the machine's speed; restart after a moment of no worker at all.
    for fraction in (0.15, 0.35, 0.55, 0.75):
        await _when_progress(stats, int(total * fraction), driving)
        assert not driving.done(), "orders finished before the worker could be killed"
        worker.kill()
        kill_log.append((round(time.monotonic() - began, 1), stats.updates))
        await asyncio.sleep(1.0)
        worker.start()
    await driving
    views = await wait_completed(temporal, db, list(plans), ORDER_TIMEOUT)
    elapsed = time.monotonic() - began

    assert worker.kills == 4 and len(worker.pids) == 5
    assert {v.stage for v in views.values()} == {Stage.COMPLETED}
    assert all(v.escrow == 0 and v.paid == 100_000 and v.refunded == 0 for v in views.values())
    check_books(db, list(plans), plans)
    print(f"\n{ORDERS} orders, {total} updates, {worker.kills} SIGKILLs at (s, updates) {kill_log}: "
          f"{elapsed:.1f}s; retries {dict(stats.retries)}, already applied {stats.already_applied}")


async def test_orders_survive_a_temporal_server_restart_on_its_sqlite_file(
    server: EmbeddedServer, temporal, workers, db, database_url, tmp_path: Path
):
    plans = _plans(RESTART_ORDERS, "S")
    worker = spawn(workers, "a", server, database_url, tmp_path / "worker")
    stats = Stats()
    began = time.monotonic()
    driving = await _run_orders(temporal, plans, stats, server.settings.task_queue, db)
    total = _total_steps(plans)
    await _when_progress(stats, total // 2, driving)
    assert not driving.done()
    restarted_at = (round(time.monotonic() - began, 1), stats.updates)
    db_file = server.db_path
    await server.stop()  # SIGTERM; everything the server acknowledged is in its SQLite file
    assert db_file is not None and db_file.stat().st_size > 0
    down = time.monotonic()
    await asyncio.sleep(2.0)
    await server.start()  # same SQLite file, same port
    outage = time.monotonic() - down
    await driving
    views = await wait_completed(temporal, db, list(plans), ORDER_TIMEOUT)
    elapsed = time.monotonic() - began

    assert {v.stage for v in views.values()} == {Stage.COMPLETED}
    assert all(v.escrow == 0 and v.paid == 100_000 and v.refunded == 0 for v in views.values())
    check_books(db, list(plans), plans)
    # The worker rode out the outage on its own (its pollers retry), or was restarted.
    print(f"\n{RESTART_ORDERS} orders, {total} updates, server restarted at (s, updates) {restarted_at}, "
          f"outage {outage:.1f}s: {elapsed:.1f}s; worker pids {worker.pids}, alive {worker.alive}; "
          f"retries {dict(stats.retries)}, already applied {stats.already_applied}")
