"""Several workers: three `bespoke worker` processes on one task queue share
the orders; one is SIGKILLed mid-flight and not restarted; the other two finish
every order with exact books. Also: the daily reconciliation schedule exists
once a worker has started, and `bespoke ops reconcile` finds the books clean."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from bespoke.domain.models import Stage
from bespoke.rules import find_policy
from bespoke.runtime.embedded import EmbeddedServer
from bespoke.service import order_handle
from bespoke.workflows.reconcile import SCHEDULE_ID

from .conftest import spawn
from .harness import PLANS, Stats, bespoke_command, check_books, drive_order, wait_completed, worker_identities

ORDERS = int(os.environ.get("RESILIENCE_ORDERS", "200")) // 2
ORDER_TIMEOUT = 900.0

pytestmark = pytest.mark.timeout(1500)


async def test_three_workers_share_the_orders_and_two_finish_them_when_one_dies(
    server: EmbeddedServer, temporal, workers, db, database_url, tmp_path: Path
):
    procs = [spawn(workers, name, server, database_url, tmp_path / f"worker-{name}") for name in "abc"]
    kinds = list(PLANS)
    plans = {f"W{i:03d}": kinds[i % len(kinds)] for i in range(ORDERS)}
    stats = Stats()
    policy = find_policy("default")
    began = time.monotonic()
    driving = asyncio.gather(*(
        drive_order(temporal, oid, plan, task_queue=server.settings.task_queue, policy=policy, stats=stats,
                    timeout=ORDER_TIMEOUT, store=db)
        for oid, plan in plans.items()
    ))
    total = sum(9 + len(PLANS[p]) for p in plans.values())
    while stats.updates < total * 0.4 and not driving.done():
        stats.progress.clear()
        await stats.progress.wait()
    assert not driving.done()
    victim = procs[1]
    victim.kill()
    killed_at = (round(time.monotonic() - began, 1), stats.updates)
    await driving
    views = await wait_completed(temporal, db, list(plans), ORDER_TIMEOUT)
    elapsed = time.monotonic() - began

    assert {v.stage for v in views.values()} == {Stage.COMPLETED}
    check_books(db, list(plans), plans)
    # Each worker's identity ("pid@host (user)", bespoke.runtime.client) is on the
    # tasks it completed.
    histories = [await order_handle(temporal, oid).fetch_history() for oid in plans]
    seen = worker_identities(histories)
    host = socket.gethostname()
    per_worker = {p.name: sum(n for ident, n in seen.items() if ident.startswith(f"{p.pids[0]}@{host} "))
                  for p in procs}
    assert all(count > 0 for count in per_worker.values()), (per_worker, seen.most_common(5))
    assert not victim.alive and all(p.alive for p in (procs[0], procs[2]))
    print(f"\n{ORDERS} orders, {total} updates on 3 workers, worker b SIGKILLed at (s, updates) {killed_at}: "
          f"{elapsed:.1f}s; tasks per worker {per_worker}; retries {dict(stats.retries)}")

    # The workers created the daily reconciliation schedule (once, whoever came first).
    described = await temporal.get_schedule_handle(SCHEDULE_ID).describe()
    assert described.schedule.action.workflow == "ReconcileWorkflow"
    next_run = described.info.next_action_times[0]
    assert (next_run.hour, next_run.minute) == (3, 0)  # daily at 03:00 UTC
    env = {**procs[0].env, "COLUMNS": "200"}

    def ops(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*bespoke_command(), "ops", "reconcile", *args], env=env, capture_output=True,
                              text=True, timeout=180)

    again = await asyncio.to_thread(ops, "--schedule")
    assert again.returncode == 0 and "already exists" in again.stdout, again.stderr
    report = await asyncio.to_thread(ops, "--json")
    assert report.returncode == 0, report.stdout + report.stderr
    body = json.loads(report.stdout)
    assert body["clean"] is True and body["orders_checked"] == ORDERS
