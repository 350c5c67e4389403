"""Reserving credit under real concurrency: many orders of one buyer reserving at
once (as workers on several machines would) never together exceed the buyer's
credit line, on SQLite and on PostgreSQL (BESPOKE_TEST_DATABASE_URL; CI runs
tests/store there). Before the account row was locked, each reservation read the
outstanding total, then inserted: all of them saw the same total and all passed."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from sqlmodel import Session, select

from bespoke.activities.credit import CreditRequest, change_credit_line, outstanding_credit, reserve_credit
from bespoke.store.db import session_scope
from bespoke.store.tables import CreditChange, CreditReservation

THREADS = 8
ROUNDS = 5


def test_concurrent_reservations_for_one_buyer_never_exceed_the_credit_limit(engine):
    with session_scope(engine) as session:
        change_credit_line(session, buyer="dana", limit=3 * 1_000, currency="CNY", actor="ops:olga",
                           reason="test line", unfreeze=False, at=datetime.now(UTC))
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        for n in range(ROUNDS):
            barrier = threading.Barrier(THREADS)

            def reserve(i: int, n: int = n, barrier: threading.Barrier = barrier) -> bool:
                barrier.wait(timeout=30)
                req = CreditRequest(order_id=f"o-{n}-{i}", buyer="dana", amount=1_000, currency="CNY")
                return reserve_credit(engine=engine, req=req).ok

            results = list(pool.map(reserve, range(THREADS)))
            assert results.count(True) == 3, (n, results)  # the line holds three, whoever wins
            with session_scope(engine) as session:  # give the line back for the next round
                for row in session.exec(select(CreditReservation)).all():
                    row.released = True
                    session.add(row)
    with Session(engine) as session:
        assert outstanding_credit(session, "dana") == 0
        assert len(session.exec(select(CreditReservation)).all()) == 3 * ROUNDS


def test_first_reservations_of_a_new_buyer_race_to_create_the_account_safely(engine):
    # No account row yet: every thread would create it; one insert wins, the
    # others find it, and a zero credit line refuses them all without an error.
    barrier = threading.Barrier(THREADS)

    def reserve(i: int) -> bool:
        barrier.wait(timeout=30)
        return reserve_credit(engine=engine, req=CreditRequest(order_id=f"new-{i}", buyer="nova", amount=1,
                                                               currency="CNY")).ok

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        assert list(pool.map(reserve, range(THREADS))) == [False] * THREADS


def test_a_credit_line_change_is_on_the_audit_trail_with_old_and_new_limit(engine):
    at = datetime(2026, 12, 1, tzinfo=UTC)
    with session_scope(engine) as session:
        change_credit_line(session, buyer="erin", limit=500, currency="CNY", actor="ops:olga", reason="first",
                           unfreeze=False, at=at)
        change_credit_line(session, buyer="erin", limit=900, currency="CNY", actor="ops:omar", reason="raised",
                           unfreeze=False, at=at)
    with Session(engine) as session:
        rows = session.exec(select(CreditChange).where(CreditChange.buyer == "erin").order_by(CreditChange.id)).all()
    assert [(r.actor, r.reason, r.old_limit, r.new_limit) for r in rows] == [
        ("ops:olga", "first", 0, 500), ("ops:omar", "raised", 500, 900)]
