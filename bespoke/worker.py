"""Builds the Worker from the single registries in `workflows` and `activities`."""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
from collections.abc import Sequence
from typing import Any
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.converter import DataConverter
from temporalio.worker import Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from bespoke.activities import build_activities
from bespoke.activities.rules import RulesActivities
from bespoke.rules.plugins import installed_distributions, rules_task_queue
from bespoke.runtime.sandbox import ContextsOutsideSandbox, context_free
from bespoke.settings import Settings
from bespoke.store.db import get_engine
from bespoke.workflows import WORKFLOWS

# Database activities are synchronous (SQLAlchemy); they run on this pool.
ACTIVITY_THREADS = 16
# Workflow tasks are CPU-bound Python under one GIL, so more slots add no
# throughput, only latency per task. The SDK's default (100) lets a worker that
# restarts under load take on 100 full-history replays at once; each then takes
# longer than the 10 s workflow task timeout, times out, and is replayed again
# (found by tests/resilience/test_crash.py). Ten keep every task short.
WORKFLOW_TASK_SLOTS = 10


def workflow_runner(*, strict: bool = False, converter: DataConverter | None = None) -> WorkflowRunner:
    """The sandbox workflows run in.

    By default bespoke's own modules are passed through: the sandbox then re-imports
    nothing of ours per workflow run. Without it every cached order held its own
    copy of `bespoke.workflows` (order, cancellation, reconcile: code, classes,
    handler tables), which was most of a cached order's memory and a share of each
    run's CPU. The price is that the sandbox no longer traps a wall-clock read or
    I/O in our workflow code; `strict=True` keeps the trap, and the test suite's
    scenario worker and the replay tests run strict so such a call still fails a
    test before it ships.

    Either way, for a `converter` that takes no serialization context (bespoke's
    own, and the SDK's default when none is given), the SDK's per-payload context
    questions are answered outside the sandbox (bespoke/runtime/sandbox.py)."""
    sandbox = SandboxedWorkflowRunner() if strict else SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("bespoke"))
    return ContextsOutsideSandbox(sandbox) if context_free(converter or DataConverter.default) else sandbox


# A worker polls one rules queue per combination of its installed plugin
# distributions (an order may pin any of them); past this many distributions, only
# each one alone and all of them together.
MAX_PLUGIN_COMBINATIONS_OF = 4


def plugin_sets(installed: Sequence[tuple[str, str]]) -> list[tuple[tuple[str, str], ...]]:
    """The plugin sets (distribution, version) a worker with `installed` can decide
    for: every non-empty combination of them (bounded, see above)."""
    if len(installed) <= MAX_PLUGIN_COMBINATIONS_OF:
        return [c for n in range(1, len(installed) + 1) for c in itertools.combinations(installed, n)]
    return [(d,) for d in installed] + [tuple(installed)]


class BespokeWorker:
    """The order worker on `task_queue`, plus a rules-only worker on each
    `{task_queue}.rules.<plugin set>` queue this process can decide for: decisions
    of an order that pins plugins are routed there, so only a worker with exactly the
    pinned plugin versions installed makes them (`bespoke.rules.plugins`)."""

    def __init__(self, main: Worker, rules: list[Worker]) -> None:
        self.main, self.rules = main, rules

    @property
    def task_queues(self) -> list[str]:
        return [self.main.task_queue, *(w.task_queue for w in self.rules)]

    async def __aenter__(self) -> BespokeWorker:
        entered: list[Worker] = []
        try:
            for worker in (self.main, *self.rules):
                await worker.__aenter__()
                entered.append(worker)
        except BaseException:
            for worker in reversed(entered):
                await worker.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: Any) -> None:
        for worker in reversed(self.rules):
            await worker.__aexit__(*exc)
        await self.main.__aexit__(*exc)


def build_worker(
    client: Client, *, task_queue: str, engine: Engine, executor: ThreadPoolExecutor, strict_sandbox: bool = False,
    plugins: Sequence[tuple[str, str]] | None = None, mail: Any = None, settings: Settings | None = None,
    **options: Any,
) -> BespokeWorker:
    """`options` pass through to the order `Worker` (e.g. max_cached_workflows in
    tests); `strict_sandbox` see `workflow_runner`. `plugins`: the (distribution,
    version) pairs to poll rules queues for; default what this process has
    installed (tests pass others to stand for workers with other installations).
    `mail`: the MailConfig email is sent with (bespoke.mail.outbox.mail_config);
    None, email is off on this worker. `settings` (default the process's) configure
    webhook delivery."""
    main = Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        workflow_runner=workflow_runner(strict=strict_sandbox, converter=client.data_converter),
        activities=build_activities(engine, mail, settings),
        activity_executor=executor,
        max_concurrent_activities=executor._max_workers,  # never more than the pool can run
        **options,
    )
    installed = installed_distributions() if plugins is None else sorted(set(plugins))
    rules = [
        Worker(
            client,
            task_queue=rules_task_queue(task_queue, combination),
            activities=RulesActivities(engine).all(),
            activity_executor=executor,
            max_concurrent_activities=executor._max_workers,
        )
        for combination in plugin_sets(installed)
    ]
    return BespokeWorker(main, rules)


def freeze_startup_objects() -> int:
    """Move every object alive now (modules, classes, policies: what start-up built)
    out of the collector's reach, so a full collection walks only what the cached
    workflows hold. Returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


async def run_worker(client: Client, settings: Settings, *, shutdown: asyncio.Event) -> None:
    """Run a worker on the settings' task queue until `shutdown` is set, then drain.

    With BESPOKE_METRICS_BIND set, the worker serves Prometheus metrics there; on
    start it also makes sure the daily ledger reconciliation is scheduled, the task
    queue's webhook dispatcher runs, and with BESPOKE_SMTP_URL set that the email
    dispatcher runs."""
    from bespoke.mail.outbox import mail_config
    from bespoke.metrics import client_with_metrics, metrics_bind
    from bespoke.workflows.email import ensure_email_dispatch
    from bespoke.workflows.reconcile import ensure_reconcile_schedule
    from bespoke.workflows.webhooks import ensure_webhook_dispatcher

    mail = mail_config(settings)  # a bad email setting stops the worker here, with the variable named

    bind = metrics_bind(settings)
    if bind:
        client = await client_with_metrics(client, bind)
        print(f"Prometheus metrics at http://{bind}/metrics", flush=True)
    try:
        await ensure_reconcile_schedule(client, settings.task_queue)
    except RPCError as err:
        # A server without schedules (the time-skipping test server) still runs orders.
        logging.getLogger("bespoke.worker").warning("reconciliation schedule not created: %s", err.message)
    try:
        await ensure_webhook_dispatcher(client, settings)
    except RPCError as err:
        logging.getLogger("bespoke.worker").warning("webhook dispatcher not started: %s", err.message)
    engine = get_engine(settings.effective_database_url)
    with ThreadPoolExecutor(max_workers=ACTIVITY_THREADS, thread_name_prefix="bespoke-activity") as executor:
        worker = build_worker(
            client, task_queue=settings.task_queue, engine=engine, executor=executor, settings=settings,
            max_concurrent_workflow_tasks=WORKFLOW_TASK_SLOTS, max_cached_workflows=settings.worker_cache_size,
            mail=mail,
        )
        async with worker:
            if mail is not None:
                await ensure_email_dispatch(client, settings.task_queue)
                print(f"Email through {mail.smtp!r} from {mail.sender}", flush=True)
            freeze_startup_objects()
            await shutdown.wait()
