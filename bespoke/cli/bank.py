"""`bespoke bank ...`: incoming transfers to buyers' dedicated collection accounts.

A transfer the system can pay to an order (the account's buyer has a
collection-account order with something due now, in the transfer's currency) is
paid to it at once. Any other is *held* with the reason, and waits for ops:
`bank held` lists them, `bank match` pays one to an order once it can take it,
`bank refund` sends one back. A held transfer is on no order's books (the money
sits in the platform's bank account, recorded in `bank_transfers`); matching it
posts the order's payment (buyer → escrow, and an over-payment straight back),
refunding it posts nothing on any order.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from bespoke.cli.errors import Rejected
from bespoke.cli.output import LazyConsole, cell, text
from bespoke.cli.parsing import as_actor, identifier, minor_units
from bespoke.domain.accounts import virtual_account_for
from bespoke.domain.models import Actor, PayInput, PlanKind, Role, Stage, TERMINAL_STAGES
from bespoke.domain.money import MoneyError, check_currency, format_amount
from bespoke.settings import get_settings

bank_app = typer.Typer(help="Incoming bank transfers to dedicated collection accounts.", no_args_is_help=True)
out = LazyConsole()
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")]
AsOps = Annotated[str, typer.Option("--as", help="Who decides: ops:NAME (recorded with the transfer).")]
ReasonOpt = Annotated[str, typer.Option(help="Why (recorded with the transfer and on the order's timeline).")]

HELD = ("held", "unmatched")  # "unmatched": rows written before `bank held` existed
PAYABLE = (Stage.AWAITING_DEPOSIT.value, Stage.AWAITING_BALANCE.value)
MAX_REFERENCE = 120  # ledger keys are `<order id>:overpay:<reference>`, at most 200
MAX_REASON = 400
BANK = Actor.parse("system:bank")


def _engine():
    from bespoke.store.db import get_engine

    return get_engine(get_settings().effective_database_url)


def _currency(value: str) -> str:
    try:
        return check_currency(value)
    except MoneyError as err:
        raise Rejected(str(err)) from None


def _ops(actor: str) -> Actor:
    who = as_actor(actor)
    if who.role is not Role.OPS or who.for_party is not None:
        raise Rejected(f"only ops may resolve a held transfer, not {who.role.value}")
    return who


def _reason(value: str) -> str:
    import unicodedata

    value = value.strip()
    if not value:
        raise Rejected("--reason must not be empty")
    if len(value) > MAX_REASON:
        raise Rejected(f"--reason is {len(value)} characters long; at most {MAX_REASON}")
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in value):
        raise Rejected("--reason contains control or invisible characters")
    return value


def _pay(order_id: str, payload: PayInput) -> tuple[str, list[dict[str, Any]]]:
    """Pay the transfer to the order; its message and the ledger legs it posted."""
    from sqlmodel import Session, col, select

    from bespoke.cli.order.client import run
    from bespoke.store.tables import LedgerEntry

    result = run(lambda client: client.update(order_id, "pay", payload))
    keys = [f"{order_id}:pay:{payload.reference}", f"{order_id}:overpay:{payload.reference}"]
    with Session(_engine()) as session:
        legs = session.exec(select(LedgerEntry).where(LedgerEntry.order_id == order_id,
                                                      col(LedgerEntry.txn_key).in_(keys))
                            .order_by(col(LedgerEntry.id))).all()
    postings = [{"order_id": order_id, "txn": leg.txn_key, "account": leg.account, "amount": leg.amount}
                for leg in legs]
    return result.message, postings


def held_reason(session, account: str, currency: str) -> tuple[Any, str]:
    """The order a transfer to `account` in `currency` pays (the buyer's oldest
    collection-account order with something due now), or None and why not."""
    from sqlmodel import col, select

    from bespoke.store.tables import BuyerAccount, OrderRow

    orders = session.exec(
        select(OrderRow)
        .where(OrderRow.payment_plan == PlanKind.COLLECTION_ACCOUNT.value,
               col(OrderRow.stage).not_in([s.value for s in TERMINAL_STAGES]))
        .order_by(OrderRow.created_at)
    ).all()
    mine = [o for o in orders if virtual_account_for(o.buyer) == account]
    payable = [o for o in mine if o.stage in PAYABLE]
    for order in payable:
        if order.currency == currency:
            return order, ""
    if payable:
        order = payable[0]
        return None, f"the transfer is in {currency}, but order {order.order_id} is in {order.currency}"
    waiting = [o for o in mine if o.stage == Stage.AWAITING_ACCEPTANCE.value]
    if waiting:
        return None, (f"order {waiting[0].order_id} is not accepted by the seller yet, so nothing is due on it; "
                      "match the transfer once it is")
    if mine:
        return None, f"nothing is due now on order {mine[0].order_id} ({mine[0].stage})"
    known = session.exec(select(BuyerAccount.buyer).where(BuyerAccount.virtual_account == account)).first()
    if known is None:
        return None, "no buyer has this collection account"
    return None, "this account's buyer has no open collection-account order"


def _transfer_json(t: Any) -> dict[str, Any]:
    return {"reference": t.reference, "account": t.virtual_account, "amount": t.amount, "currency": t.currency,
            "status": "held" if t.status in HELD else t.status, "reason": t.held_reason,
            "order_id": t.matched_order_id, "received_at": t.received_at.isoformat(),
            "resolved_by": t.resolved_by or None, "resolved_reason": t.resolved_reason or None}


@bank_app.command("receive")
def receive(
    account: Annotated[str, typer.Option(help="The dedicated collection account number the money arrived on.")],
    amount: Annotated[str, typer.Option(help="Amount received, in major units.")],
    reference: Annotated[str, typer.Option(help="The bank's transfer reference (each is processed once).")],
    currency: Annotated[str, typer.Option(help="Currency of the transfer.")] = "CNY",
    as_json: JsonOpt = False,
) -> None:
    """Pay an incoming transfer to the buyer's oldest collection-account order with
    something due; under-payments leave the rest due, over-payments are refunded.
    A transfer no order can take now is held for ops, with the reason."""
    from sqlmodel import Session

    from bespoke.store.db import session_scope
    from bespoke.store.tables import BankTransfer

    cur = _currency(currency)
    minor = minor_units(amount, cur)
    reference = identifier(reference, "reference", max_length=MAX_REFERENCE)
    account = identifier(account, "account", max_length=34)
    engine = _engine()
    with Session(engine) as session:
        if session.get(BankTransfer, reference) is not None:
            raise Rejected(f"transfer {reference} was already processed")
        match, reason = held_reason(session, account, cur)
    postings: list[dict[str, Any]] = []
    if match is not None:
        payload = PayInput(actor=BANK, amount=minor, currency=cur, reference=reference, method="bank_transfer")
        try:
            message, postings = _pay(match.order_id, payload)
        except Rejected as err:  # the order moved on since the read model saw it
            match, reason = None, f"order {match.order_id} did not take it: {err.message.removeprefix('rejected: ')}"
    status = "matched" if match is not None else "held"
    if match is None:
        message = f"held for ops review: {reason}"
    with session_scope(engine) as session:
        session.add(BankTransfer(reference=reference, virtual_account=account, amount=minor, currency=cur,
                                 matched_order_id=match.order_id if match else None, status=status,
                                 received_at=datetime.now(UTC), held_reason=reason))
    if as_json:
        typer.echo(json.dumps({"reference": reference, "status": status, "order_id": match.order_id if match else None,
                               "reason": reason or None, "message": message, "postings": postings}))
    else:
        out.print(text(reference, f": {status}", f" → {match.order_id}" if match else "", f": {message}"))


@bank_app.command("held")
def held(
    limit: Annotated[int, typer.Option(help="List at most this many (oldest first).", min=1, max=1000)] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Transfers held for ops review, oldest first, with why each was held."""
    from sqlalchemy import func
    from sqlmodel import Session, col, select

    from bespoke.store.tables import BankTransfer

    with Session(_engine()) as session:
        where = col(BankTransfer.status).in_((*HELD, "matching"))
        rows = session.exec(select(BankTransfer).where(where).order_by(col(BankTransfer.received_at))
                            .limit(limit)).all()
        totals = dict(session.exec(select(BankTransfer.currency, func.sum(BankTransfer.amount)).where(where)
                                   .group_by(BankTransfer.currency)).all())
        count = session.exec(select(func.count()).select_from(BankTransfer).where(where)).one()
    if as_json:
        typer.echo(json.dumps({"held": [_transfer_json(t) for t in rows], "count": count,
                               "total": {c: int(v) for c, v in totals.items()}}))
        return
    if not rows:
        out.print("no transfers held")
        return
    from rich.table import Table

    table = Table("reference", "account", "amount", "received (UTC)", "why held", box=None)
    for t in rows:
        table.add_row(cell(t.reference), cell(t.virtual_account), cell(format_amount(t.amount, t.currency)),
                      cell(t.received_at.strftime("%Y-%m-%d %H:%M")), cell(t.held_reason or "(not recorded)"))
    out.print(table)
    out.print(text(f"{count} held: " + ", ".join(format_amount(int(v), c) for c, v in sorted(totals.items()))
                   + " on no order's books"))


def _claim(reference: str, to: str) -> Any:
    """Move a held transfer to status `to`, if it is still held (two operators
    acting on one transfer at once: one wins, the other is refused)."""
    from sqlmodel import Session, col, update

    from bespoke.store.db import session_scope
    from bespoke.store.tables import BankTransfer

    engine = _engine()
    with session_scope(engine) as session:
        claimed = session.exec(update(BankTransfer).where(BankTransfer.reference == reference,
                                                          col(BankTransfer.status).in_(HELD))
                               .values(status=to)).rowcount
    with Session(engine) as session:
        transfer = session.get(BankTransfer, reference)
    if transfer is None:
        raise Rejected(f"no transfer {reference}")
    if not claimed:
        state = transfer.status if transfer.status != "matching" else "being matched by another operator"
        raise Rejected(f"transfer {reference} is not held (it is {state})")
    return transfer


def _resolve(reference: str, **values: Any) -> Any:
    from bespoke.store.db import session_scope
    from bespoke.store.tables import BankTransfer

    with session_scope(_engine()) as session:
        transfer = session.get(BankTransfer, reference)
        for key, value in values.items():
            setattr(transfer, key, value)
        session.add(transfer)
        session.flush()
        session.refresh(transfer)
        session.expunge(transfer)
    return transfer


@bank_app.command("match")
def match(
    reference: Annotated[str, typer.Argument(help="The held transfer's bank reference.")],
    order_id: Annotated[str, typer.Option("--order", help="The order it pays.")],
    actor: AsOps,
    reason: ReasonOpt,
    as_json: JsonOpt = False,
) -> None:
    """Pay a held transfer to an order (real money that arrived: an over-payment is
    refunded at once, like any transfer). Posts the order's payment."""
    who, reason = _ops(actor), _reason(reason)
    reference = identifier(reference, "reference", max_length=MAX_REFERENCE)
    order_id = identifier(order_id, "--order", max_length=64)
    transfer = _claim(reference, "matching")
    previous = "held"
    payload = PayInput(actor=Actor(role=Role.OPS, name=who.name, for_party=BANK), amount=transfer.amount,
                       currency=transfer.currency, reference=reference, method="bank_transfer",
                       reason=f"held transfer matched: {reason}")
    try:
        message, postings = _pay(order_id, payload)
    except Rejected:  # refused: nothing was recorded, the transfer stays held
        _resolve(reference, status=previous)
        raise
    # Any other failure (no answer in time) may still be applied: the transfer stays
    # "matching" (listed by `bank held`) until ops checks the order.
    _resolve(reference, status="matched", matched_order_id=order_id, resolved_by=str(who), resolved_reason=reason,
             resolved_at=datetime.now(UTC))
    if as_json:
        typer.echo(json.dumps({"reference": reference, "status": "matched", "order_id": order_id,
                               "message": message, "postings": postings}))
        return
    out.print(text(reference, f": matched → {order_id}: {message}"))
    for p in postings:
        out.print(text(f"  posted {p['txn']}: {p['account']} {format_amount(p['amount'], transfer.currency)}"))


@bank_app.command("refund")
def refund(
    reference: Annotated[str, typer.Argument(help="The held transfer's bank reference.")],
    actor: AsOps,
    reason: ReasonOpt,
    as_json: JsonOpt = False,
) -> None:
    """Send a held transfer back to its sender. It was on no order's books, so no
    order's ledger changes; the transfer is recorded as refunded, by whom and why."""
    who, reason = _ops(actor), _reason(reason)
    reference = identifier(reference, "reference", max_length=MAX_REFERENCE)
    _claim(reference, "refunded")
    transfer = _resolve(reference, resolved_by=str(who), resolved_reason=reason, resolved_at=datetime.now(UTC))
    amount = format_amount(transfer.amount, transfer.currency)
    if as_json:
        typer.echo(json.dumps({"reference": reference, "status": "refunded", "amount": transfer.amount,
                               "currency": transfer.currency, "postings": []}))
    else:
        out.print(text(reference, f": refunded {amount} to the sender (on no order's books: no posting)"))
