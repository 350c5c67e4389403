"""Operations pages: the work queues and the arbitration preview.

Queues (each paged, each row linking to the order page):
    /ops          disputes awaiting arbitration, both sides' evidence side by side
    /ops/due      orders whose next step falls due within 24 hours (or is past due)
    /ops/blocked  orders whose rules decision is blocked
    /ops/books    orders whose books did not reconcile at the last reconciliation
    /ops/credit   overdue account-period credit

The read-model queues make a fixed number of queries per page whatever the number
of orders (every queue's count in one statement, then a page of rows; the dispute
queue one more for its case entries), on indexed columns (orders.stage,
next_step_due, blocked). /ops/books
reads the newest completed ReconcileWorkflow's report from Temporal (one list
call; the report itself is kept per run, so it is fetched once)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import func
from sqlmodel import Session, col, select

from bespoke.cli.errors import Rejected
from bespoke.portal.orders import _money, _order_page, order_client, require, time_left, view_for
from bespoke.portal.web import PortalError, PortalRoute, engine_for, render, settings_for
from bespoke.store.tables import CreditReservation, OrderRow, TimelineRow

router = APIRouter(route_class=PortalRoute, include_in_schema=False)
PAGE_SIZE = 50
DISPUTE_PAGE_SIZE = 20  # each dispute shows both sides' entries
MAX_PAGE = 1_000  # 50,000 rows deep: past that, narrow the queue down another way
DUE_WITHIN = timedelta(hours=24)
CASE_KINDS = ("case_opened", "return_response", "dispute_opened", "evidence")
Page = Query(default=1, ge=1, le=MAX_PAGE)


@dataclass(frozen=True)
class Paged:
    """One page of a queue: its rows, how many the whole queue holds, which page."""

    rows: list[Any]
    total: int
    page: int
    size: int

    @property
    def pages(self) -> int:
        return max((self.total + self.size - 1) // self.size, 1)


def _paged(s: Session, query: Any, total: int, page: int, size: int) -> Paged:
    rows = list(s.exec(query.offset((page - 1) * size).limit(size))) if total > (page - 1) * size else []
    return Paged(rows=rows, total=total, page=page, size=size)


DISPUTED = (OrderRow.stage == "disputed",)


def _due(now: datetime) -> tuple[Any, ...]:
    return col(OrderRow.next_step_due).is_not(None), col(OrderRow.next_step_due) <= now + DUE_WITHIN


BLOCKED = (col(OrderRow.blocked).is_not(None),)
OVERDUE_CREDIT = (CreditReservation.overdue == True, CreditReservation.released == False)  # noqa: E712


def queue_counts(s: Session, now: datetime) -> dict[str, int]:
    """How many rows each read-model queue holds: one statement, each count on an
    index (orders.stage, next_step_due, blocked; credit_reservations is small)."""
    def count(table: Any, where: tuple[Any, ...]) -> Any:
        return select(func.count()).select_from(table).where(*where).scalar_subquery()

    row = s.exec(select(count(OrderRow, DISPUTED), count(OrderRow, _due(now)), count(OrderRow, BLOCKED),
                        count(CreditReservation, OVERDUE_CREDIT))).one()
    return dict(zip(("disputes", "due", "blocked", "credit"), (int(n) for n in row)))


def dispute_queue(s: Session, total: int, page: int = 1) -> Paged:
    """Disputed orders, longest waiting first, each with both sides' case entries."""
    found = _paged(s, select(OrderRow).where(*DISPUTED).order_by(col(OrderRow.updated_at), col(OrderRow.order_id)),
                   total, page, DISPUTE_PAGE_SIZE)
    orders = found.rows
    sides: dict[str, dict[str, list[TimelineRow]]] = {o.order_id: {"buyer": [], "seller": []} for o in orders}
    if orders:
        rows = s.exec(select(TimelineRow).where(col(TimelineRow.order_id).in_(list(sides)),
                                                col(TimelineRow.kind).in_(CASE_KINDS))
                      .order_by(col(TimelineRow.order_id), col(TimelineRow.seq)))
        for r in rows:
            side = r.actor.split(":", 1)[0]
            if side in ("buyer", "seller"):
                sides[r.order_id][side].append(r)
    rows_out = [{"order": o, "buyer": sides[o.order_id]["buyer"], "seller": sides[o.order_id]["seller"]}
                for o in orders]
    return Paged(rows=rows_out, total=found.total, page=page, size=found.size)


def due_queue(s: Session, now: datetime, total: int, page: int = 1) -> Paged:
    """Orders whose next step is due within DUE_WITHIN (past-due ones first: their
    default action has not run yet, so a worker may be down)."""
    return _paged(s, select(OrderRow).where(*_due(now)).order_by(col(OrderRow.next_step_due),
                                                                 col(OrderRow.order_id)),
                  total, page, PAGE_SIZE)


def blocked_queue(s: Session, total: int, page: int = 1) -> Paged:
    """Orders whose rules decision is blocked (the workflow projects why), longest first."""
    return _paged(s, select(OrderRow).where(*BLOCKED).order_by(col(OrderRow.updated_at), col(OrderRow.order_id)),
                  total, page, PAGE_SIZE)


def overdue_credit(s: Session, total: int, page: int = 1) -> Paged:
    """Account-period credit whose repayment is overdue (the buyer's credit is frozen)."""
    return _paged(s, select(CreditReservation).where(*OVERDUE_CREDIT).order_by(col(CreditReservation.order_id)),
                  total, page, PAGE_SIZE)


def _left(now: datetime) -> Any:
    def left(due: datetime) -> str:  # SQLite hands back naive UTC
        return time_left(due if due.tzinfo else due.replace(tzinfo=UTC), now)

    return left


async def _queue_page(request: Request, name: str, read: Any, page: int, **extra: Any) -> Response:
    require(request, "ops")
    now = datetime.now(UTC)
    with Session(engine_for(request)) as s:
        counts = queue_counts(s, now)
        found = read(s, now, counts[name], page)
    return render(request, "ops.html", queue=name, found=found, counts=counts, left=_left(now), **extra)


@router.get("/ops")
async def queues(request: Request, page: int = Page) -> Response:
    return await _queue_page(request, "disputes", lambda s, now, total, p: dispute_queue(s, total, p), page)


@router.get("/ops/due")
async def due(request: Request, page: int = Page) -> Response:
    return await _queue_page(request, "due", due_queue, page)


@router.get("/ops/blocked")
async def blocked(request: Request, page: int = Page) -> Response:
    return await _queue_page(request, "blocked", lambda s, now, total, p: blocked_queue(s, total, p), page)


@router.get("/ops/credit")
async def credit(request: Request, page: int = Page) -> Response:
    return await _queue_page(request, "credit", lambda s, now, total, p: overdue_credit(s, total, p), page)


# ----------------------------------------------------------------- books (reconciliation)


@dataclass(frozen=True)
class Reconciliation:
    workflow_id: str
    run_id: str
    closed_at: datetime | None
    report: Any  # ReconcileReport


_RECONCILE_QUERY = "WorkflowType = 'ReconcileWorkflow' AND TaskQueue = '{tq}' AND ExecutionStatus = 'Completed'"


async def last_reconciliation(request: Request) -> Reconciliation | None:
    """The newest completed reconciliation on this task queue (the daily schedule's
    or `bespoke ops reconcile`'s), None if none has run (or Temporal has forgotten
    it: closed runs last the namespace's retention period)."""
    from bespoke.activities.reconcile import ReconcileReport, orders_query

    oc = await order_client(request)
    task_queue = settings_for(request).task_queue
    orders_query(task_queue)  # refuses a task queue name that cannot be quoted
    listing = oc.client.list_workflows(_RECONCILE_QUERY.format(tq=task_queue), page_size=1, limit=1)
    latest = None
    async for execution in listing:
        latest = execution
        break
    if latest is None:
        return None
    cache: dict[str, Reconciliation] = request.app.state.__dict__.setdefault("bespoke_reconciliations", {})
    if latest.run_id not in cache:
        handle = oc.client.get_workflow_handle(latest.id, run_id=latest.run_id, result_type=ReconcileReport)
        report = await handle.result(follow_runs=False, rpc_timeout=timedelta(seconds=15))
        cache.clear()  # only the newest is ever shown
        cache[latest.run_id] = Reconciliation(latest.id, latest.run_id, latest.close_time, report)
    return cache[latest.run_id]


@router.get("/ops/books")
async def books(request: Request, page: int = Page) -> Response:
    """Orders whose books did not reconcile at the newest reconciliation: the
    database against itself ("books") and against the order's workflow ("workflow")."""
    require(request, "ops")
    from bespoke.cli.errors import Unreachable

    try:
        found = await asyncio.wait_for(last_reconciliation(request), timeout=20)
    except (Unreachable, TimeoutError, asyncio.TimeoutError):
        raise PortalError(503, "The order service is not answering right now: try again in a moment.") from None
    except Exception as err:  # noqa: BLE001 - an RPC error from Temporal: say so, never a traceback
        raise PortalError(503, f"The last reconciliation could not be read: {str(err)[:200]}") from None
    listed = list(found.report.discrepancies) if found is not None else []
    rows = listed[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
    paged = Paged(rows=rows, total=len(listed), page=page, size=PAGE_SIZE)
    now = datetime.now(UTC)
    with Session(engine_for(request)) as s:
        counts = queue_counts(s, now)
    return render(request, "ops.html", queue="books", found=paged, counts=counts, left=_left(now),
                  reconciliation=found)


@router.post("/orders/{order_id}/arbitrate/preview")
async def arbitrate_preview(request: Request, order_id: str) -> Response:
    """What arbitrating with this refund would decide, before committing: the
    refund decision the workflow will take, on the order's facts now. Changes nothing."""
    principal = require(request, "ops")
    form = await request.form()
    refund, note = str(form.get("refund", ""))[:40], str(form.get("note", ""))
    view = await view_for(request, principal, order_id)
    if view.open_case is None or view.open_case.state != "disputed":
        raise PortalError(409, "This order has no dispute waiting for a decision.")
    try:
        amount = _money({"refund": refund}, "refund", view.currency)
    except Rejected as err:
        return await _order_page(request, principal, order_id, error=str(err), status=422)
    preview = await refund_preview(request, view, amount) if amount else None
    return await _order_page(request, principal, order_id, preview=preview, preview_refund=refund,
                             preview_note=note[:4000])


async def refund_preview(request: Request, view: Any, amount: int) -> Any:
    """decide_refund on the facts the workflow's refund will use (as
    workflows/aftersales.py `_refund` builds them), from the order's live view."""
    from bespoke.rules import PolicyPin, RefundFacts, decide_refund
    from bespoke.store.policies import order_policy

    oc = await order_client(request)
    pinned = await oc.query(view.order_id, "pinned_policy", result_type=dict | None)
    pin = await oc.query(view.order_id, "policy_pin", result_type=dict)
    case = view.open_case
    refundable = view.paid + view.credit_outstanding - view.refunded
    facts = RefundFacts(
        reason=case.reason, outcome="arbitration", requested_refund=max(min(amount, refundable), 1),
        price=view.price, currency=view.currency, paid_total=view.paid + view.credit_outstanding,
        refunded_so_far=view.refunded, escrow_balance=view.escrow, released_to_seller=max(view.released_to_seller, 0),
        platform_fee_charged=view.platform_fee, return_shipping_payer=case.return_shipping_payer or "seller",
        as_of=datetime.now(UTC),
    )
    return decide_refund(order_policy(engine_for(request), pinned, pin), facts, decision_id=f"{view.order_id}:preview",
                         pin=PolicyPin.model_validate(pin))
