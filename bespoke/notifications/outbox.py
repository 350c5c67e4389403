"""Writing the events outbox, inside `project_order`'s transaction.

An event row is added exactly when the timeline entry or decision it describes is
first stored, in the same transaction, so the outbox can neither miss an entry
(the projection committed without it) nor hold one the read model does not (the
projection rolled back). Readers (webhook delivery, email) go through the table
in `id` order; an order's events are numbered by `seq`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from bespoke.notifications.catalogue import (
    DECISION_TYPE,
    decision_payload,
    event_type,
    timeline_event_id,
    timeline_payload,
)
from bespoke.store.tables import EventRow


def record_events(session: Session, *, projection: Any, carrier: str | None, entries: Sequence[Any],
                  decisions: Sequence[dict[str, Any]]) -> list[EventRow]:
    """Add one event per newly stored timeline entry (in seq order), then one per
    newly stored decision, numbered after the order's last event, unless an event
    with its id exists; returns the rows added (flushed, so they have their ids)."""
    p = projection
    ids = [timeline_event_id(p.order_id, e.seq) for e in entries] + [d["decision_id"] for d in decisions]
    if not ids:
        return []
    # The events of entries stored before (the timeline rows were deleted and are
    # being rebuilt, `bespoke db rebuild`) stay as they are: an event id is one event.
    known = set(session.exec(select(EventRow.event_id).where(EventRow.event_id.in_(ids))).all())
    entries = [e for e in entries if timeline_event_id(p.order_id, e.seq) not in known]
    decisions = [d for d in decisions if d["decision_id"] not in known]
    if not entries and not decisions:
        return []
    last = session.exec(select(func.max(EventRow.seq)).where(EventRow.order_id == p.order_id)).one() or 0
    now = datetime.now(UTC)
    common = {"order_id": p.order_id, "buyer": p.buyer, "seller": p.seller,
              "carrier": carrier, "recorded_at": now}
    rows: list[EventRow] = []
    for entry in sorted(entries, key=lambda e: e.seq):
        last += 1
        payload = timeline_payload(order_id=p.order_id, seq=last, entry=entry)
        rows.append(EventRow(event_id=payload["id"], seq=last, type=event_type(entry.kind), kind=str(entry.kind),
                             actor=entry.actor[:300], at=entry.at, payload=payload, **common))
    for explanation in decisions:
        last += 1
        payload = decision_payload(order_id=p.order_id, seq=last, at=p.updated_at, explanation=explanation)
        rows.append(EventRow(event_id=payload["id"], seq=last, type=DECISION_TYPE, kind="decision",
                             actor="system:rules", at=p.updated_at, payload=payload, **common))
    session.add_all(rows)
    session.flush()
    return rows
