"""Webhook delivery fixtures: a real Temporal dev server (delivery runs on the wall
clock, so not the time-skipping one), shared by the module; each test has its own
task queue and SQLite database."""

from __future__ import annotations

import uuid

import pytest

from bespoke.runtime.embedded import EmbeddedServer
from bespoke.settings import Settings
from tests.processes import free_port


@pytest.fixture(scope="module")
async def dev_server(tmp_path_factory):
    settings = Settings(_environ={}, home=tmp_path_factory.mktemp("temporal"),
                        temporal_address=f"127.0.0.1:{free_port()}", ui_port=free_port())
    async with EmbeddedServer(settings, headless=True) as server:
        yield server


@pytest.fixture
def fast_webhooks(dev_server, tmp_path) -> Settings:
    """Settings for a worker on the dev server with quick retries and a short
    heartbeat timeout (so a killed worker's deliveries resume within seconds)."""
    return dev_server.settings.model_copy(update={
        "database_url": f"sqlite:///{tmp_path}/bespoke.db", "home": tmp_path / "home",
        "task_queue": f"wh-{uuid.uuid4().hex[:12]}", "webhook_allow_http_loopback": True, "webhook_poll": 0.05,
        "webhook_retry_base": 0.05, "webhook_retry_max": 0.5, "webhook_heartbeat": 2.0,
    })
