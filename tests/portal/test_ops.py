"""Ops work queues through a real uvicorn: only ops see them; each is paged with a
fixed number of database queries whatever it holds; each row links to its order;
user text is shown as text; and a real order's next step and due time reach the
read model the due-soon queue reads. (The books queue needs Temporal's visibility:
tests/resilience/test_reconcile.py.)"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import event
from sqlmodel import Session

from bespoke.store.tables import CreditReservation, OrderRow
from tests.helpers import status
from tests.portal.test_orders import XSS, delivered, portal, signed_in  # noqa: F401  (fixture)

QUEUES = ("/ops", "/ops/due", "/ops/blocked", "/ops/books", "/ops/credit")


def row(oid: str, **values) -> OrderRow:
    now = datetime.now(UTC)
    base = dict(order_id=oid, stage="delivered", title="display case", buyer="alice", seller="acme",
                payment_plan="full_prepayment", price=100_000, currency="CNY", policy_name="default",
                policy_version="1.2.0", paid=100_000, created_at=now, updated_at=now)
    return OrderRow(**{**base, **values})


def add(engine, *rows) -> None:
    with Session(engine) as s:
        s.add_all(rows)
        s.commit()


class Queries:
    """Counts the statements the app sends to the database."""

    def __init__(self, engine) -> None:
        self.n = 0
        self.engine = engine
        event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *args) -> None:
        self.n += 1

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._count)


async def test_ops_queues_are_for_ops_only(portal):
    alice, acme = await signed_in(portal, "buyer:alice"), await signed_in(portal, "seller:acme")
    try:
        for path in QUEUES:
            assert (await alice.get(path)).status_code == 403, path
            assert (await acme.get(path)).status_code == 403, path
        async with httpx.AsyncClient(base_url=portal.url) as anonymous:
            for path in QUEUES:
                assert (await anonymous.get(path)).status_code == 401, path
    finally:
        await alice.aclose()
        await acme.aclose()


async def test_due_queue_pages_orders_due_within_a_day_soonest_first_with_fixed_queries(portal, engine):
    now = datetime.now(UTC)
    add(engine, *(row(f"DUE-{i:03d}", next_step=f"buyer inspects and confirms receipt {XSS}",
                      next_step_due=now + timedelta(minutes=20 * i - 60)) for i in range(60)))
    add(engine, row("LATER-1", next_step="seller ships", next_step_due=now + timedelta(hours=30)),
        row("NONE-1", stage="completed", next_step="none"))
    olga = await signed_in(portal, "ops:olga")
    queries = Queries(engine)
    try:
        before = queries.n
        first = await olga.get("/ops/due")
        first_queries = queries.n - before
        assert first.status_code == 200
        listed = re.findall(r'<tr data-order="([^"]+)">', first.text)
        assert listed == [f"DUE-{i:03d}" for i in range(50)]  # soonest (past due) first, a page of 50
        assert 'href="/orders/DUE-000"' in first.text and "Due within 24 h (60)" in first.text
        assert XSS not in first.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in first.text
        assert "due now" in first.text  # the past-due ones
        before = queries.n
        second = await olga.get("/ops/due?page=2")
        assert queries.n - before == first_queries  # 10 rows or 50: the same queries
        assert re.findall(r'<tr data-order="([^"]+)">', second.text) == [f"DUE-{i:03d}" for i in range(50, 60)]
        assert "LATER-1" not in first.text + second.text and "NONE-1" not in first.text + second.text
        assert (await olga.get("/ops/due?page=0")).status_code == 422
    finally:
        queries.close()
        await olga.aclose()


async def test_blocked_and_overdue_credit_queues_list_their_orders(portal, engine):
    add(engine, row("BLK-1", stage="in_production",
                    blocked=f"the cancellation decision failed: no worker has plugin x {XSS}"),
        row("OK-1", stage="in_production"),
        CreditReservation(order_id="CR-1", buyer="alice", amount=50_000, currency="CNY", overdue=True),
        CreditReservation(order_id="CR-2", buyer="bob", amount=10_000, currency="CNY", overdue=False),
        CreditReservation(order_id="CR-3", buyer="carol", amount=10_000, currency="CNY", overdue=True,
                          released=True))
    olga = await signed_in(portal, "ops:olga")
    try:
        blocked = await olga.get("/ops/blocked")
        assert re.findall(r'<tr data-order="([^"]+)">', blocked.text) == ["BLK-1"]
        assert "no worker has plugin x &lt;script&gt;" in blocked.text and 'href="/orders/BLK-1"' in blocked.text
        credit = await olga.get("/ops/credit")
        assert re.findall(r'<tr data-order="([^"]+)">', credit.text) == ["CR-1"]
        assert "500.00 CNY" in credit.text
        overview = await olga.get("/ops")
        assert "Blocked decisions (1)" in overview.text and "Overdue credit (1)" in overview.text
    finally:
        await olga.aclose()


@pytest.mark.usefixtures("worker")
async def test_a_real_orders_next_step_and_due_time_reach_the_read_model(portal, client, task_queue, engine):
    handle = await delivered(client, task_queue)
    oid = handle.id.removeprefix("order-")
    view = await status(handle)
    with Session(engine) as s:
        stored = s.get(OrderRow, oid)
    assert view.next_step == "buyer inspects and confirms receipt" and stored.next_step == view.next_step
    due = stored.next_step_due if stored.next_step_due.tzinfo else stored.next_step_due.replace(tzinfo=UTC)
    assert due == view.next_step_due == [d.due_at for d in view.deadlines if d.name == "inspection_window"][0]
    assert stored.blocked is None
