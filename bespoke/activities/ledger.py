"""Posting balanced transactions to the ledger, idempotently."""

from __future__ import annotations

from sqlalchemy import bindparam, insert, select
from sqlalchemy.engine import Engine
from temporalio import activity

from bespoke.domain.models import Transaction
from bespoke.store.db import session_scope
from bespoke.store.tables import LedgerEntry


def record_transaction(*, engine: Engine, txn: Transaction) -> bool:
    """Insert every leg of `txn` in one database transaction.

    Returns False when the key was already posted: Temporal retries activities,
    and a retry after a lost acknowledgement must not post twice. The unique
    constraint on (txn_key, leg) backs this check against concurrent retries.
    """
    with session_scope(engine) as session:
        return record_into(session, txn)


_LEDGER = LedgerEntry.__table__
_POSTED = select(_LEDGER.c.id).where(_LEDGER.c.txn_key == bindparam("key")).limit(1)
_INSERT = insert(_LEDGER)


def record_into(session, txn: Transaction) -> bool:
    """`record_transaction` in the caller's session (Core statements on its
    connection, as `project_into`: this runs on every sync that posts)."""
    conn = session.connection()
    if conn.execute(_POSTED, {"key": txn.key}).first() is not None:
        return False
    conn.execute(_INSERT, [
        {"order_id": txn.order_id, "txn_key": txn.key, "leg": index, "kind": txn.kind,
         "account": leg.account.value, "amount": leg.amount, "currency": txn.currency, "memo": txn.memo,
         "at": txn.at}
        for index, leg in enumerate(txn.legs)])
    return True


class LedgerActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn(name="post_transaction")
    def post_transaction(self, txn: Transaction) -> bool:
        from sqlalchemy.exc import IntegrityError

        try:
            return record_transaction(engine=self._engine, txn=txn)
        except IntegrityError:
            # A concurrent attempt of the same activity won the race.
            return False
