"""`bespoke db rebuild`: restore the read model (orders, ledger, timeline, decisions)
from the order workflows.

How: every order workflow on the task queue is listed from Temporal's visibility
(running and closed alike), and for each of its runs, oldest first, the inputs it
recorded for the read-model activities — `post_transaction` (a ledger
transaction) and `project_order` (the order row, new timeline entries, new
decisions), or since "sync-local-v1" `sync_read_model` (both in one write, as a
local activity whose marker records what it wrote) — are read from its history
and applied again with the same functions the activities use. Those functions are idempotent (a transaction key
is posted once; timeline entries by (order, seq), decisions by id; the order
row keeps the newest projection), so a rebuild can run twice, and while workers
run, and change nothing the second time.

Why histories and not the `status` query of running orders:
- the history holds exactly what was written, so the rebuild writes the same
  rows, rather than rows re-derived from a view that may word or round things
  differently;
- a workflow keeps only its newest 500 timeline entries (workflows/core.py,
  TIMELINE_KEPT); the history has every entry it ever projected;
- closed orders cannot be queried without a worker replaying them, and they
  are most of the orders; a history is read from the server alone, so the
  rebuild needs no worker and adds no load to one;
- one method for running and closed orders, continued-as-new runs included.

Limits: a closed workflow's history is gone once the namespace's retention period
has passed, and so is its part of the rebuild; buyer accounts, credit lines and
bank transfers are not written by the workflows and are not restored.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from temporalio.client import Client

from bespoke.activities.ledger import record_into
from bespoke.activities.reconcile import orders_query
from bespoke.activities.store import project_into
from bespoke.activities.sync import apply_sync
from bespoke.domain.models import ProjectInput, ReadModelSync, Transaction
from bespoke.store.db import session_scope
from bespoke.store.tables import DecisionRow, LedgerEntry, OrderRow, TimelineRow

# The read-model activities whose recorded inputs rebuild the tables, and the type
# each input decodes to.
RECORDED = {"post_transaction": Transaction, "project_order": ProjectInput, "sync_read_model": ReadModelSync}
# Orders on "sync-local-v1" write the read model in a local activity, whose input
# is not in the history: it returns what it wrote, recorded in its marker.
LOCAL_RECORDED = {"sync_read_model": ReadModelSync}
LOCAL_ACTIVITY_MARKER = "core_local_activity"
PAGE_SIZE = 200
CONCURRENCY = 4
TABLES = {"orders": OrderRow, "ledger_entries": LedgerEntry, "timeline": TimelineRow, "decisions": DecisionRow}


@dataclass
class RebuildReport:
    orders: int = 0  # order workflows read
    runs: int = 0  # their runs (more than orders when some continued as new)
    inputs: int = 0  # recorded activity inputs applied
    added: dict[str, int] = field(default_factory=dict)  # rows the rebuild added, per table


def count_rows(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        return {name: int(session.exec(select(func.count()).select_from(table)).one())
                for name, table in TABLES.items()}


async def runs_oldest_first(client: Client, workflow_id: str, run_id: str) -> list[str]:
    """The run ids of one order, from its first run to `run_id` (its current one),
    following each run's `continued_execution_run_id` back."""
    chain = [run_id]
    while True:
        handle = client.get_workflow_handle(workflow_id, run_id=chain[-1])
        first = None
        async for event in handle.fetch_history_events(page_size=1):
            first = event
            break
        previous = first.workflow_execution_started_event_attributes.continued_execution_run_id if first else ""
        if not previous or previous in chain:
            return chain[::-1]
        chain.append(previous)


async def recorded_inputs(client: Client, workflow_id: str, run_id: str) -> list[Any]:
    """The inputs of one run's read-model activities, in the order it scheduled them
    (decoded with the client's converter: an encrypted history needs its key)."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    found: list[Any] = []
    async for event in handle.fetch_history_events():
        found.extend(await inputs_of_event(client.data_converter, event))
    return found


async def inputs_of_event(converter: Any, event: Any) -> list[Any]:
    """What one history event says was written to the read model: a read-model
    activity's input (scheduled event) or a read-model local activity's result (its
    marker, when it succeeded)."""
    if event.HasField("activity_task_scheduled_event_attributes"):
        attrs = event.activity_task_scheduled_event_attributes
        kind = RECORDED.get(attrs.activity_type.name)
        return [] if kind is None else await converter.decode(attrs.input.payloads, [kind])
    if event.HasField("marker_recorded_event_attributes"):
        marker = event.marker_recorded_event_attributes
        if marker.marker_name != LOCAL_ACTIVITY_MARKER or "result" not in marker.details:
            return []
        # The SDK core writes the marker's data as plain JSON (never through a codec).
        [data] = marker.details["data"].payloads
        kind = LOCAL_RECORDED.get(json.loads(data.data).get("activity_type"))
        if kind is None or not marker.details["result"].payloads:
            return []
        return await converter.decode(marker.details["result"].payloads, [kind])
    return []


def apply(engine: Engine, inputs: list[Any]) -> None:
    """Apply one run's recorded inputs in one transaction. A worker writing the same
    rows at the same moment may win a unique constraint; then the run is applied
    again, and finds those rows there."""
    for attempt in range(3):
        try:
            with session_scope(engine) as session:
                for item in inputs:
                    if isinstance(item, Transaction):
                        record_into(session, item)
                    elif isinstance(item, ReadModelSync):
                        apply_sync(session, item)
                        session.flush()
                    else:
                        project_into(session, item)
                        session.flush()
            return
        except IntegrityError:
            if attempt == 2:
                raise


async def rebuild(client: Client, engine: Engine, *, task_queue: str,
                  progress: Callable[[int, int | None], None] = lambda done, total: None) -> RebuildReport:
    """Rebuild the read model from every order workflow on `task_queue`; calls
    `progress(done, total)` after each order. Memory: a page of the listing and
    CONCURRENCY runs' inputs at a time."""
    query = orders_query(task_queue)
    total = (await client.count_workflows(query)).count
    before = await asyncio.to_thread(count_rows, engine)
    report = RebuildReport()
    progress(0, total)
    # A few orders at a time (reading histories is mostly waiting on the server);
    # each order's runs one after the other, oldest first, so its ledger rows keep
    # their posting order.
    slots = asyncio.Semaphore(CONCURRENCY)

    async def one(workflow_id: str, run_id: str) -> None:
        try:
            for run in await runs_oldest_first(client, workflow_id, run_id):
                inputs = await recorded_inputs(client, workflow_id, run)
                await asyncio.to_thread(apply, engine, inputs)
                report.runs += 1
                report.inputs += len(inputs)
            report.orders += 1
            progress(report.orders, max(total, report.orders))
        finally:
            slots.release()

    try:
        async with asyncio.TaskGroup() as group:
            async for execution in client.list_workflows(query, page_size=PAGE_SIZE):
                await slots.acquire()  # at most CONCURRENCY orders in memory
                group.create_task(one(execution.id, execution.run_id))
    except BaseExceptionGroup as failed:  # the first order that failed says why (a key missing, a database error)
        raise failed.exceptions[0] from None
    after = await asyncio.to_thread(count_rows, engine)
    report.added = {name: after[name] - before[name] for name in TABLES}
    return report
