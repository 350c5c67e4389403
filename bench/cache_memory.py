"""Memory a worker spends per order it keeps cached, and what Python's garbage
collector costs at that size.

N orders are driven to `delivered` (the inspection window running, as in
capacity_bench) on the time-skipping test server with an in-process worker, so the
run takes seconds, not an hour; every order stays in the worker's sticky cache.
Printed: RSS before and after (KiB per cached order), objects the collector tracks,
and the pause of each full (generation 2) collection during the run. Long full
collections are what can push a workflow activation past the SDK's 2 s deadlock
detector on a loaded machine (see "in-flight capacity" in RESULTS.md).

To compare two versions of the code, run it twice with `--code DIR` (an export of a
commit, e.g. `git archive REV bespoke | tar -x -C DIR`) first on the import path.

Run: python bench/cache_memory.py [--orders 300] [--code DIR] [--types N] [--tracemalloc N] [--write]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--orders", type=int, default=300)
parser.add_argument("--code", type=Path, default=None, help="import bespoke from this directory instead")
parser.add_argument("--write", action="store_true", help="write the figures into bench/RESULTS.md")
parser.add_argument("--types", type=int, default=0, metavar="N",
                    help="also print the N object types whose tracked count grew most per cached order")
parser.add_argument("--tracemalloc", type=int, default=0, metavar="N",
                    help="also trace Python allocations over the run and print the N source lines (and files) "
                         "whose live allocations grew most per cached order (slows the run)")
parser.add_argument("--strict-sandbox", action="store_true",
                    help="the strict sandbox (bespoke re-imported per run), as before the passthrough")
parser.add_argument("--no-freeze", action="store_true",
                    help="skip gc.freeze() after start-up (what run_worker does), to compare")
ARGS = parser.parse_args()
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
if ARGS.code:
    sys.path.insert(0, str(ARGS.code.resolve()))
sys.path.insert(1 if ARGS.code else 0, str(Path(__file__).parent))

import asyncio  # noqa: E402
import gc  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

import bespoke  # noqa: E402
from _common import command_line, machine, percentile, rss_mb, write_section  # noqa: E402
from bespoke.runtime.client import ensure_search_attributes  # noqa: E402
from bespoke.store.db import get_engine  # noqa: E402
from bespoke.worker import ACTIVITY_THREADS, build_worker, freeze_startup_objects  # noqa: E402
from tests.conftest import test_server_binary  # noqa: E402
from tests.helpers import POLICY_STORE, delivered_order  # noqa: E402

PAUSES: list[float] = []
_started = [0.0]


def _gc_callback(phase: str, info: dict) -> None:
    if info["generation"] != 2:
        return
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        PAUSES.append(time.perf_counter() - _started[0])


def _type_sizes() -> dict[str, tuple[int, int]]:
    """Objects the collector tracks, by type: count and shallow size (sys.getsizeof)."""
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for obj in gc.get_objects():
        name = f"{type(obj).__module__}.{type(obj).__qualname__}"
        counts[name] += 1
        sizes[name] += sys.getsizeof(obj)
    return {k: (counts[k], sizes[k]) for k in counts}


def _print_traced(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, n: int) -> None:
    """Live Python allocations that grew over the run, per cached order: in all, by
    file, and by source line (where the memory was allocated, not who holds it)."""
    keep = [tracemalloc.Filter(False, tracemalloc.__file__)]
    before, after = before.filter_traces(keep), after.filter_traces(keep)
    total = sum(st.size_diff for st in after.compare_to(before, "filename"))
    print(f"traced Python allocations: {total / n / 1024:.1f} KiB per cached order")
    for key in ("filename", "lineno"):
        for st in after.compare_to(before, key)[: ARGS.tracemalloc]:
            frame = st.traceback[0]
            where = frame.filename.split("site-packages/")[-1].split("/work/")[-1]
            where += f":{frame.lineno}" if key == "lineno" else ""
            print(f"{st.size_diff / n / 1024:8.1f} KiB/order {st.count_diff / n:8.1f} blocks/order  {where}")


async def run(n: int) -> str:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=test_server_binary(), data_converter=pydantic_data_converter
    )
    async with env:
        await ensure_search_attributes(env.client)
        with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(ACTIVITY_THREADS) as pool:
            engine = get_engine(f"sqlite:///{tmp}/bench.db")
            POLICY_STORE["engine"] = engine  # where delivered_order pins the policy
            tq = f"cache-memory-{uuid.uuid4().hex[:8]}"
            async with build_worker(env.client, task_queue=tq, engine=engine, executor=pool,
                                    strict_sandbox=ARGS.strict_sandbox):
                await delivered_order(env.client, tq)  # warm-up: imports, sandbox, first writes
                if not ARGS.no_freeze:
                    freeze_startup_objects()
                gc.collect()
                before, tracked_before = rss_mb(), len(gc.get_objects())
                frozen = gc.get_freeze_count()
                types_before = _type_sizes() if ARGS.types else {}
                if ARGS.tracemalloc:
                    tracemalloc.start(1)
                    snap_before = tracemalloc.take_snapshot()
                gc.callbacks.append(_gc_callback)
                sem = asyncio.Semaphore(50)

                async def one() -> None:
                    async with sem:
                        await delivered_order(env.client, tq)

                began = time.perf_counter()
                await asyncio.gather(*(one() for _ in range(n)))
                elapsed = time.perf_counter() - began
                gc.callbacks.remove(_gc_callback)
                after, tracked_after = rss_mb(), len(gc.get_objects())
                if ARGS.tracemalloc:
                    gc.collect()
                    snap_after = tracemalloc.take_snapshot()
                    tracemalloc.stop()
                    _print_traced(snap_before, snap_after, n)
                if ARGS.types:
                    gc.collect()
                    grown = _type_sizes()
                    rows = sorted(grown, key=lambda k: grown[k][1] - types_before.get(k, (0, 0))[1], reverse=True)
                    for name in rows[: ARGS.types]:
                        count, size = grown[name]
                        c0, s0 = types_before.get(name, (0, 0))
                        print(f"{(size - s0) / n / 1024:8.1f} KiB/order {(count - c0) / n:8.1f} objects/order  {name}")
                t = time.perf_counter()
                gc.collect()
                full_now = time.perf_counter() - t
    per_order = (after - before) / n * 1024
    lines = [
        machine(),
        f"code: {Path(bespoke.__file__).parent.parent}",
        f"orders driven to delivered and kept in the worker's cache: {n} (in {elapsed:.1f} s, time-skipping server)",
        f"worker RSS: {before:.0f} MiB -> {after:.0f} MiB = {per_order:.0f} KiB per cached order",
        f"sandbox: {'strict (bespoke re-imported per run)' if ARGS.strict_sandbox else 'bespoke passed through'}",
        f"gc.freeze() after start-up: {'no' if ARGS.no_freeze else f'yes ({frozen:,} objects frozen)'}",
        f"objects tracked by the collector: {tracked_before:,} -> {tracked_after:,} "
        f"= {(tracked_after - tracked_before) / n:,.0f} per cached order",
        f"full (gen 2) collections during the run: {len(PAUSES)}, pause p50 {percentile(PAUSES, 50) * 1000:.0f} ms, "
        f"max {max(PAUSES, default=0) * 1000:.0f} ms; one full collection at the end: {full_now * 1000:.0f} ms",
    ]
    return "```\n" + "\n".join(lines) + "\n```"


def main() -> None:
    body = asyncio.run(run(ARGS.orders))
    print(body)
    if ARGS.write:
        write_section("cache memory per order", command_line(), body)


if __name__ == "__main__":
    main()
