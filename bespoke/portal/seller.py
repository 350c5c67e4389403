"""The seller's cash-flow view: money held in escrow per order and when it is due
to be released under the running deadlines, drawn as an inline SVG chart (no
script, no inline style: the CSP allows neither)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func
from sqlmodel import Session, col, select

from bespoke.cli.errors import CliError
from bespoke.portal.orders import order_client, require
from bespoke.portal.web import PortalRoute, engine_for, render
from bespoke.store.tables import LedgerEntry, OrderRow

router = APIRouter(route_class=PortalRoute, include_in_schema=False)
MAX_ORDERS = 50
# The deadline whose default action releases escrow to the seller, by stage.
RELEASING = ("inspection_window", "retention", "aftersales_window")


def escrow_by_order(s: Session, seller: str) -> list[tuple[OrderRow, int]]:
    """The seller's orders still holding escrow, with the amount held (one query)."""
    held = func.sum(LedgerEntry.amount).label("held")
    rows = s.exec(
        select(OrderRow, held)
        .join(LedgerEntry, col(LedgerEntry.order_id) == col(OrderRow.order_id))
        .where(OrderRow.seller == seller, LedgerEntry.account == "escrow")
        .group_by(col(OrderRow.order_id))
        .having(held > 0)
        .order_by(col(OrderRow.updated_at).desc())
        .limit(MAX_ORDERS)
    )
    return [(o, int(h)) for o, h in rows]


def release_estimate(view: Any, now: datetime, inspection: timedelta) -> tuple[datetime | None, str]:
    """When escrow is due out, and why: a running releasing deadline's due time;
    before delivery, the promised date plus the inspection window (an estimate);
    while a case is open, nothing until it closes (the clock is paused)."""
    if view.open_case is not None:
        return None, "paused while a return or dispute is open"
    for d in view.deadlines:
        if d.name == "inspection_window":
            return d.due_at, "when the inspection window ends (or earlier, if the buyer confirms)"
    if view.promised_at is not None and view.stage.value in ("in_production", "quality_check", "awaiting_balance",
                                                             "shipped"):
        return max(view.promised_at, now) + inspection, "estimate: promised date plus the inspection window"
    return None, "after delivery and the inspection window"


def chart(rows: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """Bars: one per order, length by amount, placed by release date (days from now)."""
    dated = [r for r in rows if r["release"] is not None]
    horizon = max([(r["release"] - now).days + 1 for r in dated] + [14])
    top = max([r["held"] for r in rows] + [1])
    width, left, bar_h, gap = 720, 160, 22, 8
    bars = []
    for i, r in enumerate(rows):
        y = 30 + i * (bar_h + gap)
        length = max(int((width - left - 20) * r["held"] / top), 2)
        day = (r["release"] - now).days if r["release"] is not None else None
        bars.append({"y": y, "length": length, "label": r["order"].order_id, "day": day,
                     "x_day": left + int((width - left - 20) * max(day, 0) / horizon) if day is not None else None,
                     "held": r["held"], "currency": r["order"].currency})
    ticks = [{"x": left + int((width - left - 20) * d / horizon), "d": d} for d in range(0, horizon + 1,
                                                                                      max(horizon // 7, 1))]
    return {"width": width, "height": 40 + len(rows) * (bar_h + gap), "left": left, "bar_h": bar_h, "bars": bars,
            "ticks": ticks}


@router.get("/seller/cash-flow")
async def cash_flow(request: Request) -> Response:
    principal = require(request, "seller")
    with Session(engine_for(request)) as s:
        held = escrow_by_order(s, principal.name)
    oc = await order_client(request)

    async def view(order_id: str) -> Any:
        try:
            return await oc.view(order_id, timeline_limit=0)
        except CliError:
            return None

    views = await asyncio.gather(*(view(o.order_id) for o, _ in held))
    from bespoke.rules import find_policy

    now = datetime.now(UTC)
    rows = []
    for (order, amount), v in zip(held, views):
        if v is None:
            continue
        try:
            inspection = find_policy(f"{v.policy.name}@{v.policy.version}").deadlines.inspection_window
        except Exception:  # noqa: BLE001 - an unpublished policy: fall back to the default window
            inspection = timedelta(days=10)
        release, why = release_estimate(v, now, inspection)
        rows.append({"order": order, "held": amount, "release": release, "why": why, "stage": v.stage.value})
    rows.sort(key=lambda r: (r["release"] is None, r["release"] or now))
    totals: dict[str, int] = {}
    for r in rows:
        totals[r["order"].currency] = totals.get(r["order"].currency, 0) + r["held"]
    return render(request, "cashflow.html", rows=rows, svg=chart(rows, now), totals=totals)
