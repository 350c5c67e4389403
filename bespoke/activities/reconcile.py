"""Ledger reconciliation: check every order's books, read-only.

For each order (a batch at a time, by order id) the books must show:
- every transaction sums to zero, with its legs numbered 0..n-1 (nothing
  duplicated or lost) and in the order's currency;
- escrow never negative, transaction by transaction;
- escrow (and cash held by a COD carrier) zero once the read model says the
  order is terminal (completed, refunded, cancelled);
- the read model's paid / refunded / released_to_seller equal the ledger's sums
  (paid = buyer debits, refunded = buyer credits, released = seller balance);
- no ledger entries for an order the read model does not know.

Then the books are compared with the orders' workflows themselves
(`reconcile_workflows`, a page of Temporal's visibility list at a time): every
OrderWorkflow on the task queue, running or closed, terminated and failed ones
included. A running order's ledger must hold what its `status` query says
(paid, refunded, released, escrow); a completed one's what its result says,
with escrow empty; an order whose workflow was terminated, failed, cancelled or
timed out is reported (it can never move its money again), with any escrow it
still holds as stranded; and a workflow the read model has no row for is
reported as missing; so is, the other way round, an order the read model holds
open whose workflow Temporal does not have (`reconcile_rows`). The ledger is the database's, the truth is the workflow's:
this is what catches a database that lost orders or a workflow killed from the
Web UI, which the database alone cannot see.

The workflow posts a transaction and then projects the read model, so an order
caught between the two looks off for a moment: suspects are re-read after
`settle_seconds` and reported only if still off. Nothing is written.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from pydantic import Field
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio import activity

from bespoke.domain import search_attributes as sa
from bespoke.domain.models import TERMINAL_STAGES, Account, Frozen
from bespoke.store.db import check_file
from bespoke.store.tables import DebtRow, LedgerEntry, OrderRow

# A report lists at most this many orders in full (payload size); the count is exact.
MAX_LISTED = 500


class ReconcileInput(Frozen):
    batch_size: int = Field(default=500, ge=1, le=10_000)
    settle_seconds: float = Field(default=2.0, ge=0, le=300)


class ReconcileBatch(Frozen):
    after: str = ""  # order ids greater than this
    limit: int = 500
    settle_seconds: float = 2.0


class Discrepancy(Frozen):
    order_id: str
    stage: str | None  # None: the read model has no such order
    problems: list[str]
    # "books": the database disagrees with itself; "workflow": the books disagree
    # with the order's workflow (or the workflow ended without finishing).
    check: str = "books"


class BatchReport(Frozen):
    checked: int
    transactions: int
    last_order_id: str | None
    discrepancies: list[Discrepancy] = []
    open_credit: int = 0  # orders whose buyer still owes an account-period credit
    debts: int = 0  # debts and claims open on the orders (see bespoke.domain.models.Debt)
    debt_orders: int = 0  # orders with at least one
    total: int | None = None  # orders in the read model (first batch only: progress)


class WorkflowPage(Frozen):
    """One page of the order workflows on `task_queue` (Temporal visibility)."""

    task_queue: str
    page_token: str = ""  # base64 of Temporal's next_page_token; "" = the first page
    page_size: int = Field(default=200, ge=1, le=1_000)
    settle_seconds: float = 2.0


class WorkflowPageReport(Frozen):
    checked: int
    next_page_token: str | None  # None: this was the last page
    discrepancies: list[Discrepancy] = []
    refused: int = 0  # orders whose input the workflow refused at start (never in the books)
    total: int | None = None  # order workflows on the task queue (first page only: progress)


class RowsPage(Frozen):
    """Read-model orders not yet closed, by id, after `after`: does each still have a workflow?"""

    after: str = ""
    limit: int = Field(default=500, ge=1, le=10_000)


class RowsReport(Frozen):
    checked: int
    last_order_id: str | None  # None: this was the last page
    discrepancies: list[Discrepancy] = []


class ReconcileProgress(Frozen):
    """What a running reconciliation has done so far (its `progress` query)."""

    phase: str  # "books", "workflows", "done"
    done: int
    total: int | None


class ReconcileReport(Frozen):
    orders_checked: int
    transactions_checked: int
    orders_off: int  # orders whose books disagree with themselves
    open_credit: int = 0
    debts: int = 0  # debts and claims a party owes on an order, as the workflows last projected them
    debt_orders: int = 0
    discrepancies: list[Discrepancy] = []  # the first MAX_LISTED
    truncated: bool = False
    workflows_checked: int = 0
    workflows_off: int = 0  # orders whose books disagree with their workflow
    refused: int = 0

    @property
    def clean(self) -> bool:
        return self.orders_off == 0 and self.workflows_off == 0


@dataclass
class LedgerSums:
    paid: int = 0  # buyer debits
    refunded: int = 0  # buyer credits
    balances: dict[str, int] | None = None

    def __getitem__(self, account: Account) -> int:
        return (self.balances or {}).get(account, 0)


def ledger_sums(legs: Iterable[LedgerEntry]) -> LedgerSums:
    sums = LedgerSums(balances=defaultdict(int))
    for leg in legs:
        sums.balances[leg.account] += leg.amount
        if leg.account == Account.BUYER:
            if leg.amount < 0:
                sums.paid -= leg.amount
            else:
                sums.refunded += leg.amount
    return sums


def check_order(order: OrderRow | None, legs: Iterable[LedgerEntry]) -> list[str]:
    """Everything wrong with one order's books ([] when they balance). `legs`
    in posting order (ledger id)."""
    problems: list[str] = []
    by_txn: dict[str, list[LedgerEntry]] = defaultdict(list)
    for leg in legs:
        by_txn[leg.txn_key].append(leg)
    balances: dict[str, int] = defaultdict(int)
    paid = refunded = 0
    escrow_went_negative = False
    for key, txn in by_txn.items():
        total = sum(leg.amount for leg in txn)
        if total != 0:
            problems.append(f"transaction {key} sums to {total}, not 0")
        numbers = sorted(leg.leg for leg in txn)
        if numbers != list(range(len(txn))):
            problems.append(f"transaction {key} has legs {numbers}, expected 0..{len(txn) - 1}")
        if order is not None and any(leg.currency != order.currency for leg in txn):
            problems.append(f"transaction {key} is not all in {order.currency}")
        for leg in txn:
            balances[leg.account] += leg.amount
            if leg.account == Account.BUYER:
                if leg.amount < 0:
                    paid -= leg.amount
                else:
                    refunded += leg.amount
        if balances[Account.ESCROW] < 0 and not escrow_went_negative:
            escrow_went_negative = True
            problems.append(f"escrow negative ({balances[Account.ESCROW]}) after {key}")
    if order is None:
        if by_txn:
            problems.append(f"{len(by_txn)} ledger transaction(s) but no order in the read model")
        return problems
    if order.stage in {s.value for s in TERMINAL_STAGES}:
        for account in (Account.ESCROW, Account.CARRIER_COD):
            if balances[account]:
                problems.append(f"{account.value} holds {balances[account]} although the order is {order.stage}")
    for name, model, ledger in (
        ("paid", order.paid, paid),
        ("refunded", order.refunded, refunded),
        ("released_to_seller", order.released_to_seller, balances[Account.SELLER]),
    ):
        if model != ledger:
            problems.append(f"read model {name} {model} != ledger {ledger}")
    return problems


def _load(session: Session, order_ids: list[str]) -> tuple[dict[str, OrderRow], dict[str, list[LedgerEntry]]]:
    orders = {o.order_id: o for o in session.exec(select(OrderRow).where(col(OrderRow.order_id).in_(order_ids)))}
    legs: dict[str, list[LedgerEntry]] = defaultdict(list)
    rows = session.exec(
        select(LedgerEntry).where(col(LedgerEntry.order_id).in_(order_ids)).order_by(col(LedgerEntry.id))
    )
    for row in rows:
        legs[row.order_id].append(row)
    return orders, legs


def reconcile_batch(*, engine: Engine, batch: ReconcileBatch, sleep=time.sleep) -> BatchReport:
    """Check the next `batch.limit` orders (by id) after `batch.after`, plus any
    ledger-only order ids in the same id range."""
    check_file(engine)  # never vouch for a deleted or replaced SQLite file
    with Session(engine) as session:
        ids = list(session.exec(
            select(OrderRow.order_id).where(OrderRow.order_id > batch.after)
            .order_by(col(OrderRow.order_id)).limit(batch.limit)
        ))
        last = ids[-1] if len(ids) == batch.limit else None
        # Ledger entries whose order the read model lacks, in this batch's id range.
        orphan_query = select(LedgerEntry.order_id).distinct().where(LedgerEntry.order_id > batch.after)
        if last is not None:
            orphan_query = orphan_query.where(LedgerEntry.order_id <= last)
        orphans = [oid for oid in session.exec(orphan_query) if oid not in set(ids)]
        checked = ids + orphans
        orders, legs = _load(session, checked)
    problems = {oid: check_order(orders.get(oid), legs.get(oid, ())) for oid in checked}
    open_credit = sum(
        1 for oid in ids
        if sum(leg.amount for leg in legs.get(oid, ()) if leg.account == Account.CREDIT_LINE) < 0
    )
    transactions = sum(len({leg.txn_key for leg in legs.get(oid, ())}) for oid in checked)
    with Session(engine) as session:
        debt_rows = session.exec(select(DebtRow.order_id).where(col(DebtRow.order_id).in_(ids))).all() if ids else []
    suspects = [oid for oid, found in problems.items() if found]
    if suspects and batch.settle_seconds:
        # An order mid-_sync (ledger posted, read model not yet) settles within moments.
        sleep(batch.settle_seconds)
        with Session(engine) as session:
            fresh_orders, fresh_legs = _load(session, suspects)
        for oid in suspects:
            problems[oid] = check_order(fresh_orders.get(oid), fresh_legs.get(oid, ()))
            if oid in fresh_orders:
                orders[oid] = fresh_orders[oid]
    discrepancies = [
        Discrepancy(order_id=oid, stage=orders[oid].stage if oid in orders else None, problems=found)
        for oid, found in sorted(problems.items()) if found
    ]
    return BatchReport(
        checked=len(checked),
        transactions=transactions,
        last_order_id=last,
        discrepancies=discrepancies,
        open_credit=open_credit,
        debts=len(debt_rows),
        debt_orders=len(set(debt_rows)),
        total=_count_orders(engine) if not batch.after else None,
    )


def _count_orders(engine: Engine) -> int:
    from sqlalchemy import func

    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(OrderRow)).one())


# ------------------------------------------------------------ books against workflows

ORDER_WORKFLOW = "OrderWorkflow"
# Running orders are queried this many at a time (each query is a workflow task on
# a worker; a cold one replays the order's history).
QUERY_CONCURRENCY = 8
QUERY_TIMEOUT = timedelta(seconds=15)
# Why an order's workflow may end without the books: it refused its own input.
REFUSED_TYPE = "InvalidOrderInput"


def orders_query(task_queue: str) -> str:
    """The visibility query for the order workflows on `task_queue`: one per order
    (the runs an order continued from are left out, its current run stands for it)."""
    if "'" in task_queue or "\\" in task_queue:
        raise ValueError(f"task queue {task_queue!r}: quotes and backslashes are not supported")
    return (f"WorkflowType = '{ORDER_WORKFLOW}' AND TaskQueue = '{task_queue}' "
            f"AND ExecutionStatus != 'ContinuedAsNew'")


@dataclass
class WorkflowFacts:
    """What an order's workflow says about its money (None where it cannot say)."""

    order_id: str
    status: str  # running, completed, terminated, failed, canceled, timed_out
    stage: str | None = None
    paid: int | None = None
    refunded: int | None = None
    released_to_seller: int | None = None
    escrow: int | None = None
    reason: str = ""  # why a workflow ended without completing
    refused: bool = False


async def workflow_facts(client, workflow_id: str, run_id: str | None, status: int) -> WorkflowFacts:
    """Ask Temporal about one order: the `status` query of a running workflow, the
    result (or failure) of a closed one, read from its close event only."""
    from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
    from temporalio.exceptions import ApplicationError, TerminatedError
    from temporalio.service import RPCError

    from bespoke.domain.models import OrderResult, OrderView

    oid = workflow_id.removeprefix("order-")
    name = WorkflowExecutionStatus(status).name.lower()
    facts = WorkflowFacts(order_id=oid, status=name)
    handle = client.get_workflow_handle(workflow_id, run_id=run_id, result_type=OrderResult)
    if status == WorkflowExecutionStatus.RUNNING:
        try:
            view = await handle.query("status", result_type=OrderView, rpc_timeout=QUERY_TIMEOUT)
        except Exception as err:  # noqa: BLE001 - reported, never fatal to the reconciliation
            facts.reason = f"its status query failed: {(getattr(err, 'message', None) or str(err))[:200]}"
            return facts
        facts.stage, facts.escrow = view.stage.value, view.escrow
        facts.paid, facts.refunded, facts.released_to_seller = view.paid, view.refunded, view.released_to_seller
        return facts
    try:
        result = await handle.result(follow_runs=False, rpc_timeout=QUERY_TIMEOUT)
    except WorkflowFailureError as err:
        cause = err.cause
        facts.reason = (getattr(cause, "message", None) or str(cause) or type(cause).__name__)[:300]
        if isinstance(cause, ApplicationError) and cause.type == REFUSED_TYPE:
            facts.refused = True
        elif isinstance(cause, TerminatedError):
            facts.reason = f"terminated: {facts.reason}" if facts.reason else "terminated"
        return facts
    except RPCError as err:
        facts.reason = f"Temporal could not answer for it: {err.message[:200]}"
        facts.status = f"{name} (unreadable)"
        return facts
    facts.stage = result.stage.value
    facts.paid, facts.refunded, facts.released_to_seller = result.paid, result.refunded, result.released_to_seller
    facts.escrow = 0  # a completed order's escrow is empty by construction; the ledger must agree
    return facts


def check_workflow(facts: WorkflowFacts, order: OrderRow | None, legs: Iterable[LedgerEntry]) -> list[str]:
    """Everything on which the books (ledger, read model) and the order's workflow
    disagree ([] when they agree)."""
    legs = list(legs)
    if facts.refused and order is None and not legs:
        return []  # refused at start: never an order, nothing booked
    problems: list[str] = []
    sums = ledger_sums(legs)
    escrow, cod = sums[Account.ESCROW], sums[Account.CARRIER_COD]
    if order is None:
        problems.append(f"workflow order-{facts.order_id} is {facts.status} but the read model has no such order")
    if facts.status == "running" and facts.paid is None:
        problems.append(f"workflow is running but {facts.reason}")
    elif facts.status == "running" or facts.status == "completed":
        for name, told, booked in (
            ("paid", facts.paid, sums.paid),
            ("refunded", facts.refunded, sums.refunded),
            ("released_to_seller", facts.released_to_seller, sums[Account.SELLER]),
            ("escrow", facts.escrow, escrow),
        ):
            if told != booked:
                problems.append(f"workflow {name} {told} != ledger {booked}")
        if facts.status == "completed" and cod:
            problems.append(f"carrier_cod holds {cod} although the workflow completed")
        if order is not None and facts.status == "completed" and order.stage != facts.stage:
            problems.append(f"read model stage {order.stage} != workflow's final stage {facts.stage}")
    else:
        where = f" (read model stage {order.stage})" if order is not None else ""
        problems.append(f"workflow {facts.status}{where}: {facts.reason or 'ended without finishing the order'}")
        for account, held in ((Account.ESCROW, escrow), (Account.CARRIER_COD, cod)):
            if held:
                problems.append(f"{held} stranded in {account.value}: the workflow is {facts.status.split()[0]} and "
                                f"can never release it")
    return problems


async def reconcile_workflows(*, client, engine: Engine, page: WorkflowPage, sleep=asyncio.sleep,
                              heartbeat=lambda: None) -> WorkflowPageReport:
    """Check one page of order workflows against the books."""
    query = orders_query(page.task_queue)
    listing = client.list_workflows(query, page_size=page.page_size,
                                    next_page_token=base64.b64decode(page.page_token) if page.page_token else None)
    await listing.fetch_next_page()
    executions = [(e.id, e.run_id, int(e.status)) for e in listing.current_page or ()]
    # The stage each workflow last published (search attribute BespokeStage): what
    # a report shows for an order the read model lacks and its workflow cannot say.
    published = {e.id.removeprefix("order-"): e.typed_search_attributes.get(sa.STAGE)
                 for e in listing.current_page or ()}
    token = listing.next_page_token
    total = (await client.count_workflows(query)).count if not page.page_token else None
    semaphore = asyncio.Semaphore(QUERY_CONCURRENCY)

    async def facts_for(item: tuple[str, str, int]) -> WorkflowFacts:
        async with semaphore:
            heartbeat()
            return await workflow_facts(client, *item)

    async def check(items: list[tuple[str, str, int]]) -> dict[str, tuple[WorkflowFacts, list[str], OrderRow | None]]:
        found = await asyncio.gather(*(facts_for(item) for item in items))
        ids = [f.order_id for f in found]
        check_file(engine)
        orders, legs = await asyncio.to_thread(_load_readonly, engine, ids)
        return {f.order_id: (f, check_workflow(f, orders.get(f.order_id), legs.get(f.order_id, ())),
                             orders.get(f.order_id)) for f in found}

    results = await check(executions)
    suspects = [item for item in executions if results[item[0].removeprefix("order-")][1]]
    if suspects and page.settle_seconds:
        # A running order may be mid-sync (its ledger posting not yet written), and
        # a new one may not have written its first row: look again before reporting.
        await sleep(page.settle_seconds)
        results.update(await check(suspects))
    discrepancies = [
        Discrepancy(order_id=oid, stage=order.stage if order is not None else facts.stage or published.get(oid),
                    problems=problems, check="workflow")
        for oid, (facts, problems, order) in sorted(results.items()) if problems
    ]
    refused = sum(1 for facts, problems, _ in results.values() if facts.refused and not problems)
    return WorkflowPageReport(
        checked=len(executions), discrepancies=discrepancies, refused=refused, total=total,
        next_page_token=base64.b64encode(token).decode() if token else None,
    )


def _open_rows(engine: Engine, page: RowsPage) -> list[tuple[str, str]]:
    check_file(engine)
    closed = [s.value for s in TERMINAL_STAGES]
    with Session(engine) as session:
        return [tuple(r) for r in session.exec(
            select(OrderRow.order_id, OrderRow.stage).where(OrderRow.order_id > page.after)
            .where(col(OrderRow.stage).not_in(closed)).order_by(col(OrderRow.order_id)).limit(page.limit)
        )]


async def reconcile_rows(*, client, engine: Engine, page: RowsPage, heartbeat=lambda: None) -> RowsReport:
    """The other direction: an order the read model holds open must have a workflow.
    (A closed order's workflow may be gone legitimately, after the namespace's
    retention period.) Each is asked with `describe`, which is strongly consistent
    where the visibility list may lag."""
    from temporalio.service import RPCError, RPCStatusCode

    rows = await asyncio.to_thread(_open_rows, engine, page)
    semaphore = asyncio.Semaphore(QUERY_CONCURRENCY)

    async def missing(oid: str, stage: str) -> Discrepancy | None:
        async with semaphore:
            heartbeat()
            try:
                await client.get_workflow_handle(f"order-{oid}").describe(rpc_timeout=QUERY_TIMEOUT)
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
                return Discrepancy(order_id=oid, stage=stage, check="workflow", problems=[
                    f"the read model has the order in stage {stage}, but Temporal has no workflow order-{oid}"])
            return None

    found = await asyncio.gather(*(missing(oid, stage) for oid, stage in rows))
    return RowsReport(checked=len(rows), last_order_id=rows[-1][0] if len(rows) == page.limit else None,
                      discrepancies=[d for d in found if d is not None])


def _load_readonly(engine: Engine, order_ids: list[str]):
    with Session(engine) as session:
        return _load(session, order_ids)


class ReconcileActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn(name="reconcile_batch")
    def reconcile_batch(self, batch: ReconcileBatch) -> BatchReport:
        report = reconcile_batch(engine=self._engine, batch=batch, sleep=self._sleep)
        for d in report.discrepancies:
            activity.logger.warning("books off for order %s (%s): %s", d.order_id, d.stage, "; ".join(d.problems))
        return report

    @activity.defn(name="reconcile_workflows")
    async def reconcile_workflows(self, page: WorkflowPage) -> WorkflowPageReport:
        async def sleep(seconds: float) -> None:
            end = time.monotonic() + seconds
            while (left := end - time.monotonic()) > 0:
                activity.heartbeat()
                await asyncio.sleep(min(left, 1.0))

        report = await reconcile_workflows(client=activity.client(), engine=self._engine, page=page, sleep=sleep,
                                           heartbeat=activity.heartbeat)
        for d in report.discrepancies:
            activity.logger.warning("books and workflow disagree for order %s (%s): %s", d.order_id, d.stage,
                                    "; ".join(d.problems))
        return report

    @activity.defn(name="reconcile_rows")
    async def reconcile_rows(self, page: RowsPage) -> RowsReport:
        report = await reconcile_rows(client=activity.client(), engine=self._engine, page=page,
                                      heartbeat=activity.heartbeat)
        for d in report.discrepancies:
            activity.logger.warning("order %s (%s) has no workflow", d.order_id, d.stage)
        return report

    @staticmethod
    def _sleep(seconds: float) -> None:
        # Heartbeat while waiting so a cancelled reconciliation stops promptly.
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            activity.heartbeat()
            time.sleep(min(left, 1.0))
