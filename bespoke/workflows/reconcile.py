"""ReconcileWorkflow: check every order's books against the ledger, read-only.

A Temporal Schedule starts it daily (`ensure_reconcile_schedule`, called when a
worker starts and by `bespoke ops reconcile --schedule`); `bespoke ops
reconcile` runs it on demand. The checks themselves live in
`bespoke.activities.reconcile`; this workflow only pages through the orders a
batch at a time, so ten thousand orders are twenty short activities, not one
long one: first the books (the database checked against itself), then the
order workflows on its task queue, a page of Temporal's visibility list at a
time (the books checked against each workflow). Its `progress` query says how
far it has got (`bespoke ops reconcile` draws a progress bar from it).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from bespoke.activities.reconcile import (
        MAX_LISTED,
        ReconcileActivities,
        ReconcileBatch,
        ReconcileInput,
        ReconcileProgress,
        ReconcileReport,
        RowsPage,
        WorkflowPage,
    )

if TYPE_CHECKING:
    from temporalio.client import Client

SCHEDULE_ID = "bespoke-reconcile-daily"
SCHEDULED_WORKFLOW_ID = "bespoke-reconcile"
# The books are compared with the order workflows themselves (runs before this
# patch checked the database against itself only).
WORKFLOWS_PATCH = "reconcile-workflows-v1"
# ... and every order the read model holds open must still have a workflow.
ROWS_PATCH = "reconcile-rows-v1"
# 03:00 UTC: after the day's settlements, before the working day in Asia and Europe.
DAILY_CRON = "0 3 * * *"

BATCH = {
    "start_to_close_timeout": timedelta(minutes=10),
    "heartbeat_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5),
}


@workflow.defn
class ReconcileWorkflow:
    def __init__(self) -> None:
        self._progress = ReconcileProgress(phase="books", done=0, total=None)

    @workflow.query
    def progress(self) -> ReconcileProgress:
        return self._progress

    @workflow.run
    async def run(self, inp: ReconcileInput) -> ReconcileReport:
        after = ""
        checked = transactions = off = open_credit = debts = debt_orders = 0
        listed = []
        total = None
        while True:
            batch = await workflow.execute_activity_method(
                ReconcileActivities.reconcile_batch,
                ReconcileBatch(after=after, limit=inp.batch_size, settle_seconds=inp.settle_seconds),
                **BATCH,
            )
            total = batch.total if batch.total is not None else total
            checked += batch.checked
            self._progress = ReconcileProgress(phase="books", done=checked, total=total)
            transactions += batch.transactions
            open_credit += batch.open_credit
            debts += batch.debts
            debt_orders += batch.debt_orders
            off += len(batch.discrepancies)
            listed.extend(batch.discrepancies[: max(MAX_LISTED - len(listed), 0)])
            if batch.last_order_id is None:
                break
            after = batch.last_order_id
        workflows = workflows_off = refused = 0
        compared = workflow.patched(WORKFLOWS_PATCH)
        if compared:
            token, total = "", None
            self._progress = ReconcileProgress(phase="workflows", done=0, total=None)
            while True:
                page = await workflow.execute_activity_method(
                    ReconcileActivities.reconcile_workflows,
                    WorkflowPage(task_queue=workflow.info().task_queue, page_token=token,
                                 page_size=min(inp.batch_size, 1_000), settle_seconds=inp.settle_seconds),
                    **BATCH,
                )
                total = page.total if page.total is not None else total
                workflows += page.checked
                refused += page.refused
                workflows_off += len(page.discrepancies)
                listed.extend(page.discrepancies[: max(MAX_LISTED - len(listed), 0)])
                self._progress = ReconcileProgress(phase="workflows", done=workflows, total=total)
                if page.next_page_token is None:
                    break
                token = page.next_page_token
        if compared and workflow.patched(ROWS_PATCH):
            after, rows = "", 0
            while True:
                self._progress = ReconcileProgress(phase="read model", done=rows, total=None)
                found = await workflow.execute_activity_method(
                    ReconcileActivities.reconcile_rows, RowsPage(after=after, limit=inp.batch_size), **BATCH)
                rows += found.checked
                workflows_off += len(found.discrepancies)
                listed.extend(found.discrepancies[: max(MAX_LISTED - len(listed), 0)])
                if found.last_order_id is None:
                    break
                after = found.last_order_id
        self._progress = ReconcileProgress(phase="done", done=workflows or checked, total=workflows or checked)
        report = ReconcileReport(
            orders_checked=checked, transactions_checked=transactions, orders_off=off,
            open_credit=open_credit, debts=debts, debt_orders=debt_orders,
            discrepancies=listed, truncated=off + workflows_off > len(listed),
            workflows_checked=workflows, workflows_off=workflows_off, refused=refused,
        )
        if off or workflows_off:
            workflow.logger.warning("reconciliation: %d of %d orders' books are off, %d of %d disagree with their "
                                    "workflow", off, checked, workflows_off, workflows)
        else:
            workflow.logger.info("reconciliation: %d orders, %d transactions, all balanced", checked, transactions)
        return report


# ------------------------------------------------------------ client side


async def ensure_reconcile_schedule(client: Client, task_queue: str, *, cron: str = DAILY_CRON) -> bool:
    """Create the daily reconciliation schedule unless it exists. Returns True if
    it created it. An existing schedule is left alone: an operator may have
    paused it or changed its time."""
    from temporalio.client import (
        Schedule,
        ScheduleActionStartWorkflow,
        ScheduleAlreadyRunningError,
        SchedulePolicy,
        ScheduleSpec,
    )
    from temporalio.client import ScheduleOverlapPolicy

    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            ReconcileWorkflow.run, ReconcileInput(), id=SCHEDULED_WORKFLOW_ID, task_queue=task_queue,
        ),
        spec=ScheduleSpec(cron_expressions=[cron]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    try:
        await client.create_schedule(SCHEDULE_ID, schedule)
    except ScheduleAlreadyRunningError:
        return False
    return True
