"""Record ReconcileWorkflow histories for its replay test (tests/workflows/test_reconcile_replay.py).

    python -m tests.histories.reconcile.record NAME    # never overwrites an existing file

Runs on the embedded dev server (the reconciliation lists workflows through
Temporal's visibility, which the time-skipping test server lacks): one completed
order, then one reconciliation, whose history is written to `NAME.json`. Like
tests/histories/record.py, a history is a fixture of the code of the day: record a
new name for a new path, never re-record an old one.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bespoke.activities.reconcile import ReconcileInput
from bespoke.runtime.client import connect
from bespoke.runtime.embedded import EmbeddedServer
from bespoke.settings import Settings
from bespoke.store.db import get_engine
from bespoke.worker import build_worker
from bespoke.workflows.reconcile import ReconcileWorkflow
from tests.helpers import accept, confirm, create_order, deliver, pay, produce, ship
from tests.processes import free_port

HERE = Path(__file__).parent


async def record(name: str) -> Path:
    target = HERE / f"{name}.json"
    if target.exists():
        raise SystemExit(f"{target} exists; record a new name instead")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "home", temporal_address=f"127.0.0.1:{free_port()}",
                            ui_port=free_port())
        async with EmbeddedServer(settings, headless=True):
            client = await connect(settings)
            engine = get_engine(f"sqlite:///{tmp}/bespoke.db")
            task_queue = f"record-{uuid.uuid4().hex[:8]}"
            with ThreadPoolExecutor(max_workers=4) as executor:
                async with build_worker(client, task_queue=task_queue, engine=engine, executor=executor):
                    handle = await create_order(client, task_queue, price=100_000)
                    await accept(handle)
                    await pay(handle, 100_000)
                    await produce(handle)
                    await ship(handle)
                    await deliver(handle)
                    await confirm(handle)
                    run = await client.start_workflow(ReconcileWorkflow.run, ReconcileInput(settle_seconds=0),
                                                      id=f"reconcile-{uuid.uuid4()}", task_queue=task_queue)
                    report = await run.result()
                    assert report.clean, report
                    target.write_text((await run.fetch_history()).to_json())
                    await handle.terminate("recorded")
            engine.dispose()
    return target


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(asyncio.run(record(name)))
