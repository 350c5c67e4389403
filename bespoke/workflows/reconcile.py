"""ReconcileWorkflow: check every order's books against the ledger, read-only.

A Temporal Schedule starts it daily (`ensure_reconcile_schedule`, called when a
worker starts and by `bespoke ops reconcile --schedule`); `bespoke ops
reconcile` runs it on demand. The checks themselves live in
`bespoke.activities.reconcile`; this workflow only pages through the orders a
batch at a time, so ten thousand orders are twenty short activities, not one
long one.
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
        ReconcileReport,
    )

if TYPE_CHECKING:
    from temporalio.client import Client

SCHEDULE_ID = "bespoke-reconcile-daily"
SCHEDULED_WORKFLOW_ID = "bespoke-reconcile"
# 03:00 UTC: after the day's settlements, before the working day in Asia and Europe.
DAILY_CRON = "0 3 * * *"

BATCH = {
    "start_to_close_timeout": timedelta(minutes=10),
    "heartbeat_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5),
}


@workflow.defn
class ReconcileWorkflow:
    @workflow.run
    async def run(self, inp: ReconcileInput) -> ReconcileReport:
        after = ""
        checked = transactions = off = open_credit = debts = debt_orders = 0
        listed = []
        while True:
            batch = await workflow.execute_activity_method(
                ReconcileActivities.reconcile_batch,
                ReconcileBatch(after=after, limit=inp.batch_size, settle_seconds=inp.settle_seconds),
                **BATCH,
            )
            checked += batch.checked
            transactions += batch.transactions
            open_credit += batch.open_credit
            debts += batch.debts
            debt_orders += batch.debt_orders
            off += len(batch.discrepancies)
            listed.extend(batch.discrepancies[: max(MAX_LISTED - len(listed), 0)])
            if batch.last_order_id is None:
                break
            after = batch.last_order_id
        report = ReconcileReport(
            orders_checked=checked, transactions_checked=transactions, orders_off=off,
            open_credit=open_credit, debts=debts, debt_orders=debt_orders, discrepancies=listed, truncated=off > len(listed),
        )
        if off:
            workflow.logger.warning("reconciliation: %d of %d orders' books are off", off, checked)
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
