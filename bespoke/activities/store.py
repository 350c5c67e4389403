"""Keeping the read model (orders, timeline, decisions) and the events outbox in
step with the workflow."""

from __future__ import annotations

import secrets

from sqlalchemy.engine import Engine
from sqlmodel import delete, select
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


def project_into(session, data: ProjectInput) -> None:
    """`project_order` in the caller's session (`bespoke db rebuild` applies a run's
    projections in one transaction). Each entry and decision stored for the first
    time also gets its event in the outbox (bespoke/notifications/outbox.py)."""
    p = data.projection
    row = session.get(OrderRow, p.order_id)
    values = p.model_dump()
    values["stage"] = p.stage.value
    # Every sync that reaches the row moves its revision, even when the columns
    # here are unchanged: the workflow syncs after each change to its state, and
    # the API's view cache is valid only while the revision stands.
    values["revision"] = secrets.randbits(63)
    if row is None:
        session.add(OrderRow.model_validate(values))
    elif row.updated_at <= p.updated_at.replace(tzinfo=row.updated_at.tzinfo):
        for key, value in values.items():
            setattr(row, key, value)
    new_entries = []
    if data.timeline:
        seqs = [e.seq for e in data.timeline]
        have = set(
            session.exec(
                select(TimelineRow.seq).where(
                    TimelineRow.order_id == p.order_id, TimelineRow.seq.in_(seqs)
                )
            ).all()
        )
        for entry in data.timeline:
            if entry.seq not in have:
                have.add(entry.seq)
                new_entries.append(entry)
                session.add(TimelineRow(order_id=p.order_id, **entry.model_dump(exclude={"data"}),
                                        data=entry.model_dump(mode="json", include={"data"})["data"]))
    if data.owes is not None:  # the order's debts as they stand now replace the stored ones
        session.exec(delete(DebtRow).where(DebtRow.order_id == p.order_id))
        for debt in data.owes:
            session.add(DebtRow(order_id=p.order_id, currency=p.currency, **debt.model_dump()))
    new_decisions = []
    for decision in data.decisions:
        if session.get(DecisionRow, decision["decision_id"]) is None and decision not in new_decisions:
            new_decisions.append(decision)
            session.add(
                DecisionRow(
                    decision_id=decision["decision_id"],
                    order_id=p.order_id,
                    kind=decision.get("kind", ""),
                    explanation=decision,
                    at=p.updated_at,
                )
            )
    events = record_events(session, projection=p, carrier=data.carrier, entries=new_entries, decisions=new_decisions)
    fan_out(session, events)  # webhook deliveries, in the same transaction as their events


class StoreActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn(name="project_order")
    def project_order(self, data: ProjectInput) -> None:
        project_order(engine=self._engine, data=data)
