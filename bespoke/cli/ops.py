"""`bespoke ops ...`: operator commands.

`bespoke ops reconcile` checks every order's books, and then the books against
every order's workflow (the same ReconcileWorkflow the daily schedule runs), and
prints what is off; it writes nothing. Exit 0 when every order balances, 2 when
any order is off.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from typing import Annotated

import typer

from bespoke.cli.errors import EXIT_REJECTED, CliError, run_async
from bespoke.cli.output import LazyConsole, cell, lines, text
from bespoke.settings import Settings, get_settings

app = typer.Typer(help="Operator commands: ledger reconciliation.", no_args_is_help=True)
out = LazyConsole()


async def _reconcile(settings: Settings, *, timeout: float, batch_size: int, settle: float):
    from bespoke.activities.reconcile import ReconcileInput
    from bespoke.runtime.client import connect
    from bespoke.workflows.reconcile import ReconcileWorkflow

    client = await connect(settings)
    workflow_id = f"bespoke-reconcile-manual-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:6]}"
    handle = await client.start_workflow(
        ReconcileWorkflow.run,
        ReconcileInput(batch_size=batch_size, settle_seconds=settle),
        id=workflow_id,
        task_queue=settings.task_queue,
        # No worker polling the queue would otherwise leave the run waiting forever.
        execution_timeout=timedelta(seconds=timeout),
    )
    from temporalio.client import WorkflowFailureError
    from temporalio.exceptions import TimeoutError as TemporalTimeout

    failure: CliError | None = None
    try:
        return workflow_id, await _with_progress(handle)
    except WorkflowFailureError as err:
        if isinstance(err.cause, TemporalTimeout):
            failure = CliError(
                f"reconciliation {workflow_id} did not finish within {timeout:g}s: "
                f"is a worker polling task queue {settings.task_queue!r}? (`bespoke worker`)"
            )
        else:
            cause = err.cause
            while getattr(cause, "cause", None) is not None:  # the activity's own error says what went wrong
                cause = cause.cause
            failure = CliError(f"reconciliation {workflow_id} failed: {getattr(cause, 'message', None) or cause}")
    raise failure


async def _with_progress(handle):
    """The workflow's result; meanwhile a progress bar on stderr, drawn from its
    `progress` query, when stderr is a terminal (scripts see nothing there)."""
    import asyncio

    from rich.console import Console

    from bespoke.workflows.reconcile import ReconcileWorkflow

    console = Console(stderr=True)
    if not console.is_terminal:
        return await handle.result()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    result = asyncio.ensure_future(handle.result())
    labels = {"books": "books", "workflows": "books vs workflows", "read model": "open orders' workflows",
              "done": "done"}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("starting", total=None)
        while not result.done():
            try:
                now = await handle.query(ReconcileWorkflow.progress)
                bar.update(task, description=labels.get(now.phase, now.phase), completed=now.done, total=now.total)
            except Exception:  # noqa: BLE001 - no worker has picked it up yet: keep waiting
                pass
            await asyncio.wait([result], timeout=0.5)
    return result.result()


async def _schedule(settings: Settings) -> tuple[bool, str]:
    from bespoke.runtime.client import connect
    from bespoke.workflows.reconcile import SCHEDULE_ID, ensure_reconcile_schedule

    client = await connect(settings)
    created = await ensure_reconcile_schedule(client, settings.task_queue)
    described = await client.get_schedule_handle(SCHEDULE_ID).describe()
    del client
    upcoming = described.info.next_action_times[:1]
    return created, upcoming[0].isoformat() if upcoming else "none (paused?)"


@app.command()
def reconcile(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
    schedule: Annotated[
        bool, typer.Option("--schedule", help="Create the daily reconciliation schedule (if missing) instead.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the reconciliation to finish.")] = 600.0,
    batch_size: Annotated[int, typer.Option(help="Orders checked per activity.")] = 500,
    settle: Annotated[
        float, typer.Option(help="Seconds to wait before re-checking an order that looks off (it may be mid-update).")
    ] = 2.0,
) -> None:
    """Check every order's books: each transaction sums to zero, escrow never goes
    negative and is empty once an order is completed, refunded or cancelled, and the
    read model's paid/refunded/released match the ledger. Then the books against
    every order workflow on the task queue: a running one's status, a completed
    one's result; a terminated or failed order (with any escrow it strands) and an
    order the read model lacks are reported. Writes nothing.

    Runs the ReconcileWorkflow on the worker's task queue (a worker must be running);
    exits 0 when all orders balance, 2 when any is off.
    """
    settings = get_settings()
    if schedule:
        created, next_run = run_async(_schedule(settings))
        verb = "created" if created else "already exists"
        if as_json:
            typer.echo(json.dumps({"schedule_id": "bespoke-reconcile-daily", "created": created, "next_run": next_run}))
        else:
            typer.echo(f"schedule bespoke-reconcile-daily {verb}; next run {next_run}")
        return
    if batch_size < 1 or timeout <= 0 or settle < 0:
        raise CliError("--batch-size and --timeout must be positive, --settle not negative", EXIT_REJECTED)
    workflow_id, report = run_async(_reconcile(settings, timeout=timeout, batch_size=batch_size, settle=settle))
    if as_json:
        typer.echo(json.dumps({"workflow_id": workflow_id, "clean": report.clean, **report.model_dump(mode="json")}))
    else:
        _print(workflow_id, report)
    if not report.clean:
        raise typer.Exit(EXIT_REJECTED)


def _print(workflow_id: str, report) -> None:
    summary = (f"{report.orders_checked} orders, {report.transactions_checked} transactions, "
               f"{report.workflows_checked} workflows checked ({workflow_id})")
    if report.debts:
        summary += f"; {report.debts} debt(s) owed on {report.debt_orders} order(s)"
    if report.clean:
        out.print(text(("books balance", "green"), f": {summary}"))
        return
    from rich.table import Table

    table = Table(title=f"{report.orders_off + report.workflows_off} problem(s) — {summary}")
    table.add_column("order")
    table.add_column("stage")
    table.add_column("check")
    table.add_column("problems")
    for d in report.discrepancies:
        table.add_row(cell(d.order_id), cell(d.stage or "(not in read model)"),
                      cell("books vs workflow" if d.check == "workflow" else "books"), lines(d.problems))
    out.print(table)
    if report.truncated:
        out.print(f"(first {len(report.discrepancies)} listed)")
