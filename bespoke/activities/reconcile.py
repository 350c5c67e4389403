"""Ledger reconciliation: check every order's books, read-only.

For each order (a batch at a time, by order id) the books must show:
- every transaction sums to zero, with its legs numbered 0..n-1 (nothing
  duplicated or lost) and in the order's currency;
- escrow never negative, transaction by transaction;
- escrow (and cash held by a COD carrier) zero once the read model says the
  order is terminal (completed, refunded, cancelled);
- the read model's paid / refunded / released_to_seller equal the ledger's sums
  (paid = buyer debits, refunded = buyer credits, released = seller balance);
- no ledger entries for an order the read model does not know.

The workflow posts a transaction and then projects the read model, so an order
caught between the two looks off for a moment: suspects are re-read after
`settle_seconds` and reported only if still off. Nothing is written.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable

from pydantic import Field
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio import activity

from bespoke.domain.models import TERMINAL_STAGES, Account, Frozen
from bespoke.store.tables import DebtRow, LedgerEntry, OrderRow

# A report lists at most this many orders in full (payload size); the count is exact.
MAX_LISTED = 500


class ReconcileInput(Frozen):
    batch_size: int = Field(default=500, ge=1, le=10_000)
    settle_seconds: float = Field(default=2.0, ge=0, le=300)


class ReconcileBatch(Frozen):
    after: str = ""  # order ids greater than this
    limit: int = 500
    settle_seconds: float = 2.0


class Discrepancy(Frozen):
    order_id: str
    stage: str | None  # None: the read model has no such order
    problems: list[str]


class BatchReport(Frozen):
    checked: int
    transactions: int
    last_order_id: str | None
    discrepancies: list[Discrepancy] = []
    open_credit: int = 0  # orders whose buyer still owes an account-period credit
    debts: int = 0  # debts and claims open on the orders (see bespoke.domain.models.Debt)
    debt_orders: int = 0  # orders with at least one


class ReconcileReport(Frozen):
    orders_checked: int
    transactions_checked: int
    orders_off: int
    open_credit: int = 0
    debts: int = 0  # debts and claims a party owes on an order, as the workflows last projected them
    debt_orders: int = 0
    discrepancies: list[Discrepancy] = []  # the first MAX_LISTED
    truncated: bool = False

    @property
    def clean(self) -> bool:
        return self.orders_off == 0


def check_order(order: OrderRow | None, legs: Iterable[LedgerEntry]) -> list[str]:
    """Everything wrong with one order's books ([] when they balance). `legs`
    in posting order (ledger id)."""
    problems: list[str] = []
    by_txn: dict[str, list[LedgerEntry]] = defaultdict(list)
    for leg in legs:
        by_txn[leg.txn_key].append(leg)
    balances: dict[str, int] = defaultdict(int)
    paid = refunded = 0
    escrow_went_negative = False
    for key, txn in by_txn.items():
        total = sum(leg.amount for leg in txn)
        if total != 0:
            problems.append(f"transaction {key} sums to {total}, not 0")
        numbers = sorted(leg.leg for leg in txn)
        if numbers != list(range(len(txn))):
            problems.append(f"transaction {key} has legs {numbers}, expected 0..{len(txn) - 1}")
        if order is not None and any(leg.currency != order.currency for leg in txn):
            problems.append(f"transaction {key} is not all in {order.currency}")
        for leg in txn:
            balances[leg.account] += leg.amount
            if leg.account == Account.BUYER:
                if leg.amount < 0:
                    paid -= leg.amount
                else:
                    refunded += leg.amount
        if balances[Account.ESCROW] < 0 and not escrow_went_negative:
            escrow_went_negative = True
            problems.append(f"escrow negative ({balances[Account.ESCROW]}) after {key}")
    if order is None:
        if by_txn:
            problems.append(f"{len(by_txn)} ledger transaction(s) but no order in the read model")
        return problems
    if order.stage in {s.value for s in TERMINAL_STAGES}:
        for account in (Account.ESCROW, Account.CARRIER_COD):
            if balances[account]:
                problems.append(f"{account.value} holds {balances[account]} although the order is {order.stage}")
    for name, model, ledger in (
        ("paid", order.paid, paid),
        ("refunded", order.refunded, refunded),
        ("released_to_seller", order.released_to_seller, balances[Account.SELLER]),
    ):
        if model != ledger:
            problems.append(f"read model {name} {model} != ledger {ledger}")
    return problems


def _load(session: Session, order_ids: list[str]) -> tuple[dict[str, OrderRow], dict[str, list[LedgerEntry]]]:
    orders = {o.order_id: o for o in session.exec(select(OrderRow).where(col(OrderRow.order_id).in_(order_ids)))}
    legs: dict[str, list[LedgerEntry]] = defaultdict(list)
    rows = session.exec(
        select(LedgerEntry).where(col(LedgerEntry.order_id).in_(order_ids)).order_by(col(LedgerEntry.id))
    )
    for row in rows:
        legs[row.order_id].append(row)
    return orders, legs


def reconcile_batch(*, engine: Engine, batch: ReconcileBatch, sleep=time.sleep) -> BatchReport:
    """Check the next `batch.limit` orders (by id) after `batch.after`, plus any
    ledger-only order ids in the same id range."""
    with Session(engine) as session:
        ids = list(session.exec(
            select(OrderRow.order_id).where(OrderRow.order_id > batch.after)
            .order_by(col(OrderRow.order_id)).limit(batch.limit)
        ))
        last = ids[-1] if len(ids) == batch.limit else None
        # Ledger entries whose order the read model lacks, in this batch's id range.
        orphan_query = select(LedgerEntry.order_id).distinct().where(LedgerEntry.order_id > batch.after)
        if last is not None:
            orphan_query = orphan_query.where(LedgerEntry.order_id <= last)
        orphans = [oid for oid in session.exec(orphan_query) if oid not in set(ids)]
        checked = ids + orphans
        orders, legs = _load(session, checked)
    problems = {oid: check_order(orders.get(oid), legs.get(oid, ())) for oid in checked}
    open_credit = sum(
        1 for oid in ids
        if sum(leg.amount for leg in legs.get(oid, ()) if leg.account == Account.CREDIT_LINE) < 0
    )
    transactions = sum(len({leg.txn_key for leg in legs.get(oid, ())}) for oid in checked)
    with Session(engine) as session:
        debt_rows = session.exec(select(DebtRow.order_id).where(col(DebtRow.order_id).in_(ids))).all() if ids else []
    suspects = [oid for oid, found in problems.items() if found]
    if suspects and batch.settle_seconds:
        # An order mid-_sync (ledger posted, read model not yet) settles within moments.
        sleep(batch.settle_seconds)
        with Session(engine) as session:
            fresh_orders, fresh_legs = _load(session, suspects)
        for oid in suspects:
            problems[oid] = check_order(fresh_orders.get(oid), fresh_legs.get(oid, ()))
            if oid in fresh_orders:
                orders[oid] = fresh_orders[oid]
    discrepancies = [
        Discrepancy(order_id=oid, stage=orders[oid].stage if oid in orders else None, problems=found)
        for oid, found in sorted(problems.items()) if found
    ]
    return BatchReport(
        checked=len(checked),
        transactions=transactions,
        last_order_id=last,
        discrepancies=discrepancies,
        open_credit=open_credit,
        debts=len(debt_rows),
        debt_orders=len(set(debt_rows)),
    )


class ReconcileActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn(name="reconcile_batch")
    def reconcile_batch(self, batch: ReconcileBatch) -> BatchReport:
        report = reconcile_batch(engine=self._engine, batch=batch, sleep=self._sleep)
        for d in report.discrepancies:
            activity.logger.warning("books off for order %s (%s): %s", d.order_id, d.stage, "; ".join(d.problems))
        return report

    @staticmethod
    def _sleep(seconds: float) -> None:
        # Heartbeat while waiting so a cancelled reconciliation stops promptly.
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            activity.heartbeat()
            time.sleep(min(left, 1.0))
