"""`order status` and `order list` latency over the orders capacity_bench parked.

Restarts the embedded server on capacity_bench's home (its SQLite file keeps the
orders) with a fresh in-process worker on the same task queue, then measures,
one request at a time:

* status via the client: `OrderWorkflow.status` query (what `bespoke order
  status` sends). Cold = first query of an order after the worker started: the
  worker replays its history to rebuild it. Warm = the same orders again, now in
  the worker's sticky cache (at most 1,000 workflows, so the warm sample is kept
  under that).
* status via the CLI: `bespoke order status ID --json` as a subprocess (Python
  start-up, connect, query, print), on a smaller sample.
* list: the CLI's `list_orders` function in this process (read-model query,
  default limit 100, JSON output to /dev/null), without and with `--stage
  delivered`; and the `bespoke order list` subprocess for a few runs.

Run: /tmp/venv/bin/python bench/status_bench.py --home DIR [--sample 1000] [--cli-sample 30] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from sqlmodel import Session, func, select  # noqa: E402

from _common import (  # noqa: E402
    client_for,
    code_version,
    command_line,
    machine,
    percentile,
    server_for,
    write_section,
)
from capacity_bench import MANIFEST  # noqa: E402
from bespoke.service import order_handle  # noqa: E402
from bespoke.store.db import get_engine  # noqa: E402
from bespoke.store.tables import OrderRow  # noqa: E402
from bespoke.worker import ACTIVITY_THREADS, build_worker  # noqa: E402
from bespoke.workflows.order import OrderWorkflow  # noqa: E402

BESPOKE = Path(sys.executable).with_name("bespoke")


def _fmt(name: str, xs: list[float]) -> str:
    return (f"{name}: n={len(xs)}, p50 {percentile(xs, 50) * 1000:.1f} ms, p99 {percentile(xs, 99) * 1000:.1f} ms, "
            f"max {max(xs) * 1000:.1f} ms")


def _time_list(stage: str | None, runs: int, expect: int) -> list[float]:
    from bespoke.cli.order import list_orders

    out: list[float] = []
    for _ in range(runs):
        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()) as buf:
            list_orders(stage=stage, buyer=None, seller=None, limit=100, as_json=True)
        out.append(time.perf_counter() - t)
    rows = json.loads(buf.getvalue())["orders"]
    assert len(rows) == min(100, expect) and (stage is None or all(r["stage"] == stage for r in rows)), len(rows)
    return out


async def run(home: Path, sample: int, cli_sample: int, list_runs: int, cli_from_tree: bool) -> str:
    manifest = json.loads((home / MANIFEST).read_text())
    tq = manifest["task_queue"]
    engine = get_engine(f"sqlite:///{home}/bespoke.db")
    with Session(engine) as session:
        total = session.exec(select(func.count()).select_from(OrderRow)).one()
        ids = list(session.exec(select(OrderRow.order_id).where(OrderRow.stage == "delivered")).all())
    rng = random.Random(5)
    chosen = rng.sample(ids, min(sample, len(ids), 1000))
    lines = [
        f"machine: {machine()}",
        f"code: {code_version()}",
        f"orders in the read model: {total} ({len(ids)} parked in `delivered`), from capacity_bench "
        f"({manifest['orders']} driven); server restarted on the same SQLite file, fresh worker in this process",
    ]
    async with server_for(home) as server:
        client = await client_for(server)
        with ThreadPoolExecutor(max_workers=ACTIVITY_THREADS) as pool:
            async with build_worker(client, task_queue=tq, engine=engine, executor=pool):
                # The first query after a server restart also waits out the dead worker's
                # sticky queue; measure it on its own.
                t = time.perf_counter()
                view = await order_handle(client, "warmup").query(OrderWorkflow.status)
                first = time.perf_counter() - t
                assert view.stage.value == "delivered", view.stage

                async def timed(oid: str) -> float:
                    t = time.perf_counter()
                    v = await order_handle(client, oid).query(OrderWorkflow.status)
                    dt = time.perf_counter() - t
                    assert v.stage.value == "delivered" and v.order_id == oid, (oid, v.order_id, v.stage)
                    return dt

                cold = [await timed(oid) for oid in chosen]
                warm = [await timed(oid) for oid in chosen]

                # The real CLI, as a user runs it, against this server and home.
                env = {**os.environ, "BESPOKE_HOME": str(home), "TEMPORAL_ADDRESS": server.address,
                       "BESPOKE_TASK_QUEUE": tq}
                if cli_from_tree:
                    # The installed (editable) bespoke of this checkout, not an exported commit.
                    env.pop("PYTHONPATH", None)
                failures: list[str] = []
                cli: list[float] = []
                for oid in chosen[:cli_sample]:
                    t = time.perf_counter()
                    proc = await asyncio.to_thread(
                        subprocess.run, [str(BESPOKE), "order", "status", oid, "--json"],
                        env=env, capture_output=True, text=True, timeout=60,
                    )
                    cli.append(time.perf_counter() - t)
                    assert json.loads(proc.stdout)["order_id"] == oid, (proc.stdout, proc.stderr)
                    if proc.returncode != 0:  # printed the answer, then failed on the way out
                        failures.append(f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[0][:100]}")
                cli_list: list[float] = []
                for args in (["order", "list", "--json"], ["order", "list", "--stage", "delivered", "--json"]) * 3:
                    t = time.perf_counter()
                    proc = await asyncio.to_thread(subprocess.run, [str(BESPOKE), *args], env=env,
                                                   capture_output=True, text=True, timeout=60)
                    cli_list.append(time.perf_counter() - t)
                    json.loads(proc.stdout)
                    if proc.returncode != 0:
                        failures.append(f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[0][:100]}")
                t = time.perf_counter()
                proc = await asyncio.to_thread(subprocess.run, [str(BESPOKE), "--help"], env=env,
                                               capture_output=True, text=True, timeout=60)
                cli_floor = time.perf_counter() - t

    # The read model needs no server: the CLI's list_orders reads SQLite directly.
    os.environ["BESPOKE_HOME"] = str(home)
    from bespoke.settings import get_settings

    get_settings.cache_clear()
    list_all = _time_list(None, list_runs, total)
    list_stage = _time_list("delivered", list_runs, len(ids))

    lines += [
        "",
        f"first query after the restart (sticky queue of the dead worker): {first * 1000:.0f} ms",
        _fmt("order status, client query, cold (worker replays the history)", cold),
        _fmt("order status, client query, warm (workflow in the worker's cache)", warm),
        _fmt("`bespoke order status ID --json` subprocess (incl. interpreter start-up)", cli),
        f"  (`bespoke --help` subprocess, the start-up floor: {cli_floor * 1000:.0f} ms)",
        _fmt(f"order list, list_orders in process, no filter, limit 100, over {total} orders", list_all),
        _fmt("order list, list_orders in process, --stage delivered, limit 100", list_stage),
        _fmt("`bespoke order list [--stage delivered] --json` subprocess", cli_list),
        f"CLI subprocesses run from: {'this checkout (installed bespoke)' if cli_from_tree else 'the same code'}; "
        f"{len(failures)} of {len(cli) + len(cli_list)} printed the right answer but exited non-zero"
        + (f" ({failures[0]})" if failures else ""),
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, required=True, help="the home capacity_bench printed")
    ap.add_argument("--sample", type=int, default=1000, help="orders queried via the client (max 1,000)")
    ap.add_argument("--cli-sample", type=int, default=30, help="orders queried via the CLI subprocess")
    ap.add_argument("--list-runs", type=int, default=50, help="list_orders calls per variant")
    ap.add_argument("--cli-from-tree", action="store_true",
                    help="run the CLI subprocesses without PYTHONPATH (the checkout's installed bespoke)")
    ap.add_argument("--write", action="store_true", help="write the figures into bench/RESULTS.md")
    args = ap.parse_args()
    text = asyncio.run(run(args.home.resolve(), args.sample, args.cli_sample, args.list_runs, args.cli_from_tree))
    print(text)
    if args.write:
        write_section("order status and list latency", command_line(), f"```\n{text}\n```")


if __name__ == "__main__":
    main()
