"""Prometheus metrics: a `bespoke worker` with BESPOKE_METRICS_BIND serves the
Temporal SDK's metrics, including those of the tasks it just ran."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from pathlib import Path

from tests.helpers import accept, create_order, status

from .harness import WorkerProcess, free_port, worker_env


def _scrape(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except OSError:
        return ""


async def test_worker_serves_temporal_metrics_on_the_configured_address(client, task_queue, tmp_path: Path):
    bind = f"127.0.0.1:{free_port()}"
    worker = WorkerProcess("metrics", worker_env(
        address=client.service_client.config.target_host, home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path}/bespoke.db", BESPOKE_METRICS_BIND=bind, BESPOKE_TASK_QUEUE=task_queue,
    ), tmp_path)
    worker.start()
    try:
        from bespoke.store.db import get_engine

        # The order's policy is pinned into the worker's own database (its policy store).
        handle = await create_order(client, task_queue, engine=get_engine(f"sqlite:///{tmp_path}/bespoke.db"))
        await accept(handle)  # workflow tasks and activities on the subprocess worker
        assert (await status(handle)).stage == "awaiting_deposit"
        deadline = time.monotonic() + 30
        body = ""
        # The read-model writes are local activities ("sync-local-v1").
        while "temporal_local_activity_execution_latency" not in body and time.monotonic() < deadline:
            body = await asyncio.to_thread(_scrape, f"http://{bind}/metrics")
            await asyncio.sleep(0.2)
        assert "temporal_local_activity_execution_latency" in body, worker.log_tail()
        assert f'task_queue="{task_queue}"' in body
        assert 'activity_type="sync_read_model"' in body
        assert "temporal_workflow_task_execution_latency" in body
        assert "temporal_worker_task_slots_available" in body
        # The time-skipping server has no schedules: the worker says so and carries on.
        assert "reconciliation schedule not created" in worker.log_tail(50)
        assert f"Prometheus metrics at http://{bind}/metrics" in worker.log_tail(50)
    finally:
        worker.stop()
