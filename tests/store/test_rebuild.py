"""`bespoke db rebuild` restores a lost read model from the order workflows' histories
(embedded dev server: it lists the workflows through Temporal's visibility): the
tables come back with the same rows, for running, closed and continued-as-new
orders alike, and a second run changes nothing."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session
from temporalio.client import Client

from bespoke.domain.models import CancelInput
from bespoke.runtime.client import connect
from bespoke.runtime.embedded import EmbeddedServer
from bespoke.settings import Settings
from bespoke.store.db import get_engine
from bespoke.store.tables import OrderRow
from bespoke.workflows.order import OrderWorkflow
from tests.conftest import _TrackStarted, _until_idle, postgres_schema, postgres_test_url
from tests.helpers import (
    BUYER,
    accept,
    assert_ledger,
    confirm,
    create_order,
    deliver,
    pay,
    policy_variant,
    produce,
    ship,
    status,
)
from tests.processes import bespoke_command, free_port

pytestmark = pytest.mark.usefixtures("worker")

# Every column but the surrogate autoincrement ids (ledger_entries.id, timeline.id):
# their values depend on how the orders' writes interleaved, and nothing refers to
# them. Rows are compared in (order, id) order, so each order's posting order counts.
# orders.revision is left out too: every sync writes a fresh random one (so a
# rebuilt row never repeats a revision an API replica has cached), which
# tests/workflows/test_sync.py checks.
ORDER_COLUMNS = [c.name for c in OrderRow.__table__.columns if c.name != "revision"]
TABLES = {
    "orders": f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders ORDER BY order_id",
    "ledger_entries": "SELECT order_id, txn_key, leg, kind, account, amount, currency, memo, at "
                      "FROM ledger_entries ORDER BY order_id, id",
    "timeline": "SELECT order_id, seq, at, kind, actor, message FROM timeline ORDER BY order_id, id",
    "decisions": "SELECT decision_id, order_id, kind, explanation, at FROM decisions ORDER BY decision_id",
}


@pytest.fixture(scope="module")
async def dev_server(tmp_path_factory):
    settings = Settings(home=tmp_path_factory.mktemp("temporal"), temporal_address=f"127.0.0.1:{free_port()}",
                        ui_port=free_port())
    async with EmbeddedServer(settings, headless=True) as server:
        yield server


@pytest.fixture
async def client(dev_server) -> Client:
    config = (await connect(dev_server.settings)).config()
    config["interceptors"] = [*config["interceptors"], _TrackStarted()]
    return Client(**config)


@pytest.fixture
def empty_url(tmp_path: Path):
    """A second, empty database of the same kind as the test's (SQLite file or
    PostgreSQL schema): where a lost database is rebuilt."""
    server = postgres_test_url()
    if server is None:
        yield f"sqlite:///{tmp_path}/rebuilt.db"
        return
    with postgres_schema(server) as url:
        yield url


def _url(engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _tables(engine) -> dict[str, list[tuple]]:
    with Session(engine) as session:
        return {name: [tuple(row) for row in session.exec(text(sql)).all()] for name, sql in TABLES.items()}


def _rebuild(client: Client, task_queue: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BESPOKE_", "TEMPORAL_"))}
    env.update(TEMPORAL_ADDRESS=client.service_client.config.target_host, BESPOKE_TASK_QUEUE=task_queue,
               BESPOKE_DATABASE_URL=url)
    return subprocess.run([*bespoke_command(), "db", "rebuild", "--json"], env=env, capture_output=True,
                          text=True, timeout=120)


async def _orders(client: Client, task_queue: str, engine) -> list[str]:
    """A running order in its after-sales window, a cancelled (closed) one, an order
    still in production, and one that continued as new twice."""
    done = await create_order(client, task_queue, price=100_000)
    await accept(done)
    await pay(done, 100_000)
    await produce(done)
    await ship(done)
    await deliver(done)
    await confirm(done)
    cancelled = await create_order(client, task_queue, plan="staged:30/70", price=80_000)
    await accept(cancelled)
    await pay(cancelled, 24_000)
    await cancelled.execute_update(OrderWorkflow.cancel, CancelInput(actor=BUYER, reason="changed mind"))
    await cancelled.result()
    producing = await create_order(client, task_queue, price=60_000)
    await accept(producing)
    await pay(producing, 60_000)
    chained = await create_order(client, task_queue, price=70_000, policy=policy_variant(max_updates_per_run=1))
    await accept(chained)
    await pay(chained, 70_000)
    await produce(chained)
    assert (await status(chained)).runs >= 3
    for handle in (done, producing, chained):
        await _until_idle(client.get_workflow_handle(handle.id))  # the last read-model writes have landed
    ids = [h.id.removeprefix("order-") for h in (done, cancelled, producing, chained)]
    for oid, closed in zip(ids, (False, True, False, False)):
        assert_ledger(engine, oid, closed=closed)
    return ids


async def test_a_deleted_read_model_is_rebuilt_to_the_same_rows_and_a_second_rebuild_changes_nothing(
        client, task_queue, engine, empty_url: str):
    await _orders(client, task_queue, engine)
    before = _tables(engine)
    assert all(before.values()) and len(before["orders"]) == 4

    # The database lost: rebuild into a new, empty one.
    fresh = empty_url
    first = await asyncio.to_thread(_rebuild, client, task_queue, fresh)
    assert first.returncode == 0 and first.stderr == "", first.stderr
    body = json.loads(first.stdout)
    assert body["orders"] == 4 and body["runs"] >= 5  # the chained order has several runs
    rebuilt = get_engine(fresh)
    assert _tables(rebuilt) == before
    assert body["added"] == {name: len(rows) for name, rows in before.items()}

    again = await asyncio.to_thread(_rebuild, client, task_queue, fresh)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["added"] == {name: 0 for name in TABLES}
    assert _tables(rebuilt) == before
    rebuilt.dispose()  # PostgreSQL: before the schema is dropped


async def test_rows_deleted_under_a_running_worker_are_restored_in_place(client, task_queue, engine):
    await _orders(client, task_queue, engine)
    before = _tables(engine)
    with Session(engine) as session:
        for name in TABLES:
            session.exec(text(f"DELETE FROM {name}"))
        session.commit()
    done = await asyncio.to_thread(_rebuild, client, task_queue, _url(engine))
    assert done.returncode == 0, done.stderr
    assert _tables(engine) == before
    # The worker keeps writing into the same rows afterwards.
    oid = before["orders"][0][0]
    assert_ledger(engine, oid, closed=before["orders"][0][1] in ("completed", "refunded", "cancelled"))


def test_db_rebuild_with_temporal_unreachable_exits_4(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BESPOKE_", "TEMPORAL_"))}
    env.update(TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}", BESPOKE_DATABASE_URL=f"sqlite:///{tmp_path}/x.db")
    proc = subprocess.run([*bespoke_command(), "db", "rebuild"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.startswith("error: ") and len(proc.stderr.splitlines()) == 1


async def test_an_encrypted_namespace_is_rebuilt_with_its_key_and_refused_without(dev_server, engine,
                                                                                  empty_url: str):
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    from pydantic import SecretStr

    from bespoke.runtime.codec import generate_key
    from bespoke.worker import build_worker

    key = f"k1:{generate_key()}"
    task_queue = f"encrypted-{uuid.uuid4()}"  # not the plaintext `worker` fixture's queue
    keyed = dev_server.settings.model_copy(update={"payload_key": SecretStr(key)})
    client = await connect(keyed)
    with ThreadPoolExecutor(max_workers=4) as executor:
        async with build_worker(await connect(keyed, worker=True), task_queue=task_queue, engine=engine,
                                executor=executor):
            handle = await create_order(client, task_queue, price=90_000)
            await accept(handle)
            await pay(handle, 90_000)
            await _until_idle(handle)
            before = _tables(engine)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("BESPOKE_", "TEMPORAL_"))}
            env.update(TEMPORAL_ADDRESS=client.service_client.config.target_host, BESPOKE_TASK_QUEUE=task_queue,
                       BESPOKE_DATABASE_URL=empty_url)

            def rebuild(**extra: str) -> subprocess.CompletedProcess[str]:
                return subprocess.run([*bespoke_command(), "db", "rebuild", "--json"], env={**env, **extra},
                                      capture_output=True, text=True, timeout=120)

            keyless = await asyncio.to_thread(rebuild)
            assert keyless.returncode == 1, keyless.stderr
            (line,) = keyless.stderr.splitlines()
            assert line.startswith("error: ") and "BESPOKE_PAYLOAD_KEY" in line, line
            done = await asyncio.to_thread(rebuild, BESPOKE_PAYLOAD_KEY=key)
            assert done.returncode == 0, done.stderr
            rebuilt = get_engine(empty_url)
            assert _tables(rebuilt) == before and before["ledger_entries"]
            rebuilt.dispose()
            await handle.terminate("test finished")
