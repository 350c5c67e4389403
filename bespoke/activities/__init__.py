"""Activity registry: the worker registers exactly these."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine

from bespoke.activities.credit import CreditActivities
from bespoke.activities.ledger import LedgerActivities
from bespoke.activities.reconcile import ReconcileActivities
from bespoke.activities.rules import RulesActivities
from bespoke.activities.store import StoreActivities
from bespoke.activities.sync import SyncActivities


def build_activities(engine: Engine) -> list[Callable[..., Any]]:
    """All activities, bound to the database `engine`."""
    ledger = LedgerActivities(engine)
    store = StoreActivities(engine)
    credit = CreditActivities(engine)
    reconcile = ReconcileActivities(engine)
    return [
        ledger.post_transaction,
        store.project_order,
        SyncActivities(engine).sync_read_model,
        reconcile.reconcile_batch,
        reconcile.reconcile_workflows,
        reconcile.reconcile_rows,
        credit.reserve_credit,
        credit.release_credit,
        credit.mark_credit_overdue,
        *RulesActivities(engine).all(),
    ]
