"""One read-model write per sync: post the order's pending ledger transactions and
project it (order row, new timeline entries and decisions), in one transaction.

The workflow runs it as a local activity ("sync-local-v1", workflows/core.py):
inside the workflow task that asked for it, so a sync costs no activity task and no
extra workflow task on the server. Both halves are idempotent (a transaction key is
posted once, timeline entries by (order, seq), decisions by id, the order row keeps
its newest projection), so a retried or replayed write changes nothing.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine
from temporalio import activity

from bespoke.activities.ledger import record_into
from bespoke.activities.store import project_into
from bespoke.domain.models import ReadModelSync
from bespoke.store.db import session_scope


def apply_sync(session, data: ReadModelSync) -> None:
    """`sync_read_model` in the caller's session (`bespoke db rebuild` uses it too)."""
    for txn in data.transactions:
        record_into(session, txn)
    session.flush()
    project_into(session, data.project)


def sync_read_model(*, engine: Engine, data: ReadModelSync) -> None:
    with session_scope(engine) as session:
        apply_sync(session, data)


class SyncActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn(name="sync_read_model")
    def sync_read_model(self, data: ReadModelSync) -> ReadModelSync | None:
        # A concurrent attempt that posted the same key first makes this one fail on
        # the unique constraint; the retry then finds the rows and adds nothing.
        sync_read_model(engine=self._engine, data=data)
        # A local activity's input is not in the history, only its result: return
        # what was written so the marker records it. A regular activity's input is
        # in its scheduled event already.
        return data if activity.info().is_local else None
