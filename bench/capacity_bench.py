"""In-flight capacity: N orders parked in the inspection window (stage `delivered`).

Each order is created and driven through the full happy path up to delivery
(accept, pay, three milestones, finish, qc pass, ship, deliver: the same client
updates as tests/helpers.py; no shortcut), `--concurrency` at a time, on the
embedded server persisted to its SQLite file, with an in-process worker built by
`bespoke.worker.build_worker` (default options: the sticky cache holds at most
1,000 workflows). Printed: time to create, time to drive to `delivered`, worker
RSS (this process: client + worker) and server RSS before, during and after, and
the sizes of the two databases.

`--budget SECONDS` stops launching new orders once that much time has passed, so
the largest N that fits a session is measured and reported as such (with a
linear extrapolation to `--orders`, stated as one).

The home directory (Temporal's SQLite file, the read model, bench-capacity.json)
is left in place for bench/status_bench.py --home.

Run: /tmp/venv/bin/python bench/capacity_bench.py [--orders 10000] [--concurrency 200] [--budget 3000]
     [--home DIR] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from sqlmodel import Session, func, select  # noqa: E402

from _common import (  # noqa: E402
    RETRIES,
    TO_DELIVERED,
    client_for,
    code_version,
    command_line,
    create,
    drive,
    machine,
    rss_mb,
    scratch_home,
    server_for,
    tree_rss_mb,
    write_section,
)
from bespoke.store.db import get_engine  # noqa: E402
from bespoke.store.tables import OrderRow  # noqa: E402
from bespoke.worker import ACTIVITY_THREADS, build_worker  # noqa: E402

MANIFEST = "bench-capacity.json"


def _size_mb(path: Path) -> float:
    total = 0
    for p in path.parent.glob(path.name + "*"):  # the file and its -wal/-shm
        total += p.stat().st_size
    return total / 1024 / 1024


async def run(n: int, concurrency: int, budget: float | None, home: Path) -> str:
    tq = f"capacity-{uuid.uuid4().hex[:8]}"
    db_url = f"sqlite:///{home}/bespoke.db"
    engine = get_engine(db_url)
    lines: list[str] = []
    async with server_for(home) as server:
        client = await client_for(server)
        with ThreadPoolExecutor(max_workers=ACTIVITY_THREADS, thread_name_prefix="cap-activity") as pool:
            worker = build_worker(client, task_queue=tq, engine=engine, executor=pool)
            async with worker:
                # Warm up (imports, sandbox, first DB writes) outside the measurement.
                h = await create(client, tq, order_id="warmup", store=engine)
                await drive(h, TO_DELIVERED)
                w0, s0 = rss_mb(), tree_rss_mb(server.pid)
                print(f"before: worker RSS {w0:.0f} MiB, server RSS {s0:.0f} MiB (1 order parked: warm-up)", flush=True)

                create_s: list[float] = []
                done = 0
                launched = 0
                began = time.perf_counter()
                checkpoints: list[tuple[int, float, float, float]] = []
                step = max(1, min(n // 10, 250))
                stop = asyncio.Event()

                async def one(i: int) -> None:
                    nonlocal done
                    t = time.perf_counter()
                    handle = await create(client, tq, order_id=f"C{i:06d}", store=engine)
                    create_s.append(time.perf_counter() - t)
                    await drive(handle, TO_DELIVERED)
                    done += 1
                    if done % step == 0:
                        el = time.perf_counter() - began
                        checkpoints.append((done, el, rss_mb(), tree_rss_mb(server.pid)))
                        print(f"  {done:6d} delivered at {el:7.1f} s: {done / el:5.1f} orders/s, "
                              f"worker RSS {checkpoints[-1][2]:.0f} MiB, server RSS {checkpoints[-1][3]:.0f} MiB",
                              flush=True)

                sem = asyncio.Semaphore(concurrency)
                tasks = []

                async def guarded(i: int) -> None:
                    try:
                        await one(i)
                    finally:
                        sem.release()

                for i in range(n):
                    await sem.acquire()
                    if budget is not None and time.perf_counter() - began > budget:
                        sem.release()
                        stop.set()
                        break
                    tasks.append(asyncio.create_task(guarded(i)))
                    launched += 1
                await asyncio.gather(*tasks)
                elapsed = time.perf_counter() - began
                w1, s1 = rss_mb(), tree_rss_mb(server.pid)

                with Session(engine) as session:
                    parked = session.exec(
                        select(func.count()).select_from(OrderRow).where(OrderRow.stage == "delivered")
                    ).one()
    # Server stopped: its SQLite file is complete.
    temporal_db = _size_mb(home / "temporal.db")
    read_db = _size_mb(home / "bespoke.db")
    (home / MANIFEST).write_text(json.dumps({"task_queue": tq, "orders": launched, "parked": parked}))

    rate = launched / elapsed
    create_sorted = sorted(create_s)
    lines += [
        f"machine: {machine()}",
        f"code: {code_version()}",
        "server: embedded dev server, state in its SQLite file (the default); read model: SQLite file; "
        f"worker in this process ({ACTIVITY_THREADS} activity threads, default sticky cache of 1,000 workflows)",
        f"path: create + accept, pay, 3 milestones, finish, qc pass, ship, deliver (full path, no shortcut); "
        f"{concurrency} orders in flight",
        f"orders requested: {n}; measured N: {launched}"
        + (f" (stopped launching at the {budget:g} s budget)" if stop.is_set() else ""),
        f"parked in `delivered` (read model count, incl. warm-up): {parked}",
        "",
        f"time to create and drive {launched} orders to delivered: {elapsed:.0f} s ({rate:.2f} orders/s)",
        f"create (start_workflow) latency under that load: p50 {create_sorted[len(create_sorted) // 2] * 1000:.0f} ms, "
        f"p99 {create_sorted[int(len(create_sorted) * 0.99)] * 1000:.0f} ms",
        f"worker RSS (this process): before {w0:.0f} MiB, after {w1:.0f} MiB (+{w1 - w0:.0f} MiB, "
        f"{(w1 - w0) * 1024 / max(launched, 1):.1f} KiB per parked order)",
        f"server RSS: before {s0:.0f} MiB, after {s1:.0f} MiB (+{s1 - s0:.0f} MiB, "
        f"{(s1 - s0) * 1024 / max(launched, 1):.1f} KiB per parked order)",
        f"on disk: Temporal SQLite {temporal_db:.0f} MiB ({temporal_db * 1024 / max(launched, 1):.1f} KiB/order), "
        f"read model {read_db:.0f} MiB",
        "checkpoints (delivered, seconds, worker RSS MiB, server RSS MiB): "
        + "; ".join(f"{d} {e:.0f}s {w:.0f} {s:.0f}" for d, e, w, s in checkpoints),
    ]
    if launched < n:
        lines.append(
            f"extrapolation to {n} (linear at the measured rate, NOT measured): "
            f"~{n / rate:.0f} s to create and drive; worker RSS is capped by the sticky cache "
            f"(1,000 workflows) so it should stay near the measured {w1:.0f} MiB once N > 1,000; "
            f"server RSS ~{s0 + (s1 - s0) * n / launched:.0f} MiB if it grows linearly"
        )
    if RETRIES[0]:
        lines.append(f"update RPCs that timed out under load and were re-asked (same update id): {RETRIES[0]}")
    lines.append(f"home left for status_bench: {home}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=200, help="orders driven at once")
    ap.add_argument("--budget", type=float, default=None, help="stop launching new orders after this many seconds")
    ap.add_argument("--home", type=Path, default=None, help="state directory (default: a new temp dir)")
    ap.add_argument("--write", action="store_true", help="write the figures into bench/RESULTS.md")
    args = ap.parse_args()
    home = (args.home or scratch_home("capacity")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    print(f"home: {home}", flush=True)
    text = asyncio.run(run(args.orders, args.concurrency, args.budget, home))
    print(text)
    if args.write:
        write_section("in-flight capacity", command_line(), f"```\n{text}\n```")


if __name__ == "__main__":
    main()
