"""Fixtures for the resilience tests: an embedded Temporal dev server on free
ports persisted to a SQLite file under tmp_path, and `bespoke worker` processes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bespoke.runtime.client import connect
from bespoke.runtime.embedded import EmbeddedServer
from bespoke.settings import Settings
from bespoke.store.db import get_engine

from .harness import WorkerProcess, free_port, worker_env

SLOW_MODULES = {"test_crash.py", "test_workers.py"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Minutes, not seconds: `-m "not resilience"` leaves them out of a quick run.
    for item in items:
        if item.path.name in SLOW_MODULES and item.path.parent == Path(__file__).parent:
            item.add_marker(pytest.mark.resilience)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "resilience: multi-process crash/restart tests (minutes)")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[EmbeddedServer]:
    settings = Settings(home=tmp_path / "home", temporal_address=f"127.0.0.1:{free_port()}", ui_port=free_port())
    async with EmbeddedServer(settings, headless=True) as srv:
        yield srv


@pytest.fixture
async def temporal(server: EmbeddedServer):
    return await connect(server.settings)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/bespoke.db"


@pytest.fixture
def db(database_url: str):
    return get_engine(database_url)


@pytest.fixture
def workers(server: EmbeddedServer, database_url: str, tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    """A factory list: tests append `spawn(name)` results; all are stopped at the end."""
    procs: list[WorkerProcess] = []
    yield procs
    for proc in procs:
        if proc.alive:
            proc.proc.kill()  # type: ignore[union-attr]
            proc.proc.wait(10)  # type: ignore[union-attr]


def spawn(procs: list[WorkerProcess], name: str, server: EmbeddedServer, database_url: str, home: Path,
          **extra: str) -> WorkerProcess:
    worker = WorkerProcess(
        name, worker_env(address=server.address, home=home, database_url=database_url, **extra), home.parent
    )
    worker.start()
    procs.append(worker)
    return worker
