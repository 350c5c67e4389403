"""Buyer account set-up for tests (credit limits, frozen state)."""

from bespoke.activities.credit import get_or_create_account
from bespoke.store.db import session_scope
from bespoke.store.tables import BuyerAccount


def set_credit_limit(engine, buyer: str, limit: int, currency: str = "CNY") -> None:
    with session_scope(engine) as session:
        account = get_or_create_account(session, buyer)
        account.credit_limit = limit
        account.currency = currency
        session.add(account)


def buyer_account(engine, buyer: str) -> BuyerAccount | None:
    from sqlmodel import Session

    with Session(engine) as session:
        return session.get(BuyerAccount, buyer)
