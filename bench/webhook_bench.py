"""Webhook delivery: latency (event recorded in the outbox -> the receiver got it)
and what delivery costs the lifecycle, against bare Temporal, in one run.

Three workloads on one embedded server, alternated per round as lifecycle_bench
does: `bare` (bench/bare.py, the order's shape without bespoke), `bespoke`
(webhooks off: no subscription, no dispatcher), `bespoke+webhooks` (an ops
subscription to every event type, one loopback receiver in its own process, the
dispatcher workflow delivering from the same in-process worker). N orders run the
happy path concurrently in each. The lifecycle rate is orders / seconds until the
last order completed; the deliveries still in flight then are waited for and
reported apart (drain). Latency is the receiver's arrival time of an event's first
delivery minus the outbox row's `recorded_at` (same machine, same clock).

Run: .venv/bin/python bench/webhook_bench.py [--orders 200] [--rounds 1] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import UTC
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from sqlmodel import Session, col, func, select  # noqa: E402

from _common import (  # noqa: E402
    RETRIES,
    Timer,
    client_for,
    code_version,
    command_line,
    free_port,
    machine,
    percentile,
    scratch_home,
    server_for,
    write_section,
)
from lifecycle_bench import Bench, RunResult, _cpu_pid, _cpu_self, one_order  # noqa: E402
from bespoke.api import principals  # noqa: E402
from bespoke.domain.models import Role  # noqa: E402
from bespoke.notifications import subscriptions  # noqa: E402
from bespoke.settings import Settings  # noqa: E402
from bespoke.store.tables import EventRow, WebhookDelivery  # noqa: E402
from bespoke.worker import build_worker  # noqa: E402
from bespoke.workflows.webhooks import dispatcher_id, ensure_webhook_dispatcher  # noqa: E402

TARGET = 0.8  # webhooks on must keep >= 80 % of the webhooks-off lifecycle rate

RECEIVER = textwrap.dedent("""
    import sys, threading, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    out = open(sys.argv[2], "a", buffering=1)
    lock = threading.Lock()
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", "0")))
            with lock:
                out.write(f"{self.headers.get('webhook-id')}\\t{time.time()}\\n")
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()
        def log_message(self, *a):
            pass
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
""")


class WebhookBench(Bench):
    def __init__(self, client, server_pid: int, home: Path, server_settings: Settings) -> None:
        super().__init__(client, server_pid, home)
        self.home = home
        self.settings = server_settings.model_copy(update={
            "database_url": f"sqlite:///{home}/bespoke.db", "webhook_allow_http_loopback": True})
        principals.add(self.engine, "ops:bench", scopes=[], created_by="ops:bench")
        self.latencies: dict[int, list[float]] = {}
        self.drains: dict[int, float] = {}
        self.deliveries: dict[int, int] = {}

    async def run_webhooks(self, n: int, round_no: int) -> RunResult:
        tq = f"webhooks-{uuid.uuid4().hex[:8]}"
        settings = self.settings.model_copy(update={"task_queue": tq})
        port = free_port()
        received = self.home / f"received-{round_no}.tsv"
        receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port), str(received)])
        sub = subscriptions.create(self.engine, principal="ops:bench", role=Role.OPS,
                                   url=f"http://127.0.0.1:{port}/hook", event_types=["*"], allow_loopback_http=True)
        with Session(self.engine) as s:
            first_event = s.exec(select(func.max(EventRow.id))).one() or 0
        worker = build_worker(self.client, task_queue=tq, engine=self.engine, executor=self.executor,
                              settings=settings)
        try:
            async with worker:
                await ensure_webhook_dispatcher(self.client, settings)
                cpu0, srv0 = _cpu_self(), _cpu_pid(self.server_pid)
                with Timer() as t:
                    handles = await asyncio.gather(*(one_order(self.client, tq, self.engine) for _ in range(n)))
                cpu1, srv1 = _cpu_self(), _cpu_pid(self.server_pid)
                drained = time.monotonic()
                while await asyncio.to_thread(self._pending, sub.subscription.id):
                    await asyncio.sleep(0.2)
                self.drains[round_no] = time.monotonic() - drained
                await self.client.get_workflow_handle(dispatcher_id(tq)).terminate("bench done")
        finally:
            receiver.send_signal(signal.SIGTERM)
            receiver.wait(10)
            subscriptions.remove(self.engine, sub.subscription.id)
        self.latencies[round_no], self.deliveries[round_no] = self._latencies(received, first_event)
        return RunResult("bespoke+webhooks", n, t.seconds, cpu1 - cpu0, srv1 - srv0, list(handles))

    def _pending(self, sub_id: str) -> int:
        with Session(self.engine) as s:
            return s.exec(select(func.count()).select_from(WebhookDelivery).where(
                WebhookDelivery.subscription_id == sub_id, WebhookDelivery.status != "delivered")).one()

    def _latencies(self, received: Path, after: int) -> tuple[list[float], int]:
        arrived: dict[str, float] = {}
        for line in received.read_text().splitlines():
            event_id, at = line.split("\t")
            arrived.setdefault(event_id, float(at))
        with Session(self.engine) as s:
            rows = s.exec(select(EventRow.event_id, EventRow.recorded_at).where(col(EventRow.id) > after)).all()
        out = []
        for event_id, recorded in rows:
            if event_id in arrived:
                recorded = recorded if recorded.tzinfo else recorded.replace(tzinfo=UTC)
                out.append(arrived[event_id] - recorded.timestamp())
        missing = len(rows) - len(out)
        assert missing == 0, f"{missing} of {len(rows)} events never reached the receiver"
        return out, len(rows)


async def bench(n: int, rounds: int) -> tuple[str, list[str]]:
    home = scratch_home("webhooks")
    async with server_for(home) as server:
        client = await client_for(server)
        b = WebhookBench(client, server.pid, home, server.settings)
        try:
            await b.calibrate()
            results: dict[str, list[RunResult]] = {"bare": [], "bespoke": [], "bespoke+webhooks": []}
            log: list[str] = []
            for r in range(rounds):
                order = list(results) if r % 2 == 0 else list(reversed(results))
                for label in order:
                    res = await (b.run_webhooks(n, r) if label == "bespoke+webhooks" else b.run(label, n))
                    results[label].append(res)
                    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
                    extra = ""
                    if label == "bespoke+webhooks":
                        lat = b.latencies[r]
                        extra = (f"; {b.deliveries[r]} events delivered, latency p50 {percentile(lat, 50) * 1000:.0f} ms "
                                 f"p99 {percentile(lat, 99) * 1000:.0f} ms, drain after the last order "
                                 f"{b.drains[r]:.1f} s")
                    line = (f"round {r + 1} {label:17s}: {n} orders in {res.seconds:6.1f} s = {res.rate:6.2f} orders/s"
                            f" (cpu: this process {res.cpu_self:.1f} s, server {res.cpu_server:.1f} s; "
                            f"load average after: {load}){extra}")
                    log.append(line)
                    print("  " + line, flush=True)
        finally:
            b.executor.shutdown(wait=False)
    rate = {k: statistics.mean(x.rate for x in v) for k, v in results.items()}
    lat = [x for v in b.latencies.values() for x in v]
    cpu = {k: statistics.mean((x.cpu_self + x.cpu_server) / x.orders for x in v) for k, v in results.items()}
    lines = [
        f"machine: {machine()}",
        f"code: {code_version()}",
        "server: embedded dev server, state in its SQLite file; read model: SQLite file; worker in this process; "
        "receiver: one loopback http.server process answering 204",
        f"orders per run: {n} concurrent; rounds: {rounds} (alternating which goes first); "
        f"dispatcher settings: defaults (poll {Settings(_environ={}).webhook_poll} s)",
        "",
        *(f"{k:17s}: {v:6.2f} orders/s; cpu per order (worker+server) {cpu[k] * 1000:.0f} ms" for k, v in rate.items()),
        f"ratio bespoke/bare (webhooks off): {rate['bespoke'] / rate['bare']:.2f}",
        f"ratio bespoke+webhooks/bare (webhooks on): {rate['bespoke+webhooks'] / rate['bare']:.2f}",
        f"webhooks on / off: {rate['bespoke+webhooks'] / rate['bespoke']:.2f} (goal >= {TARGET}: webhooks cost "
        f"{(1 - rate['bespoke+webhooks'] / rate['bespoke']) * 100:.0f} % of throughput)",
        f"delivery latency, event recorded -> receiver got it, {len(lat)} events: p50 {percentile(lat, 50) * 1000:.0f} ms, "
        f"p99 {percentile(lat, 99) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms",
        "runs:",
        *("  " + x for x in log),
    ]
    if RETRIES[0]:
        lines.append(f"update RPCs that timed out under load and were re-asked (same update id): {RETRIES[0]}")
    return "\n".join(lines), log


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=200, help="concurrent orders per run")
    ap.add_argument("--rounds", type=int, default=1, help="runs of each workload, alternating which goes first")
    ap.add_argument("--write", action="store_true", help="write the figures into bench/RESULTS.md")
    args = ap.parse_args()
    os.environ.pop("BESPOKE_DATABASE_URL", None)
    text, _ = asyncio.run(bench(args.orders, args.rounds))
    text += f"\nload average at the end: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}"
    print(text)
    if args.write:
        write_section("webhook delivery", command_line(), f"```\n{text}\n```")


if __name__ == "__main__":
    main()
