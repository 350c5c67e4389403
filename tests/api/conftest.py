"""API fixtures: the app on the test's database and the session's time-skipping
Temporal server (the `worker` fixture runs the real worker), reached through
httpx's ASGI transport; principals made with the same function `bespoke
principal add` uses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bespoke.api import principals
from bespoke.api.app import create_app
from bespoke.settings import Settings

PEOPLE = ("buyer:alice", "buyer:bob", "seller:acme", "seller:other", "ops:olga", "carrier:sf-express",
          "carrier:yto")


@pytest.fixture
def api_settings(tmp_path, database_url, task_queue) -> Settings:
    return Settings(_environ={}, home=tmp_path / "home", database_url=database_url, task_queue=task_queue)


@pytest.fixture
def tokens(engine) -> dict[str, str]:
    """A token per principal in PEOPLE, plus an integration for sf-express and a
    bank integration (their callback secrets under `secret:<principal>`)."""
    out = {who: principals.add(engine, who, scopes=[], created_by="ops:test").token for who in PEOPLE}
    for who, scope in (("integration:sf-feed", "carrier:sf-express"), ("integration:bank-feed", "bank")):
        issued = principals.add(engine, who, scopes=[scope], created_by="ops:test")
        out[who], out[f"secret:{who}"] = issued.token, issued.webhook_secret or ""
    return out


@pytest.fixture
def app(api_settings, client, engine) -> Any:
    return create_app(api_settings, client=client)


@pytest.fixture
async def api(app) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as http:
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
