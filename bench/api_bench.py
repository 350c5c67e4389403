"""HTTP API benchmark (issue 11.7): reads under 50 concurrent clients, and the
pay → confirm path through the API against the direct Temporal client.

One embedded dev server and an in-process worker (as `bespoke up`), and a
separate `bespoke api` process (uvicorn) on a free port, both on one scratch
SQLite read model. The read model gets --rows order rows (default 10,000) written
straight into its `orders` table for the list query; `GET /api/orders/{id}`
reads --live real order workflows (the live state: the API's view cache is
checked against each order's read-model revision on every request and against
its Temporal history at least once a second, and the orders do not change during
the read mix, so after the warm-up nearly every read is an indexed row read plus
the cached view).
Each read mix runs --requests requests (or --seconds, whichever first) from 50
concurrent httpx clients, or with `--load wrk` from Debian's wrk (50 connections)
for --seconds, each after a warm-up of --warmup seconds of the same load
(reported on its own line). The action path is the happy path from pay to confirm
(pay, three milestones, finish, quality check, ship, deliver, confirm) on
--orders accepted orders each way, alternated, with 10 orders in flight.

Run: .venv/bin/python bench/api_bench.py [--rows 10000] [--live 100] [--requests 3000] [--orders 20]
     [--load httpx|wrk] [--warmup 5] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402
    CARRIER,
    HAPPY_PATH,
    PRICE,
    Timer,
    client_for,
    command_line,
    code_version,
    create,
    drive,
    free_port,
    gather_limited,
    load_wrk,
    machine,
    percentile,
    scratch_home,
    stop_process,
    server_for,
    write_section,
)

CONCURRENCY = 50


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def fill_read_model(engine, rows: int) -> None:
    from sqlmodel import Session

    from bespoke.store.tables import OrderRow

    stages = ["in_production", "shipped", "delivered", "completed", "awaiting_deposit"]
    now = datetime.now(UTC)
    with Session(engine) as s:
        for i in range(rows):
            s.add(OrderRow(order_id=f"R{i:06d}", stage=stages[i % len(stages)], title="bench", buyer=f"b{i % 500}",
                           seller="acme", payment_plan="full_prepayment", price=PRICE, currency="CNY",
                           policy_name="default", policy_version="1", paid=0, refunded=0, released_to_seller=0,
                           created_at=now - timedelta(seconds=i), updated_at=now))
        s.commit()


async def load(url: str, token: str, paths: list[str], requests: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, limits=limits,
                                 timeout=30) as http:
        async def worker() -> None:
            nonlocal errors
            for i in counter:
                if time.perf_counter() > deadline:
                    return
                began = time.perf_counter()
                r = await http.get(paths[i % len(paths)])
                latencies.append(time.perf_counter() - began)
                errors += r.status_code != 200

        with Timer() as t:
            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return {"n": len(latencies), "errors": errors, "rps": len(latencies) / t.seconds,
            "p50": percentile(latencies, 50) * 1000, "p99": percentile(latencies, 99) * 1000}


async def api_path(http: httpx.AsyncClient, tokens: dict[str, str], oid: str) -> None:
    steps = [("buyer", "pay", {"amount": PRICE, "currency": "CNY", "reference": f"P{uuid.uuid4().hex[:8]}"}),
             ("seller", "milestone", {"milestone": "materials", "cost": 20_000}),
             ("seller", "milestone", {"milestone": "fabrication", "cost": 15_000}),
             ("seller", "milestone", {"milestone": "finishing", "cost": 5_000}),
             ("seller", "finish_production", None), ("seller", "quality_check", {"passed": True}),
             ("seller", "ship", {"carrier": "sf-express", "tracking": "SF123456789"}),
             ("carrier", "deliver", None), ("buyer", "confirm", None)]
    for who, action, body in steps:
        r = await http.post(f"/api/orders/{oid}/{action}", json=body,
                            headers={"Authorization": f"Bearer {tokens[who]}"})
        if r.status_code != 200:
            raise RuntimeError(f"{action}: {r.status_code} {r.text}")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--live", type=int, default=100)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--orders", type=int, default=20)
    ap.add_argument("--load", choices=("httpx", "wrk"), default="httpx",
                    help="the read mixes' load generator: an async httpx loop in this process (bounded by "
                         "--requests and --seconds), or Debian's wrk for --seconds")
    ap.add_argument("--warmup", type=float, default=5,
                    help="seconds of each read mix run before the measured one (0: none); reported separately")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()

    from concurrent.futures import ThreadPoolExecutor

    from bespoke.api import principals
    from bespoke.store.db import get_engine
    from bespoke.worker import build_worker

    home = scratch_home("api")
    server = server_for(home)
    async with server:
        client = await client_for(server)
        engine = get_engine(server.settings.effective_database_url)
        fill_read_model(engine, args.rows)
        tokens = {role: principals.add(engine, who, scopes=[], created_by="bench").token
                  for role, who in (("buyer", "buyer:alice"), ("seller", "seller:acme"), ("ops", "ops:olga"),
                                    ("carrier", str(CARRIER)))}
        tq = server.settings.task_queue
        with ThreadPoolExecutor(16) as pool:
            async with build_worker(client, task_queue=tq, engine=engine, executor=pool):
                port = free_port()
                env = {**{k: v for k, v in os.environ.items() if not k.startswith(("BESPOKE_", "TEMPORAL_"))},
                       "BESPOKE_HOME": str(home), "TEMPORAL_ADDRESS": server.settings.temporal_address,
                       "BESPOKE_API_BIND": f"127.0.0.1:{port}"}
                # Its log goes to a file: a pipe nobody reads fills up and stops the process.
                api_log = (home / "api.log").open("wb")
                api = subprocess.Popen([sys.executable, "-m", "bespoke.cli.app", "api"], env=env,
                                       stdout=subprocess.DEVNULL, stderr=api_log)
                url = f"http://127.0.0.1:{port}"
                try:
                    for _ in range(300):
                        try:
                            httpx.get(f"{url}/api/policies", timeout=2)
                            break
                        except httpx.HTTPError:
                            await asyncio.sleep(0.2)
                    live = [(await create(client, tq, store=engine)).id.removeprefix("order-") for _ in range(args.live)]
                    await gather_limited(len(live), 20, lambda i: drive(client.get_workflow_handle(f"order-{live[i]}"),
                                                                      HAPPY_PATH[:1]))
                    id_paths = [f"/api/orders/{o}" for o in live]
                    stage_paths = [f"/api/orders?stage={s}&limit=50" for s in
                                   ("in_production", "shipped", "delivered", "completed")]
                    async def read_mix(paths: list[str], seconds: float, requests: int) -> dict[str, float]:
                        if args.load == "wrk":
                            return await asyncio.to_thread(load_wrk, url, paths, seconds, bearer(tokens["ops"]))
                        return await load(url, tokens["ops"], paths, requests, seconds)

                    # Each mix is measured after a warm-up of the same load (reported, not
                    # mixed in): the API process's first requests per order fill its view
                    # cache (a describe and a query each) while the worker is still busy
                    # with the orders just driven, which put p99 at ~370 ms for the first
                    # 5 s of a run and ~20-30 ms after.
                    warm = {}
                    if args.warmup > 0:
                        warm["id"] = await read_mix(id_paths, args.warmup, args.requests)
                    by_id = await read_mix(id_paths, args.seconds, args.requests)
                    if args.warmup > 0:
                        warm["stage"] = await read_mix(stage_paths, args.warmup, args.requests)
                    by_stage = await read_mix(stage_paths, args.seconds, args.requests)
                    # pay -> confirm: accepted orders, driven through the API and directly, alternated.
                    rates = {"api": [], "direct": []}
                    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
                        for round_ in range(2):
                            for way in ("direct", "api") if round_ % 2 == 0 else ("api", "direct"):
                                handles = [await create(client, tq, store=engine) for _ in range(args.orders // 2)]
                                await gather_limited(len(handles), 10, lambda i: drive(handles[i], HAPPY_PATH[:1]))
                                with Timer() as t:
                                    if way == "direct":
                                        await gather_limited(len(handles), 10,
                                                             lambda i: drive(handles[i], HAPPY_PATH[1:]))
                                    else:
                                        await gather_limited(len(handles), 10, lambda i: api_path(
                                            http, tokens, handles[i].id.removeprefix("order-")))
                                rates[way].append(len(handles) / t.seconds)
                except BaseException:
                    print(f"the API process's log, {home / 'api.log'}, ends:", file=sys.stderr)
                    print((home / "api.log").read_text(errors="replace")[-3000:], file=sys.stderr)
                    raise
                finally:
                    stop_process(api)
                    api_log.close()
    api_rate, direct_rate = sum(rates["api"]) / 2, sum(rates["direct"]) / 2
    body = "\n".join([
        f"machine: {machine()}",
        f"code: {code_version()}",
        f"read model: {args.rows:,} order rows (written directly into `orders`); {args.live} live order workflows; "
        f"read load from {'wrk (C), ' + str(int(args.seconds)) + ' s each' if args.load == 'wrk' else 'httpx'}",
        f"GET /api/orders/{{id}}      x{by_id['n']:>5}, 50 clients: p50 {by_id['p50']:6.1f} ms, p99 "
        f"{by_id['p99']:6.1f} ms, {by_id['rps']:7.1f} req/s, errors {by_id['errors']}",
        f"GET /api/orders?stage=..  x{by_stage['n']:>5}, 50 clients: p50 {by_stage['p50']:6.1f} ms, p99 "
        f"{by_stage['p99']:6.1f} ms, {by_stage['rps']:7.1f} req/s, errors {by_stage['errors']}",
        *(f"  warm-up before the {what} mix, {args.warmup:g} s, not in the figures above: x{w['n']}, p50 "
          f"{w['p50']:.1f} ms, p99 {w['p99']:.1f} ms, {w['rps']:.1f} req/s, errors {w['errors']}"
          for what, w in (("by-id", warm.get("id")), ("stage", warm.get("stage"))) if w is not None),
        f"pay -> confirm (9 actions), {args.orders} orders each way, 10 in flight: API {api_rate:.2f} orders/s, "
        f"direct client {direct_rate:.2f} orders/s, ratio API/direct {api_rate / direct_rate:.2f} (goal >= 0.8)",
    ])
    print(body)
    if args.write:
        write_section("api", command_line(), body)


if __name__ == "__main__":
    asyncio.run(main())
