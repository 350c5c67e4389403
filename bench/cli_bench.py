"""Whole-process latency of the `bespoke` command, against a yardstick.

Starts its own embedded server (`bespoke up --headless` in a scratch
BESPOKE_HOME, free ports), creates one order, then times whole subprocesses
(interpreter start-up and exit included) with time.perf_counter:

- `bespoke order status ID --json` against a minimal temporalio script that
  does the same query (connect with the pydantic converter, query `status`,
  print the JSON): RUNS pairs, run alternately, so a drift in the machine's
  speed moves both sides; the ratio is taken pair by pair and its p50 printed.
- `bespoke --help` and `bespoke order list` (p50 over RUNS), which need no
  Temporal connection.

Only stdlib here: the bench must not pay, or hide, the imports it measures.

    python bench/cli_bench.py [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

# The yardstick: what a script written against temporalio directly needs to do
# what `bespoke order status ID --json` does. It pays its own interpreter exit.
MINIMAL_QUERY = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter

    async def main():
        client = await Client.connect(os.environ["TEMPORAL_ADDRESS"], data_converter=pydantic_data_converter)
        view = await client.get_workflow_handle("order-" + sys.argv[1]).query("status")
        print(json.dumps(view))

    asyncio.run(main())
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bespoke() -> list[str]:
    script = shutil.which("bespoke", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "bespoke.cli.app"]


def p50(xs: list[float]) -> float:
    return statistics.median(xs)


def timed(cmd: list[str], env: dict[str, str], check=None) -> float:
    began = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - began
    if proc.returncode != 0 or (check is not None and not check(proc.stdout)):
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-500:]}\n{proc.stderr[-2000:]}")
    return elapsed


def start_server(env: dict[str, str], home: Path) -> subprocess.Popen[str]:
    log = (home / "up.log").open("w")
    proc = subprocess.Popen([*bespoke(), "up", "--headless"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            text=True)
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"bespoke up exited {proc.returncode}: {(home / 'up.log').read_text()[-2000:]}")
        ready = subprocess.run([*bespoke(), "order", "list", "--json"], env=env, capture_output=True)
        if ready.returncode == 0 and "Worker polling" in (home / "up.log").read_text():
            return proc
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"bespoke up not ready in 90 s: {(home / 'up.log').read_text()[-2000:]}")
        time.sleep(0.3)


def stop_server(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def machine_line() -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    try:
        from importlib.metadata import version

        temporalio = version("temporalio")
    except Exception:  # noqa: BLE001 - the line is informative only
        temporalio = "?"
    return (f"machine: {platform.machine()}, nproc {os.cpu_count()}; Python {platform.python_version()}, "
            f"temporalio {temporalio}; load average {load}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="timed runs (pairs for status) per figure")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (page cache, pyc files)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch BESPOKE_HOME")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bespoke-cli-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BESPOKE_", "TEMPORAL_"))}
    env.update(BESPOKE_HOME=str(home), TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
               BESPOKE_UI_PORT=str(free_port()), BESPOKE_API_BIND="127.0.0.1:0", COLUMNS="200")
    minimal = home / "minimal_query.py"
    minimal.write_text(MINIMAL_QUERY)
    server = start_server(env, home)
    try:
        created = subprocess.run([*bespoke(), "order", "create", "--buyer", "bench-buyer", "--seller", "bench-seller",
                                  "--price", "100.00", "--json"], env=env, capture_output=True, text=True, check=True)
        order_id = json.loads(created.stdout)["order_id"]

        def same_order(stdout: str) -> bool:
            return json.loads(stdout)["order_id"] == order_id

        status_cmd = [*bespoke(), "order", "status", order_id, "--json"]
        minimal_cmd = [sys.executable, str(minimal), order_id]
        for _ in range(args.warmup):
            timed(status_cmd, env, same_order)
            timed(minimal_cmd, env, same_order)
        ours, theirs = [], []
        for i in range(args.runs):
            # Alternate which goes first, so neither always runs right after the other.
            pair = [(status_cmd, ours), (minimal_cmd, theirs)]
            for cmd, into in pair if i % 2 == 0 else reversed(pair):
                into.append(timed(cmd, env, same_order))
        ratios = [a / b for a, b in zip(ours, theirs, strict=True)]

        simple = {}
        for name, cmd in (("bespoke --help", [*bespoke(), "--help"]),
                          ("bespoke order list", [*bespoke(), "order", "list"]),
                          ("bespoke order list --json", [*bespoke(), "order", "list", "--json"])):
            for _ in range(args.warmup):
                timed(cmd, env)
            simple[name] = [timed(cmd, env) for _ in range(args.runs)]
    finally:
        stop_server(server)
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)

    print(machine_line())
    print(f"`bespoke order status ID --json`: p50 {p50(ours) * 1000:.0f} ms (min {min(ours) * 1000:.0f}, "
          f"max {max(ours) * 1000:.0f}), n={len(ours)}")
    print(f"minimal temporalio query script:  p50 {p50(theirs) * 1000:.0f} ms (min {min(theirs) * 1000:.0f}, "
          f"max {max(theirs) * 1000:.0f}), n={len(theirs)}")
    print(f"ratio bespoke/minimal, paired:    p50 {p50(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})")
    for name, xs in simple.items():
        print(f"`{name}`: p50 {p50(xs) * 1000:.0f} ms (min {min(xs) * 1000:.0f}, max {max(xs) * 1000:.0f}), "
              f"n={len(xs)}")


if __name__ == "__main__":
    main()
