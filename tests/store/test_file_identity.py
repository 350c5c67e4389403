"""A SQLite read model deleted or replaced under a running worker is detected, not
written into: the worker's activities fail with a clear message (retried, so the
order waits and loses nothing) until the original file is back.

Before, the pooled connections kept writing to the deleted file, and a fresh
connection would have created an empty one at the path."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus

from bespoke.store.db import DatabaseFileChanged, check_file, session_scope, sqlite_file
from tests.helpers import accept, assert_ledger, create_order, ledger_balances, pay, status

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    # A SQLite file even when BESPOKE_TEST_DATABASE_URL names PostgreSQL: the check
    # is about the file (PostgreSQL has none to lose).
    return f"sqlite:///{tmp_path}/bespoke.db"


async def _failing_attempt(handle, needle: str) -> str:
    """Wait until the order's pending activity has failed with a message containing
    `needle`; return that message."""
    for _ in range(400):
        described = await handle.describe()
        for pending in described.raw_description.pending_activities:
            message = pending.last_failure.message
            if needle in message:
                return message
        await asyncio.sleep(0.05)
    raise AssertionError(f"no activity failed with {needle!r}")


async def test_a_read_model_deleted_under_a_running_worker_is_refused_and_the_order_waits(client, task_queue,
                                                                                         engine):
    path = Path(sqlite_file(str(engine.url)))
    handle = await create_order(client, task_queue, price=100_000)
    oid = handle.id.removeprefix("order-")
    await accept(handle)
    # A second name for the file, so the test can put the same file back later.
    keep = path.with_name("kept.db")
    os.link(path, keep)
    path.unlink()  # what `rm .bespoke/bespoke.db` does

    paying = asyncio.create_task(pay(handle, 100_000, "PAY-1"))
    message = await _failing_attempt(handle, "was deleted or moved away")
    assert str(path) in message and "bespoke db rebuild" in message
    assert not path.exists()  # no empty database was created in its place
    with pytest.raises(DatabaseFileChanged, match="deleted or moved away"):
        check_file(engine)
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    assert (await status(handle)).paid == 100_000  # the workflow has it; only the database write waits

    os.link(keep, path)  # the same file (same inode) is back: the retried write goes through
    await paying
    for _ in range(200):
        if ledger_balances(engine, oid).get("escrow") == 100_000:
            break
        await asyncio.sleep(0.05)
    assert_ledger(engine, oid, closed=False)
    assert ledger_balances(engine, oid)["escrow"] == 100_000


async def test_a_read_model_replaced_by_another_file_is_refused(client, task_queue, engine):
    path = Path(sqlite_file(str(engine.url)))
    handle = await create_order(client, task_queue, price=100_000)
    oid = handle.id.removeprefix("order-")
    await accept(handle)
    keep = path.with_name("kept.db")
    os.link(path, keep)
    copy = path.with_name("copy.db")
    shutil.copyfile(path, copy)
    os.replace(copy, path)  # same name, same content, another file
    written = path.read_bytes()

    paying = asyncio.create_task(pay(handle, 100_000, "PAY-1"))
    message = await _failing_attempt(handle, "was replaced by another file")
    assert str(path) in message
    with pytest.raises(DatabaseFileChanged, match="replaced by another file"):
        with session_scope(engine):
            pass
    assert path.read_bytes() == written  # nothing was written to the impostor

    os.replace(keep, path)
    await paying
    for _ in range(200):
        if ledger_balances(engine, oid).get("escrow") == 100_000:
            break
        await asyncio.sleep(0.05)
    assert_ledger(engine, oid, closed=False)
