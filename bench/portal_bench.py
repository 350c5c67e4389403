"""Portal pages under load: the buyer's order page and the ops queue over 10,000
orders in the read model, 20 concurrent clients, p50/p99 render time and the
database queries each page makes (counted on the engine).

One real order (driven to delivered on an embedded server with an in-process
worker) is the buyer's page; 10,000 read-model rows (1 % disputed, with case and
evidence timeline entries) are what the ops queue reads. The app is the API's
(`bespoke.api.app.create_app`, portal mounted) served by uvicorn in this process;
the clients share its event loop and core, so the times include them.

With `--load wrk` the pages are also served the way production runs them: a
separate `bespoke api` process (uvicorn, portal mounted) on the same read model
and Temporal, loaded by Debian's wrk (C) with the same number of connections for
--seconds per page, so neither the clients nor the worker share the server's
event loop. The query counts always come from the in-process app.

    python bench/portal_bench.py [--orders 10000] [--requests 400] [--load inprocess|wrk]
                                 [--seconds 20] [--write bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlmodel import Session  # noqa: E402

from bench._common import (  # noqa: E402
    TO_DELIVERED, client_for, code_version, command_line, create, drive, free_port, load_wrk, machine,
    percentile,
    scratch_home, server_for, stop_process, write_section,
)
from bespoke.api.app import create_app  # noqa: E402
from bespoke.portal import auth  # noqa: E402
from bespoke.portal.web import SESSION_COOKIE  # noqa: E402
from bespoke.store.db import get_engine  # noqa: E402
from bespoke.store.tables import OrderRow, TimelineRow  # noqa: E402
from bespoke.worker import build_worker  # noqa: E402

STAGES = ("in_production", "delivered", "completed", "awaiting_deposit", "shipped", "cancelled")


def fill(engine, n: int) -> int:
    now = datetime.now(UTC)
    disputed = 0
    with Session(engine) as s:
        for i in range(n):
            stage = "disputed" if i % 100 == 0 else STAGES[i % len(STAGES)]
            disputed += stage == "disputed"
            oid = f"BULK-{i:06d}"
            s.add(OrderRow(order_id=oid, stage=stage, title="display case", buyer=f"buyer{i % 500}",
                           seller=f"seller{i % 50}", payment_plan="full_prepayment", price=100_000 + i,
                           currency="CNY", policy_name="default", policy_version="1.2.0", paid=100_000,
                           created_at=now - timedelta(minutes=i), updated_at=now - timedelta(minutes=i)))
            if stage == "disputed":
                for seq, (kind, actor, msg) in enumerate([
                        ("case_opened", f"buyer:buyer{i % 500}", "case 1: defect → wants refund"),
                        ("return_response", f"seller:seller{i % 50}", "seller rejected the case"),
                        ("dispute_opened", f"buyer:buyer{i % 500}", "dispute opened by the buyer"),
                        ("evidence", f"seller:seller{i % 50}", "evidence: qc-photos.zip (final)")], start=1):
                    s.add(TimelineRow(order_id=oid, seq=seq, at=now, kind=kind, actor=actor, message=msg))
        s.commit()
    return disputed


async def load(url: str, path: str, token: str, clients: int, requests: int) -> list[float]:
    times: list[float] = []
    per = requests // clients

    async def one() -> None:
        async with httpx.AsyncClient(base_url=url, cookies={SESSION_COOKIE: token}) as http:
            for _ in range(per):
                t = time.perf_counter()
                r = await http.get(path)
                times.append(time.perf_counter() - t)
                assert r.status_code == 200, (path, r.status_code)

    await asyncio.gather(*(one() for _ in range(clients)))
    return times


@dataclass
class Scene:
    """What both the bench and bench/portal_profile.py measure against."""

    client: Any
    settings: Any
    engine: Any
    order_id: str  # a real order, delivered: the buyer's page
    disputed: int
    tokens: dict[str, str]  # session cookies of buyer:alice and ops:olga
    home: Path


@asynccontextmanager
async def scene(orders: int, home_prefix: str = "portal") -> AsyncIterator[Scene]:
    """An embedded server and an in-process worker, one real delivered order, and
    `orders` read-model rows (1 % disputed, with their case entries)."""
    home = scratch_home(home_prefix)
    server = server_for(home)
    async with server:
        client = await client_for(server)
        settings = server.settings
        engine = get_engine(settings.effective_database_url)
        with ThreadPoolExecutor(max_workers=16) as ex:
            async with build_worker(client, task_queue=settings.task_queue, engine=engine, executor=ex):
                handle = await create(client, settings.task_queue, store=engine)
                await drive(handle, TO_DELIVERED)
                disputed = fill(engine, orders)
                tokens = {}
                for who in ("buyer:alice", "ops:olga"):
                    p = auth.parse_principal(who)
                    auth.ensure_principal(engine, p, created_by="bench")
                    auth.set_password(engine, p, "bench password 1", set_by="bench")
                    tokens[who] = auth.sign_in(engine, who, "bench password 1", client="bench")[1]
                yield Scene(client, settings, engine, handle.id.removeprefix("order-"), disputed, tokens, home)


async def start_api(sc: Scene) -> tuple[subprocess.Popen[bytes], str]:
    """A separate `bespoke api` process on the scene's home and Temporal, ready."""
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("BESPOKE_", "TEMPORAL_"))},
           "BESPOKE_HOME": str(sc.home), "TEMPORAL_ADDRESS": sc.settings.temporal_address,
           "BESPOKE_API_BIND": f"127.0.0.1:{port}"}
    api = subprocess.Popen([sys.executable, "-m", "bespoke.cli.app", "api"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, timeout=2) as http:
        for _ in range(300):
            try:
                await http.get("/policy")
                return api, url
            except httpx.HTTPError:
                await asyncio.sleep(0.2)
    api.terminate()
    raise RuntimeError("bespoke api did not start")


async def main(orders: int, requests: int, clients: int, mode: str = "inprocess", seconds: float = 20) -> str:
    async with scene(orders) as sc:
        client, settings, engine, oid, disputed, tokens = (sc.client, sc.settings, sc.engine, sc.order_id,
                                                           sc.disputed, sc.tokens)
        port = free_port()
        config = uvicorn.Config(create_app(settings, client=client), host="127.0.0.1", port=port,
                                log_level="warning", lifespan="off", access_log=False)
        web = uvicorn.Server(config)
        task = asyncio.get_running_loop().create_task(web.serve())
        while not web.started:
            await asyncio.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        queries = [0]
        event.listen(engine, "before_cursor_execute", lambda *a: queries.__setitem__(0, queries[0] + 1))
        lines = [machine(), f"code: {code_version()}",
                 f"read model: {orders:,} orders ({disputed} disputed), SQLite; {clients} concurrent clients, "
                 f"{requests} requests per page"]
        for label, path, who in (("buyer order page", f"/orders/{oid}", "buyer:alice"),
                                 ("ops queue", "/ops", "ops:olga")):
            await load(url, path, tokens[who], 1, 5)  # warm
            before = queries[0]
            await load(url, path, tokens[who], 1, 1)
            per_page = queries[0] - before
            alone = await load(url, path, tokens[who], 1, 40)
            lines.append(f"{label:<17}: one client alone: p50 {percentile(alone, 50) * 1000:6.1f} ms, "
                         f"p99 {percentile(alone, 99) * 1000:6.1f} ms")
            times = await load(url, path, tokens[who], clients, requests)
            lines.append(f"{label:<17}: p50 {percentile(times, 50) * 1000:7.1f} ms, p99 "
                         f"{percentile(times, 99) * 1000:7.1f} ms, {len(times) / sum(times) * clients:6.1f} "
                         f"pages/s, {per_page} database queries per page")
        web.should_exit = True
        await task
        if mode == "wrk":
            api, api_url = await start_api(sc)
            try:
                for label, path, who in (("buyer order page", f"/orders/{oid}", "buyer:alice"),
                                         ("ops queue", "/ops", "ops:olga")):
                    cookie = {"Cookie": f"{SESSION_COOKIE}={tokens[who]}"}
                    await asyncio.to_thread(load_wrk, api_url, [path], 2, cookie, clients)  # warm
                    r = await asyncio.to_thread(load_wrk, api_url, [path], seconds, cookie, clients)
                    if r["errors"]:
                        raise RuntimeError(f"{label}: {r['errors']} of {r['n']} requests failed under wrk")
                    lines.append(f"{label:<17}: `bespoke api` + wrk, {clients} connections, {int(seconds)} s: "
                                 f"p50 {r['p50']:6.1f} ms, p99 {r['p99']:6.1f} ms, {r['rps']:6.1f} pages/s "
                                 f"(n={r['n']})")
            finally:
                stop_process(api)
    return "```\n" + "\n".join(lines) + "\n```\n"


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--load", choices=("inprocess", "wrk"), default="inprocess",
                    help="inprocess: httpx clients in this process only; wrk: also a separate `bespoke api` "
                         "process loaded by Debian's wrk")
    ap.add_argument("--seconds", type=float, default=20, help="length of each wrk run")
    ap.add_argument("--write", type=Path)
    args = ap.parse_args()
    body = asyncio.run(main(args.orders, args.requests, args.clients, args.load, args.seconds))
    print(body)
    if args.write:
        write_section("portal", command_line(), body, args.write)
