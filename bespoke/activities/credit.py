"""Account-period credit: reserving a buyer's credit line, releasing it on
repayment, and freezing the buyer when a repayment is overdue."""

from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import select
from temporalio import activity

from bespoke.domain.models import Frozen
from bespoke.store.db import session_scope
from bespoke.store.tables import BuyerAccount, CreditChange, CreditReservation
from bespoke.domain.accounts import virtual_account_for


class CreditRequest(Frozen):
    order_id: str
    buyer: str
    amount: int
    currency: str


class CreditResult(Frozen):
    ok: bool
    message: str
    available: int = 0


class CreditRef(Frozen):
    order_id: str
    buyer: str


def outstanding_credit(session, buyer: str) -> int:
    total = session.exec(
        select(func.coalesce(func.sum(CreditReservation.amount), 0)).where(
            CreditReservation.buyer == buyer, CreditReservation.released == False  # noqa: E712
        )
    ).one()
    return int(total)


def get_or_create_account(session, buyer: str) -> BuyerAccount:
    account = session.get(BuyerAccount, buyer)
    if account is None:
        account = BuyerAccount(buyer=buyer, virtual_account=virtual_account_for(buyer))
        session.add(account)
        session.flush()
    return account


def locked_account(session, buyer: str) -> BuyerAccount:
    """The buyer's account row, created if missing, locked until the session's
    transaction ends, so two reservations (or a reservation and a limit change)
    for one buyer run one after the other instead of both reading the same
    outstanding total. PostgreSQL: `INSERT ... ON CONFLICT DO NOTHING` (two
    first reservations cannot both create it) then `SELECT ... FOR UPDATE`. SQLite
    has no row locks and ignores FOR UPDATE; a no-op UPDATE takes its database
    write lock (pysqlite starts the transaction at the first write, so a plain
    read would not hold anything)."""
    dialect = session.get_bind().dialect.name
    values = {"buyer": buyer, "virtual_account": virtual_account_for(buyer), "credit_limit": 0,
              "currency": "CNY", "frozen": False, "frozen_reason": ""}
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    table = BuyerAccount.__table__
    session.execute(insert(table).values(**values).on_conflict_do_nothing(index_elements=["buyer"]))
    if dialect != "postgresql":
        session.execute(table.update().where(table.c.buyer == buyer).values(buyer=table.c.buyer))
    return session.exec(
        select(BuyerAccount).where(BuyerAccount.buyer == buyer).with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def change_credit_line(session, *, buyer: str, limit: int, currency: str, actor: str, reason: str,
                       unfreeze: bool, at) -> BuyerAccount:
    """Set a buyer's credit limit (and lift a freeze) with its audit row, in the
    caller's transaction."""
    account = locked_account(session, buyer)
    session.add(CreditChange(buyer=buyer, actor=actor, reason=reason, old_limit=account.credit_limit,
                             new_limit=limit, currency=currency, unfroze=unfreeze and account.frozen, at=at))
    account.credit_limit, account.currency = limit, currency
    if unfreeze:
        account.frozen, account.frozen_reason = False, ""
    session.add(account)
    session.flush()
    return account


def reserve_credit(*, engine: Engine, req: CreditRequest) -> CreditResult:
    with session_scope(engine) as session:
        account = locked_account(session, req.buyer)
        existing = session.get(CreditReservation, req.order_id)
        if existing is not None:  # a retry of this same reservation
            return CreditResult(ok=True, message="credit already reserved")
        if account.frozen:
            return CreditResult(ok=False, message=f"buyer {req.buyer}'s credit is frozen: {account.frozen_reason}")
        if account.currency != req.currency:
            return CreditResult(
                ok=False, message=f"buyer {req.buyer}'s credit line is in {account.currency}, not {req.currency}"
            )
        available = account.credit_limit - outstanding_credit(session, req.buyer)
        if req.amount > available:
            return CreditResult(
                ok=False,
                message=f"credit limit exceeded: {req.amount} needed, {max(available, 0)} available",
                available=max(available, 0),
            )
        session.add(
            CreditReservation(order_id=req.order_id, buyer=req.buyer, amount=req.amount, currency=req.currency)
        )
        return CreditResult(ok=True, message="credit reserved", available=available - req.amount)


def release_credit(*, engine: Engine, ref: CreditRef) -> None:
    """Give the credit back (repaid or order cancelled) and lift a freeze that
    this order caused when the buyer has nothing else overdue."""
    with session_scope(engine) as session:
        reservation = session.get(CreditReservation, ref.order_id)
        if reservation is not None:
            reservation.released = True
            reservation.overdue = False
            session.add(reservation)
            session.flush()
        still_overdue = session.exec(
            select(CreditReservation.order_id).where(
                CreditReservation.buyer == ref.buyer,
                CreditReservation.overdue == True,  # noqa: E712
                CreditReservation.released == False,  # noqa: E712
            )
        ).first()
        account = session.get(BuyerAccount, ref.buyer)
        if account is not None and account.frozen and still_overdue is None and account.frozen_reason.startswith("overdue"):
            account.frozen = False
            account.frozen_reason = ""
            session.add(account)


def mark_overdue(*, engine: Engine, ref: CreditRef) -> None:
    with session_scope(engine) as session:
        reservation = session.get(CreditReservation, ref.order_id)
        if reservation is not None:
            reservation.overdue = True
            session.add(reservation)
        account = get_or_create_account(session, ref.buyer)
        account.frozen = True
        account.frozen_reason = f"overdue repayment on order {ref.order_id}"
        session.add(account)


class CreditActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn(name="reserve_credit")
    def reserve_credit(self, req: CreditRequest) -> CreditResult:
        return reserve_credit(engine=self._engine, req=req)

    @activity.defn(name="release_credit")
    def release_credit(self, ref: CreditRef) -> None:
        release_credit(engine=self._engine, ref=ref)

    @activity.defn(name="mark_credit_overdue")
    def mark_credit_overdue(self, ref: CreditRef) -> None:
        mark_overdue(engine=self._engine, ref=ref)
