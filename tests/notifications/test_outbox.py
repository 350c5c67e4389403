"""The events outbox: written by the read-model projection in its own
transaction, one event per timeline entry and per decision, with ids derived
from what they describe (a retried projection or a rebuild adds nothing), an
order's events numbered 1, 2, 3…, and a type from the catalogue."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from bespoke.activities.store import project_order
from bespoke.domain.events import EventKind
from bespoke.domain.models import OrderProjection, ProjectInput, Stage, TimelineEntry
from bespoke.notifications.catalogue import EVENT_TYPES, TYPE_BY_KIND, matches, parse_patterns
from bespoke.store.tables import DecisionRow, EventRow, TimelineRow
from tests.helpers import assert_ledger, confirm, delivered_order

DAY = timedelta(days=1)


def events(engine, order_id: str) -> list[EventRow]:
    with Session(engine) as s:
        return list(s.exec(select(EventRow).where(EventRow.order_id == order_id).order_by(EventRow.id)))


async def settled(engine, order_id: str, kind: str) -> list[EventRow]:
    for _ in range(200):
        rows = events(engine, order_id)
        if any(r.kind == kind for r in rows):
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {kind} event for {order_id}")


def test_every_timeline_kind_has_a_type_in_the_catalogue():
    assert set(TYPE_BY_KIND) == set(EventKind)
    assert len(set(TYPE_BY_KIND.values())) == len(TYPE_BY_KIND)  # no two kinds share a type
    assert {"order.stage_changed", "deadline.reminder", "case.opened", "decision.made"} <= set(EVENT_TYPES)


def test_patterns_are_checked_and_match_groups_and_types():
    assert parse_patterns(["order.*", " deadline.reminder ", "order.*"]) == ("order.*", "deadline.reminder")
    for bad in (["nope.*"], ["order.nope"], [], ["order"], ["*.*"]):
        with pytest.raises(ValueError):
            parse_patterns(bad)
    assert matches(("order.*",), "order.stage_changed") and not matches(("order.*",), "deadline.reminder")
    assert matches(("*",), "decision.made") and matches(("decision.made",), "decision.made")


@pytest.mark.usefixtures("worker")
async def test_an_order_writes_one_event_per_entry_and_decision_numbered_in_order(client, task_queue, env, engine):
    handle = await delivered_order(client, task_queue)
    oid = handle.id.removeprefix("order-")
    await env.sleep(8 * DAY)  # the inspection window's P3D and P1D reminders
    await confirm(handle)
    rows = await settled(engine, oid, "settlement")
    assert_ledger(engine, oid, closed=False)

    with Session(engine) as s:
        timeline = s.exec(select(TimelineRow).where(TimelineRow.order_id == oid).order_by(TimelineRow.seq)).all()
        decisions = s.exec(select(DecisionRow).where(DecisionRow.order_id == oid)).all()
    assert len(rows) == len(timeline) + len(decisions)
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    assert len({r.event_id for r in rows}) == len(rows)
    by_id = {r.event_id: r for r in rows}
    for entry in timeline:
        event = by_id[f"{oid}:{entry.seq}"]
        assert event.type == TYPE_BY_KIND[entry.kind] and event.payload["data"]["message"] == entry.message
    for decision in decisions:
        assert by_id[decision.decision_id].type == "decision.made"
        assert by_id[decision.decision_id].payload["data"]["explanation"]["decision_id"] == decision.decision_id
    assert all(r.buyer == "alice" and r.seller == "acme" for r in rows)
    assert rows[0].type == "order.created" and rows[0].carrier is None
    assert rows[-1].carrier == "sf-express"  # shipped: the carrier may see what follows

    stage = next(r for r in rows if r.type == "order.stage_changed")
    assert stage.payload["data"]["stage"] == Stage.AWAITING_DEPOSIT.value
    reminder = next(r for r in rows if r.type == "deadline.reminder")
    detail = reminder.payload["data"]["detail"]
    assert detail["deadline"] == "inspection_window" and detail["to"] == "buyer:alice" and detail["due_at"]
    assert detail["default_action"].startswith("receipt auto-confirmed")
    # the timeline row keeps the entry's data too
    assert next(e for e in timeline if e.kind == "deadline_reminder").data == detail
    for r in rows:
        assert r.payload["id"] == r.event_id and r.payload["seq"] == r.seq and r.payload["order_id"] == oid


def test_a_retried_projection_adds_no_event(engine):
    from datetime import UTC, datetime

    at = datetime(2026, 12, 2, 12, tzinfo=UTC)
    projection = OrderProjection(
        order_id="O-retry", stage=Stage.AWAITING_ACCEPTANCE, title="t", buyer="alice", seller="acme",
        payment_plan="full_prepayment", price=100, currency="CNY", policy_name="default", policy_version="1",
        paid=0, refunded=0, released_to_seller=0, created_at=at, updated_at=at)
    entries = [TimelineEntry(seq=1, at=at, kind="created", actor="ops:olga", message="created"),
               TimelineEntry(seq=2, at=at, kind="stage", actor="system:workflow", message="stage → awaiting_acceptance")]
    decision = {"decision_id": "O-retry:cancellation:1", "kind": "cancellation", "summary": "s", "amounts": {}}
    data = ProjectInput(projection=projection, timeline=entries, decisions=[decision])
    for _ in range(3):  # an activity retried after its commit, and a rebuild
        project_order(engine=engine, data=data)
    more = ProjectInput(projection=projection, timeline=[*entries, TimelineEntry(
        seq=3, at=at, kind="accepted", actor="seller:acme", message="accepted")])
    project_order(engine=engine, data=more)
    rows = events(engine, "O-retry")
    assert [(r.event_id, r.seq, r.type) for r in rows] == [
        ("O-retry:1", 1, "order.created"), ("O-retry:2", 2, "order.stage_changed"),
        ("O-retry:cancellation:1", 3, "decision.made"), ("O-retry:3", 4, "order.accepted")]
