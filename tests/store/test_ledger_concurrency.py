"""Idempotent ledger posting under real concurrency: the same transaction posted
from several threads at once (as racing retries of one activity would) lands
exactly once, on SQLite and on PostgreSQL (BESPOKE_TEST_DATABASE_URL)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select

from bespoke.activities.ledger import LedgerActivities, record_transaction
from bespoke.domain.models import Account, Leg, Transaction
from bespoke.store.db import session_scope
from bespoke.store.tables import LedgerEntry
from tests.helpers import assert_ledger

THREADS = 8
ROUNDS = 15


def deposit(order_id: str, n: int) -> Transaction:
    return Transaction(
        order_id=order_id,
        key=f"{order_id}:deposit:{n}",
        kind="deposit",
        currency="CNY",
        legs=(Leg(account=Account.BUYER, amount=-3_000), Leg(account=Account.ESCROW, amount=3_000)),
        memo="deposit",
        at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_same_transaction_posted_from_many_threads_at_once_lands_exactly_once(engine):
    ledger = LedgerActivities(engine)
    order_id = "o-race"
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        for n in range(ROUNDS):
            txn = deposit(order_id, n)
            barrier = threading.Barrier(THREADS)

            def post(txn: Transaction = txn, barrier: threading.Barrier = barrier) -> bool:
                barrier.wait(timeout=30)
                return ledger.post_transaction(txn)

            results = list(pool.map(lambda _: post(), range(THREADS)))
            assert results.count(True) == 1, (n, results)  # one winner; the others see a duplicate

    with Session(engine) as session:
        rows = session.exec(select(LedgerEntry).where(LedgerEntry.order_id == order_id)).all()
        counted = select(LedgerEntry.txn_key, func.count()).where(LedgerEntry.order_id == order_id)
        per_key = dict(session.exec(counted.group_by(LedgerEntry.txn_key)).all())
    assert len(rows) == ROUNDS * 2
    assert per_key == {deposit(order_id, n).key: 2 for n in range(ROUNDS)}
    balances = assert_ledger(engine, order_id, closed=False)
    assert balances == {Account.BUYER: -3_000 * ROUNDS, Account.ESCROW: 3_000 * ROUNDS}


def test_reposting_a_transaction_later_is_a_no_op(engine):
    ledger = LedgerActivities(engine)
    txn = deposit("o-retry", 0)
    assert ledger.post_transaction(txn) is True
    assert ledger.post_transaction(txn) is False
    with Session(engine) as session:
        count = session.exec(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.txn_key == txn.key)).one()
    assert count == 2


def test_unique_constraint_backs_the_check_when_two_posters_both_miss_it(engine):
    # The racing case above relies on (txn_key, leg) being unique in the database
    # itself: a poster that passed the "already posted?" check too late must fail.
    txn = deposit("o-constraint", 0)
    assert record_transaction(engine=engine, txn=txn) is True
    row = {
        "order_id": txn.order_id,
        "txn_key": txn.key,
        "leg": 0,
        "kind": txn.kind,
        "account": Account.BUYER.value,
        "amount": -3_000,
        "currency": "CNY",
        "memo": "",
        "at": txn.at,
    }
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.add(LedgerEntry.model_validate(row))
    assert LedgerActivities(engine).post_transaction(txn) is False
