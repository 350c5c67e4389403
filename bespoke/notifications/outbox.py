"""Writing the events outbox, inside `project_order`'s transaction.

An event row is added exactly when the timeline entry or decision it describes is
first stored, in the same transaction, so the outbox can neither miss an entry
(the projection committed without it) nor hold one the read model does not (the
projection rolled back). Readers (webhook delivery, email) go through the table
in `id` order; an order's events are numbered by `seq`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.engine import Connection

from bespoke.notifications.catalogue import (
    DECISION_TYPE,
    decision_payload,
    event_type,
    timeline_event_id,
    timeline_payload,
)
from bespoke.store.tables import EventRow


_EVENTS = EventRow.__table__
# Built once (they run on every sync).
_KNOWN = select(_EVENTS.c.event_id).where(_EVENTS.c.event_id.in_(bindparam("ids", expanding=True)))
_LAST_SEQ = select(func.max(_EVENTS.c.seq)).where(_EVENTS.c.order_id == bindparam("oid"))
_INSERT = insert(_EVENTS).returning(_EVENTS.c.id, sort_by_parameter_order=True)


@dataclass(frozen=True)
class NewEvent:
    """An event row just inserted: what `fan_out` needs of it."""

    id: int
    event_id: str
    order_id: str
    type: str
    buyer: str
    seller: str
    carrier: str | None


def record_events(conn: Connection, *, projection: Any, carrier: str | None, entries: Sequence[Any],
                  decisions: Sequence[dict[str, Any]]) -> list[NewEvent]:
    """Add one event per newly stored timeline entry (in seq order), then one per
    newly stored decision, numbered after the order's last event, unless an event
    with its id exists; returns the rows added, with their ids."""
    p = projection
    ids = [timeline_event_id(p.order_id, e.seq) for e in entries] + [d["decision_id"] for d in decisions]
    if not ids:
        return []
    # The events of entries stored before (the timeline rows were deleted and are
    # being rebuilt, `bespoke db rebuild`) stay as they are: an event id is one event.
    known = set(conn.execute(_KNOWN, {"ids": ids}).scalars())
    entries = [e for e in entries if timeline_event_id(p.order_id, e.seq) not in known]
    decisions = [d for d in decisions if d["decision_id"] not in known]
    if not entries and not decisions:
        return []
    last = conn.execute(_LAST_SEQ, {"oid": p.order_id}).scalar() or 0
    now = datetime.now(UTC)
    common = {"order_id": p.order_id, "buyer": p.buyer, "seller": p.seller,
              "carrier": carrier, "recorded_at": now}
    rows: list[dict[str, Any]] = []
    for entry in sorted(entries, key=lambda e: e.seq):
        last += 1
        payload = timeline_payload(order_id=p.order_id, seq=last, entry=entry)
        rows.append({"event_id": payload["id"], "seq": last, "type": event_type(entry.kind), "kind": str(entry.kind),
                     "actor": entry.actor[:300], "at": entry.at, "payload": payload, **common})
    for explanation in decisions:
        last += 1
        payload = decision_payload(order_id=p.order_id, seq=last, at=p.updated_at, explanation=explanation)
        rows.append({"event_id": payload["id"], "seq": last, "type": DECISION_TYPE, "kind": "decision",
                     "actor": "system:rules", "at": p.updated_at, "payload": payload, **common})
    pks = conn.execute(_INSERT, rows).scalars().all()
    return [NewEvent(id=pk, event_id=r["event_id"], order_id=p.order_id, type=r["type"], buyer=p.buyer,
                     seller=p.seller, carrier=carrier) for pk, r in zip(pks, rows, strict=True)]
