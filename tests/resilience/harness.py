"""Harness for the resilience tests: `bespoke worker` processes that can be
SIGKILLed and restarted, and a client-side order driver that retries the way a
real client (a storefront, a carrier integration) would.

The driver gives every action a stable update id (`<step>`), so a retry after a
lost response is deduplicated by the Temporal server; when a retry is rejected
by a validator (the first attempt did land: "already accepted", "duplicate
payment reference") it reads the order's state and moves on if the step is
done. Nothing here peeks into the worker or the database while orders run.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError

from bespoke.domain.models import (
    ActorInput,
    DeliverInput,
    MilestoneInput,
    OrderView,
    PayInput,
    QcInput,
    ShipInput,
    Stage,
)
from bespoke.service import OrderExists, build_order_input, order_handle, start_order
from bespoke.store.tables import LedgerEntry, OrderRow
from bespoke.workflows.order import OrderWorkflow
from tests.helpers import BUYER, CARRIER, SELLER, assert_ledger

# A loaded worker takes seconds to pick a task up; give an update time to land
# before retrying it (each retry is one more request for the server to dedupe).
RPC_TIMEOUT = timedelta(seconds=30)
UPDATE_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bespoke_command() -> list[str]:
    script = shutil.which("bespoke", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "bespoke.cli.app"]


class WorkerProcess:
    """One `bespoke worker` child process; `kill()` is SIGKILL (no drain, no
    goodbye to the server), `restart()` starts a fresh process in its place."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.env = env
        self.log_path = log_dir / f"worker-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.pids: list[int] = []
        self.kills = 0

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [*bespoke_command(), "worker"], env=self.env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.pids.append(self.proc.pid)

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, f"worker {self.name} is not running"
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.kills += 1

    def restart(self) -> None:
        if self.alive:
            self.kill()
        self.start()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Clean stop (SIGTERM: drain), SIGKILL if it does not exit in time."""
        if not self.alive:
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def worker_env(*, address: str, home: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BESPOKE_", "TEMPORAL_"))}
    env.update(TEMPORAL_ADDRESS=address, BESPOKE_HOME=str(home), BESPOKE_DATABASE_URL=database_url, **extra)
    return env


# ------------------------------------------------------------------ driver


@dataclass
class Stats:
    updates: int = 0  # steps done
    retries: Counter[str] = field(default_factory=Counter)  # why a step was retried
    already_applied: int = 0  # a retry rejected because the first attempt had landed
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    def step_done(self) -> None:
        self.updates += 1
        self.progress.set()


@dataclass(frozen=True)
class Step:
    name: str  # also the update id: unique within the order
    update: Callable[..., Any]
    arg: Any
    event: str  # timeline kind that proves the step landed
    count: int = 1  # ... that many times

    def landed(self, view: OrderView) -> bool:
        return sum(1 for e in view.timeline if e.kind == self.event) >= self.count


PLANS = {"full_prepayment": [100_000], "staged:30/70": [30_000, 70_000]}


def happy_path(order_id: str, plan: str) -> list[Step]:
    """Every actor action of a happy-path order, in order."""
    parts = PLANS[plan]
    steps = [Step("accept", OrderWorkflow.accept, ActorInput(actor=SELLER), "accepted")]
    steps.append(Step("pay-0", OrderWorkflow.pay, PayInput(actor=BUYER, amount=parts[0], currency="CNY",
                                                            reference=f"{order_id}-P0"), "payment"))
    for i, (name, cost) in enumerate((("materials", 20_000), ("fabrication", 15_000), ("finishing", 5_000))):
        steps.append(Step(f"milestone-{name}", OrderWorkflow.milestone,
                          MilestoneInput(actor=SELLER, milestone=name, cost=cost), "milestone", i + 1))
    steps.append(Step("finish", OrderWorkflow.finish_production, ActorInput(actor=SELLER), "production_finished"))
    steps.append(Step("qc", OrderWorkflow.quality_check, QcInput(actor=SELLER, passed=True), "qc_passed"))
    for i, amount in enumerate(parts[1:], start=1):
        steps.append(Step(f"pay-{i}", OrderWorkflow.pay, PayInput(actor=BUYER, amount=amount, currency="CNY",
                                                                   reference=f"{order_id}-P{i}"), "payment", i + 1))
    steps.append(Step("ship", OrderWorkflow.ship, ShipInput(actor=SELLER, carrier="sf-express",
                                                             tracking=f"SF{order_id}"), "shipped"))
    steps.append(Step("deliver", OrderWorkflow.deliver, DeliverInput(actor=CARRIER), "delivered"))
    steps.append(Step("confirm", OrderWorkflow.confirm, ActorInput(actor=BUYER), "confirmed"))
    return steps


async def _view(handle: WorkflowHandle[Any, Any]) -> OrderView | None:
    """The order's live state, or None if no worker answered in time."""
    try:
        return await handle.query(OrderWorkflow.status, rpc_timeout=RPC_TIMEOUT)
    except RPCError:
        return None


async def _act(handle: WorkflowHandle[Any, Any], step: Step, stats: Stats, deadline: float) -> None:
    delay = 0.2
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{handle.id}: step {step.name} not done in time")
        try:
            # The SDK keeps re-sending an update the server has only admitted (not
            # yet handed to a worker), so bound the whole call, not just each RPC.
            await asyncio.wait_for(
                handle.execute_update(step.update, step.arg, id=step.name, rpc_timeout=RPC_TIMEOUT),
                UPDATE_TIMEOUT,
            )
            return
        except WorkflowUpdateFailedError as err:
            # Rejected by the validator. Fine only if an earlier attempt landed.
            view = await _view(handle)
            if view is not None and step.landed(view):
                stats.already_applied += 1
                return
            if view is None:
                stats.retries["rejected, state unknown"] += 1
            else:
                raise AssertionError(f"{handle.id}: {step.name} rejected: {err.cause}") from err
        except (WorkflowUpdateRPCTimeoutOrCancelledError, TimeoutError):
            stats.retries["update timed out"] += 1
        except RPCError as err:
            stats.retries[f"rpc {err.status.name if err.status else 'error'}"] += 1
        await asyncio.sleep(delay)
        delay = min(delay * 2, 3.0)


async def drive_order(client: Client, order_id: str, plan: str, *, task_queue: str, policy: Any,
                      stats: Stats, timeout: float, store: Any) -> None:
    """Create the order (idempotently) and take it through every happy-path step."""
    from bespoke.domain.models import Actor, PaymentPlan

    deadline = time.monotonic() + timeout
    inp = build_order_input(
        order_id=order_id, buyer="alice", seller="acme", price=100_000, currency="CNY",
        plan=PaymentPlan.parse(plan), production_days=14, policy=policy,
        created_by=Actor.parse("ops:olga"), title="resilience", store=store,
    )
    while True:
        try:
            await start_order(client, inp, task_queue=task_queue)
            break
        except OrderExists:
            break  # an earlier attempt started it
        except RPCError as err:
            stats.retries[f"start {err.status.name if err.status else 'error'}"] += 1
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    handle = order_handle(client, order_id)
    for step in happy_path(order_id, plan):
        await _act(handle, step, stats, deadline)
        stats.step_done()


async def wait_completed(client: Client, engine, order_ids: list[str], timeout: float) -> dict[str, OrderView]:
    """Wait until every order is `completed` both live (the workflow's query) and
    in the read model. Completed orders stay open for the after-sales window,
    so the workflow result is not what to wait for."""
    deadline = time.monotonic() + timeout
    pending = set(order_ids)
    while pending:
        with Session(engine) as session:
            rows = session.exec(select(OrderRow.order_id, OrderRow.stage).where(OrderRow.order_id.in_(pending))).all()
        pending -= {oid for oid, stage in rows if stage == Stage.COMPLETED.value}
        if pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} order(s) not completed in the read model: {sorted(pending)[:5]}")
            await asyncio.sleep(0.5)
    views: dict[str, OrderView] = {}
    for oid in order_ids:
        handle = order_handle(client, oid)
        while (view := await _view(handle)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{oid}: no answer to the status query")
            await asyncio.sleep(0.5)
        views[oid] = view
    return views


# ------------------------------------------------------------------ checks


def check_books(engine, order_ids: list[str], plans: dict[str, str]) -> None:
    """Every order's ledger balances, escrow is empty, and the buyer paid exactly
    the price once: no lost deposit, no double posting, no refund."""
    with Session(engine) as session:
        dupes = session.exec(
            select(LedgerEntry.txn_key, LedgerEntry.leg, func.count())
            .group_by(LedgerEntry.txn_key, LedgerEntry.leg)
            .having(func.count() > 1)
        ).all()
        assert not dupes, f"duplicate legs: {dupes[:5]}"
        kinds = session.exec(select(LedgerEntry.order_id, LedgerEntry.kind, LedgerEntry.txn_key)).all()
    txns_by_order: dict[str, Counter[str]] = {}
    for oid, kind, key in set(kinds):
        txns_by_order.setdefault(oid, Counter())[kind] += 1
    for oid in order_ids:
        balances = assert_ledger(engine, oid, closed=True)
        assert balances.get("buyer") == -100_000, (oid, balances)  # paid exactly once, nothing refunded
        assert balances.get("seller") == 95_000 and balances.get("platform_fee") == 5_000, (oid, balances)
        assert txns_by_order[oid] == Counter(payment=len(PLANS[plans[oid]]), settlement=1), (oid, txns_by_order[oid])


def worker_identities(histories: list[Any]) -> Counter[str]:
    """How many workflow and activity tasks each worker identity completed."""
    seen: Counter[str] = Counter()
    for history in histories:
        for event in history.events:
            if event.HasField("workflow_task_completed_event_attributes"):
                seen[event.workflow_task_completed_event_attributes.identity] += 1
            elif event.HasField("activity_task_started_event_attributes"):
                seen[event.activity_task_started_event_attributes.identity] += 1
    return seen
