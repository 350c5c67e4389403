"""Activity registry: the worker registers exactly these."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine

from bespoke.activities.credit import CreditActivities
from bespoke.activities.email import EmailActivities
from bespoke.activities.ledger import LedgerActivities
from bespoke.activities.reconcile import ReconcileActivities
from bespoke.activities.rules import RulesActivities
from bespoke.activities.store import StoreActivities
from bespoke.activities.sync import SyncActivities
from bespoke.activities.webhooks import WebhookActivities


def build_activities(engine: Engine, mail: Any = None, settings: Any = None) -> list[Callable[..., Any]]:
    """All activities, bound to the database `engine`; `mail` (a MailConfig, or None:
    email is off on this worker) is what the email activities send with; `settings`
    (default the process's) configure webhook delivery."""
    if settings is None:
        from bespoke.settings import get_settings

        settings = get_settings()
    ledger = LedgerActivities(engine)
    store = StoreActivities(engine)
    credit = CreditActivities(engine)
    reconcile = ReconcileActivities(engine)
    email = EmailActivities(engine, mail)
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
        email.collect_email,
        email.send_email,
        *RulesActivities(engine).all(),
        WebhookActivities(engine, settings).deliver_webhooks,
    ]
