"""Portal fixtures: the app served by a real uvicorn on a free loopback port, in
the test session's event loop (so pages share the test's Temporal client), and
Debian's chromium driven by Playwright (the system executable; no browser is ever
downloaded).

Screenshots the browser tests take go to `build/screenshots/` (or
`BESPOKE_SCREENSHOTS`); the README shows copies kept in `docs/portal/`."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
SCREENSHOTS = Path(os.environ.get("BESPOKE_SCREENSHOTS") or Path(__file__).resolve().parents[2] / "build" / "screenshots")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn serving `app` on 127.0.0.1:<free port> until stopped."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off",
                                access_log=False)
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> LiveServer:
        self.task = asyncio.get_running_loop().create_task(self.server.serve())
        for _ in range(500):
            if self.server.started:
                return self
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.01)
        raise RuntimeError("uvicorn did not start")

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[FastAPI], Any]]:
    """`await serve(app)` -> a started LiveServer, stopped after the test."""
    started: list[LiveServer] = []

    async def start(app: FastAPI) -> LiveServer:
        server = await LiveServer(app).start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
def portal_settings(tmp_path, database_url):
    from bespoke.settings import Settings

    return Settings(_environ={}, home=tmp_path / "home", database_url=database_url)


@pytest.fixture
async def public_portal(serve, portal_settings) -> LiveServer:
    """The portal alone, on its own database (no Temporal: public pages and sign-in)."""
    from bespoke.portal import create_app

    return await serve(create_app(portal_settings))


@pytest.fixture
async def http(public_portal) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=public_portal.url, follow_redirects=False) as client:
        yield client


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        await browser.close()


@pytest.fixture
async def page(browser) -> AsyncIterator[Any]:
    """A fresh browser context (no cookies) and page; JavaScript errors fail the test."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    context.set_default_timeout(30_000)  # a loaded 2-core machine
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield page
    await context.close()
    assert not errors, f"browser errors: {errors}"


async def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
