"""`bespoke buyer ...`: buyer payment accounts (credit lines, dedicated
collection accounts). Incoming bank transfers: `bespoke/cli/bank.py`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from bespoke.cli.errors import Rejected
from bespoke.cli.output import LazyConsole, text
from bespoke.cli.parsing import minor_units
from bespoke.domain.money import MoneyError, check_currency, format_amount
from bespoke.settings import get_settings

# The database modules (SQLAlchemy) load inside the commands that use them, so
# `bespoke order ...` commands, which talk to Temporal only, start faster.

buyer_app = typer.Typer(help="Buyer payment accounts: credit lines and collection accounts.", no_args_is_help=True)
out = LazyConsole()
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")]


def _engine():
    from bespoke.store.db import get_engine

    return get_engine(get_settings().effective_database_url)


CREDIT_CHANGES_SHOWN = 20
DEBTS_SHOWN = 100


def _account_json(session, account) -> dict:
    from sqlmodel import select

    from bespoke.activities.credit import outstanding_credit
    from bespoke.store.tables import CreditChange, DebtRow

    changes = session.exec(select(CreditChange).where(CreditChange.buyer == account.buyer)
                           .order_by(CreditChange.id.desc()).limit(CREDIT_CHANGES_SHOWN)).all()
    debts = session.exec(select(DebtRow).where(DebtRow.debtor == f"buyer:{account.buyer}")
                         .order_by(DebtRow.order_id, DebtRow.id).limit(DEBTS_SHOWN)).all()
    return {
        # What the buyer owes on its orders (claims and debts), as the workflows last projected them.
        "owes": [{"order_id": d.order_id, "creditor": d.creditor, "amount": d.amount, "currency": d.currency,
                  "why": d.why, "due_at": d.due_at.isoformat() if d.due_at else None} for d in debts],
        "buyer": account.buyer,
        "virtual_account": account.virtual_account,
        "credit_limit": account.credit_limit,
        "credit_outstanding": outstanding_credit(session, account.buyer),
        "currency": account.currency,
        "frozen": account.frozen,
        "frozen_reason": account.frozen_reason,
        # The newest changes of the credit line first (the audit trail).
        "credit_changes": [{"at": c.at.isoformat(), "actor": c.actor, "reason": c.reason, "old_limit": c.old_limit,
                            "new_limit": c.new_limit, "currency": c.currency, "unfroze": c.unfroze}
                           for c in changes],
    }


@buyer_app.command("show")
def show(buyer: Annotated[str, typer.Argument(help="Buyer account name.")], as_json: JsonOpt = False) -> None:
    """A buyer's collection account number and credit line."""
    from bespoke.activities.credit import get_or_create_account
    from bespoke.store.db import session_scope

    with session_scope(_engine()) as session:
        data = _account_json(session, get_or_create_account(session, buyer))
    if as_json:
        typer.echo(json.dumps(data))
        return
    cur = data["currency"]
    out.print(text((buyer, "bold"), f": collection account {data['virtual_account']}"))
    out.print(text(f"credit limit {format_amount(data['credit_limit'], cur)}, outstanding "
                   f"{format_amount(data['credit_outstanding'], cur)}"
                   + (f" — FROZEN: {data['frozen_reason']}" if data["frozen"] else "")))
    for debt in data["owes"]:
        out.print(text(f"owes {debt['creditor']} {format_amount(debt['amount'], debt['currency'])} on "
                       f"{debt['order_id']}: {debt['why']}"))


@buyer_app.command("credit")
def set_credit(
    buyer: Annotated[str, typer.Argument(help="Buyer account name.")],
    actor: Annotated[str, typer.Option("--as", help="Who sets it: ops:NAME (recorded on the audit trail).")],
    limit: Annotated[str, typer.Option(help="Account-period credit limit, in major units.")],
    reason: Annotated[str, typer.Option(help="Why (kept on the audit trail with the old and new limit).")],
    currency: Annotated[str, typer.Option(help="Currency of the credit line.")] = "CNY",
    unfreeze: Annotated[bool, typer.Option("--unfreeze", help="Lift a freeze (ops decision).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Set a buyer's account-period credit limit (ops only, with a reason)."""
    from bespoke.cli.parsing import as_actor, identifier
    from bespoke.domain.models import MAX_AMOUNT, Role

    who = as_actor(actor)
    if who.role is not Role.OPS or who.for_party is not None:
        raise Rejected(f"only ops may set a credit line, not {who.role.value}")
    buyer = identifier(buyer, "buyer")
    reason = _reason(reason)
    try:
        cur = check_currency(currency)
    except MoneyError as err:
        raise Rejected(str(err)) from None
    minor = minor_units(limit, cur, positive=False)
    if minor < 0:
        raise Rejected("the credit limit cannot be negative")
    if minor > MAX_AMOUNT:
        raise Rejected(f"the credit limit {format_amount(minor, cur)} is larger than the maximum "
                       f"{format_amount(MAX_AMOUNT, cur)}")
    from bespoke.activities.credit import change_credit_line
    from bespoke.store.db import session_scope

    with session_scope(_engine()) as session:
        account = change_credit_line(session, buyer=buyer, limit=minor, currency=cur, actor=str(who),
                                     reason=reason, unfreeze=unfreeze, at=datetime.now(UTC))
        data = _account_json(session, account)
    if as_json:
        typer.echo(json.dumps(data))
    else:
        out.print(text(buyer, f": credit limit {format_amount(minor, cur)}"))


MAX_REASON = 500


def _reason(value: str) -> str:
    """A reason for the audit trail: non-empty, one line, bounded."""
    import unicodedata

    value = value.strip()
    if not value:
        raise Rejected("--reason must not be empty")
    if len(value) > MAX_REASON:
        raise Rejected(f"--reason is {len(value)} characters long; at most {MAX_REASON}")
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in value):
        raise Rejected("--reason contains control or invisible characters")
    return value
