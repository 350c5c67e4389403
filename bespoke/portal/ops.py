"""Operations pages: the work queues and the arbitration preview.

Queues read the read model in a fixed number of queries per page (no per-row
loops): disputes awaiting arbitration with both sides' evidence, orders whose
rules decision is blocked, overdue credit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session, col, select

from bespoke.cli.errors import Rejected
from bespoke.portal.orders import _money, _order_page, order_client, require, view_for
from bespoke.portal.web import PortalError, PortalRoute, engine_for, render
from bespoke.store.tables import CreditReservation, OrderRow, TimelineRow

router = APIRouter(route_class=PortalRoute, include_in_schema=False)
QUEUE_LIMIT = 100
CASE_KINDS = ("case_opened", "return_response", "dispute_opened", "evidence")


def dispute_queue(s: Session) -> list[dict[str, Any]]:
    orders = list(s.exec(select(OrderRow).where(OrderRow.stage == "disputed")
                         .order_by(col(OrderRow.updated_at)).limit(QUEUE_LIMIT)))
    if not orders:
        return []
    rows = s.exec(select(TimelineRow).where(col(TimelineRow.order_id).in_([o.order_id for o in orders]),
                                            col(TimelineRow.kind).in_(CASE_KINDS))
                  .order_by(col(TimelineRow.order_id), col(TimelineRow.seq)))
    sides: dict[str, dict[str, list[TimelineRow]]] = {o.order_id: {"buyer": [], "seller": []} for o in orders}
    for r in rows:
        side = r.actor.split(":", 1)[0]
        if side in ("buyer", "seller"):
            sides[r.order_id][side].append(r)
    return [{"order": o, "buyer": sides[o.order_id]["buyer"], "seller": sides[o.order_id]["seller"]} for o in orders]


def blocked_queue(s: Session) -> list[TimelineRow]:
    """Orders whose latest blocked/unblocked entry says blocked."""
    rows = s.exec(select(TimelineRow).where(col(TimelineRow.kind).in_(("decision_blocked", "decision_unblocked")))
                  .order_by(col(TimelineRow.at).desc()).limit(QUEUE_LIMIT * 4))
    latest: dict[str, TimelineRow] = {}
    for r in rows:
        latest.setdefault(r.order_id, r)
    return [r for r in latest.values() if r.kind == "decision_blocked"][:QUEUE_LIMIT]


def overdue_credit(s: Session) -> list[CreditReservation]:
    return list(s.exec(select(CreditReservation).where(CreditReservation.overdue == True,  # noqa: E712
                                                       CreditReservation.released == False)  # noqa: E712
                       .limit(QUEUE_LIMIT)))


@router.get("/ops")
async def queues(request: Request) -> Response:
    require(request, "ops")
    with Session(engine_for(request)) as s:
        disputes, blocked, credit = dispute_queue(s), blocked_queue(s), overdue_credit(s)
    return render(request, "ops.html", disputes=disputes, blocked=blocked, credit=credit)


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
