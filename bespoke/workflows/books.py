"""The order's books inside the workflow: postings, balances and the escrow guard.

Pure bookkeeping over `OrderState` (no activities, no clock: the caller passes the
time). Every posting is a balanced `Transaction` with a key unique within the
order, so the ledger activity can post it idempotently; transactions wait in
`state.unposted` until the read-model sync posts them.
"""

from __future__ import annotations

from datetime import datetime

from temporalio.exceptions import ApplicationError

from bespoke.domain.models import Account, Leg, Transaction
from bespoke.domain.state import OrderState


class Books:
    def __init__(self, state: OrderState, *, order_id: str, currency: str) -> None:
        self._s = state
        self._order_id = order_id
        self._currency = currency

    def balance(self, account: Account) -> int:
        return self._s.balances[account]

    def post(self, kind: str, legs: list[tuple[Account, int]], memo: str, *, at: datetime,
             key: str | None = None) -> None:
        """Record one balanced transaction; zero legs are dropped, and nothing is
        recorded when no leg is left. Escrow can never go negative."""
        s = self._s
        legs = [(a, v) for a, v in legs if v != 0]
        if not legs:
            return
        s.txn_seq += 1
        txn = Transaction(
            order_id=self._order_id,
            key=f"{self._order_id}:{key or f'{kind}:{s.txn_seq}'}",
            kind=kind,
            currency=self._currency,
            legs=tuple(Leg(account=a, amount=v) for a, v in legs),
            memo=memo,
            at=at,
        )
        for leg in txn.legs:
            s.balances[leg.account] += leg.amount
            if leg.account is Account.BUYER:
                if leg.amount < 0:
                    s.paid -= leg.amount
                else:
                    s.refunded += leg.amount
        if s.balances[Account.ESCROW] < 0:
            raise ApplicationError(f"escrow would go negative on {txn.key}", type="LedgerError", non_retryable=True)
        s.unposted.append(txn)

    def to_buyer(self, amount: int) -> list[tuple[Account, int]]:
        """Legs paying `amount` back to the buyer. On account-period credit the
        buyer may not have repaid yet: a refund first cancels what the buyer
        still owes on the credit line, and only the rest is paid out."""
        s = self._s
        to_credit = min(amount, s.credit_outstanding)
        s.credit_outstanding -= to_credit
        return [(Account.CREDIT_LINE, to_credit), (Account.BUYER, amount - to_credit)]

    def refundable(self) -> int:
        """What the buyer could still get back; credit not repaid yet counts (the
        refund cancels it)."""
        s = self._s
        return s.paid + s.credit_outstanding - s.refunded
