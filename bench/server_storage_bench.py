"""What the embedded server's default storage costs: the lifecycle workload on
the server persisted to its SQLite file (`bespoke up`'s default, survives
restarts) vs the same server with all state in memory
(`EmbeddedServer(in_memory=True)`, lost when it stops).

Each storage mode gets its own fresh server and home; the workload is
lifecycle_bench's (N concurrent orders through the whole happy path, in-process
worker, read model on a SQLite file in both cases). `--rounds 2` alternates which
mode goes first. `--with-bare` also runs the bare workflow on each, to show how
much of the difference is Temporal's own.

Run: /tmp/venv/bin/python bench/server_storage_bench.py [--orders 200] [--rounds 1] [--with-bare] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import code_version, command_line, machine, write_section  # noqa: E402
from lifecycle_bench import run_lifecycle  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=200, help="concurrent orders per run")
    ap.add_argument("--rounds", type=int, default=1, help="servers started per mode, alternating which mode goes first")
    ap.add_argument("--with-bare", action="store_true", help="also run the bare workflow on each server")
    ap.add_argument("--write", action="store_true", help="write the figures into bench/RESULTS.md")
    args = ap.parse_args()
    workloads = ("bare", "bespoke") if args.with_bare else ("bespoke",)
    rates: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    log: list[str] = []
    startup: dict[str, list[float]] = {"sqlite": [], "memory": []}
    for r in range(args.rounds):
        modes = ("sqlite", "memory") if r % 2 == 0 else ("memory", "sqlite")
        for mode in modes:
            print(f"round {r + 1}: server state in {mode}", flush=True)
            out = asyncio.run(run_lifecycle(args.orders, 1, in_memory=(mode == "memory"), workloads=workloads))
            startup[mode].append(out["startup_seconds"])
            for label, runs in out["results"].items():
                rates.setdefault((mode, label), []).extend(x.rate for x in runs)
                cpu.setdefault((mode, label), []).extend((x.cpu_self + x.cpu_server) / x.orders for x in runs)
                log.extend(f"  {mode:6s} {x.label:8s}: {x.orders} orders in {x.seconds:.1f} s = {x.rate:.2f} orders/s, "
                           f"cpu/order {(x.cpu_self + x.cpu_server) * 1000 / x.orders:.0f} ms" for x in runs)
    lines = [
        f"machine: {machine()}",
        f"code: {code_version()}",
        f"workload: lifecycle_bench, {args.orders} concurrent orders through the happy path; "
        f"{args.rounds} server(s) per mode",
        "",
    ]
    for label in workloads:
        sq = statistics.mean(rates[("sqlite", label)])
        mem = statistics.mean(rates[("memory", label)])
        cs, cm = statistics.mean(cpu[("sqlite", label)]), statistics.mean(cpu[("memory", label)])
        lines.append(f"{label:8s}: SQLite file {sq:6.2f} orders/s, in memory {mem:6.2f} orders/s, "
                     f"ratio file/memory {sq / mem:.2f}; cpu per order (worker+server) file {cs * 1000:.0f} ms, "
                     f"memory {cm * 1000:.0f} ms (memory/file {cm / cs:.2f})")
    lines.append(f"server start-up: SQLite file {statistics.mean(startup['sqlite']):.1f} s, "
                 f"in memory {statistics.mean(startup['memory']):.1f} s")
    lines += ["runs:", *log]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section("embedded server storage: SQLite file vs in memory", command_line(), f"```\n{text}\n```")


if __name__ == "__main__":
    main()
