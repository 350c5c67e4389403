"""Keeping the read model (orders, timeline, decisions) and the events outbox in
step with the workflow."""

from __future__ import annotations

import secrets

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Engine
from temporalio import activity

from bespoke.domain.models import ProjectInput
from bespoke.notifications.outbox import record_events
from bespoke.notifications.subscriptions import fan_out
from bespoke.store.db import session_scope
from bespoke.store.tables import DebtRow, DecisionRow, OrderRow, TimelineRow


def project_order(*, engine: Engine, data: ProjectInput) -> None:
    """Upsert the order row; insert timeline entries and decisions not yet stored."""
    with session_scope(engine) as session:
        project_into(session, data)


_ORDERS = OrderRow.__table__
_TIMELINE = TimelineRow.__table__
_DEBTS = DebtRow.__table__
_DECISIONS = DecisionRow.__table__
# Built once: building a statement cost about as much as running it.
_ORDER_UPDATED_AT = select(_ORDERS.c.updated_at).where(_ORDERS.c.order_id == bindparam("oid"))
_INSERT_ORDER = insert(_ORDERS)
_UPDATE_ORDER = update(_ORDERS).where(_ORDERS.c.order_id == bindparam("oid"))
_TIMELINE_SEQS = select(_TIMELINE.c.seq).where(
    _TIMELINE.c.order_id == bindparam("oid"), _TIMELINE.c.seq.in_(bindparam("seqs", expanding=True)))
_INSERT_TIMELINE = insert(_TIMELINE)
_DELETE_DEBTS = delete(_DEBTS).where(_DEBTS.c.order_id == bindparam("oid"))
_INSERT_DEBTS = insert(_DEBTS)
_DECISION_IDS = select(_DECISIONS.c.decision_id).where(
    _DECISIONS.c.decision_id.in_(bindparam("ids", expanding=True)))
_INSERT_DECISIONS = insert(_DECISIONS)


def project_into(session, data: ProjectInput) -> None:
    """`project_order` in the caller's session (`bespoke db rebuild` applies a run's
    projections in one transaction). Each entry and decision stored for the first
    time also gets its event in the outbox (bespoke/notifications/outbox.py).

    Core statements on the session's connection, not ORM objects: a sync runs after
    every update of every order, and the ORM's unit of work (instances, identity
    map, autoflush) cost about two thirds of it. Nothing here is left pending in the
    session; what the caller added before is flushed first."""
    session.flush()
    conn = session.connection()
    p = data.projection
    values = p.model_dump()
    values["stage"] = p.stage.value
    # Every sync that reaches the row moves its revision, even when the columns
    # here are unchanged: the workflow syncs after each change to its state, and
    # the API's view cache is valid only while the revision stands.
    values["revision"] = secrets.randbits(63)
    stored = conn.execute(_ORDER_UPDATED_AT, {"oid": p.order_id}).first()
    if stored is None:
        conn.execute(_INSERT_ORDER, values)
    elif stored.updated_at <= p.updated_at.replace(tzinfo=stored.updated_at.tzinfo):
        conn.execute(_UPDATE_ORDER, {"oid": p.order_id, **values})
    new_entries = []
    if data.timeline:
        have = set(conn.execute(_TIMELINE_SEQS, {"oid": p.order_id, "seqs": [e.seq for e in data.timeline]}).scalars())
        for entry in data.timeline:
            if entry.seq not in have:
                have.add(entry.seq)
                new_entries.append(entry)
        if new_entries:
            conn.execute(_INSERT_TIMELINE, [
                {"order_id": p.order_id, "seq": e.seq, "at": e.at, "kind": str(e.kind), "actor": e.actor,
                 "message": e.message, "data": e.model_dump(mode="json", include={"data"})["data"]}
                for e in new_entries])
    if data.owes is not None:  # the order's debts as they stand now replace the stored ones
        conn.execute(_DELETE_DEBTS, {"oid": p.order_id})
        if data.owes:
            conn.execute(_INSERT_DEBTS, [{"order_id": p.order_id, "currency": p.currency, **debt.model_dump()}
                                          for debt in data.owes])
    new_decisions = []
    if data.decisions:
        have_ids = set(conn.execute(_DECISION_IDS, {"ids": [d["decision_id"] for d in data.decisions]}).scalars())
        for decision in data.decisions:
            if decision["decision_id"] not in have_ids:
                have_ids.add(decision["decision_id"])
                new_decisions.append(decision)
        if new_decisions:
            conn.execute(_INSERT_DECISIONS, [
                {"decision_id": d["decision_id"], "order_id": p.order_id, "kind": d.get("kind", ""),
                 "explanation": d, "at": p.updated_at} for d in new_decisions])
    events = record_events(conn, projection=p, carrier=data.carrier, entries=new_entries, decisions=new_decisions)
    fan_out(conn, events)  # webhook deliveries, in the same transaction as their events


class StoreActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn(name="project_order")
    def project_order(self, data: ProjectInput) -> None:
        project_order(engine=self._engine, data=data)
