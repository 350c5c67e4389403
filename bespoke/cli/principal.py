"""`bespoke principal ...`: the HTTP API's principals and their tokens.

Operators run these on the trusted side (database access). A token, and an
integration's callback secret, is printed once: only its SHA-256 is stored."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from bespoke.cli.errors import Rejected
from bespoke.settings import get_settings

app = typer.Typer(help="HTTP API principals: add one (its token is printed once), list, revoke, rotate.",
                  no_args_is_help=True)
PrincipalArg = Annotated[str, typer.Argument(help="ROLE:NAME (buyer, seller, carrier, ops, integration).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _engine():
    from bespoke.store.db import get_engine

    return get_engine(get_settings().effective_database_url)


def _issued(issued, as_json: bool, verb: str) -> None:
    if as_json:
        typer.echo(json.dumps({"principal": issued.principal, "token": issued.token,
                               "webhook_secret": issued.webhook_secret}))
        return
    typer.echo(f"{verb} {issued.principal}. Its API token (shown once; store it now):")
    typer.echo(issued.token)
    if issued.webhook_secret:
        typer.echo("Callback signing secret (Standard Webhooks; shown once):")
        typer.echo(issued.webhook_secret)


@app.command("add")
def add(
    principal: PrincipalArg,
    scope: Annotated[list[str] | None, typer.Option("--scope", help="read (GET only); for an integration: "
                                                    "carrier:NAME or bank. Repeatable.")] = None,
    actor: Annotated[str, typer.Option("--as", help="The operator adding it, ops:NAME (recorded).")] = "ops:cli",
    email: Annotated[str | None, typer.Option("--email", help="Address its reminders and decisions are emailed "
                                              "to (with BESPOKE_SMTP_URL set).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a principal and print its API token once."""
    from bespoke.api import principals as p

    try:
        issued = p.add(_engine(), principal, scopes=list(scope or []), created_by=actor[:250], email=email)
    except p.PrincipalError as err:
        raise Rejected(str(err)) from None
    _issued(issued, as_json, "Added")


@app.command("rotate")
def rotate(
    principal: PrincipalArg,
    secret: Annotated[bool, typer.Option("--secret", help="Also a new callback secret (integrations).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Issue a new token (printed once); the old one stops working at once."""
    from bespoke.api import principals as p

    try:
        issued = p.rotate(_engine(), principal, secret_too=secret)
    except p.PrincipalError as err:
        raise Rejected(str(err)) from None
    _issued(issued, as_json, "Rotated")


@app.command("set-email")
def set_email(
    principal: PrincipalArg,
    address: Annotated[str, typer.Argument(help="The address; \"\" removes it (no more email).")],
) -> None:
    """Set the address a principal's reminders and decisions are emailed to."""
    from bespoke.api import principals as p

    try:
        stored = p.set_email(_engine(), principal, address)
    except p.PrincipalError as err:
        raise Rejected(str(err)) from None
    typer.echo(f"{principal.strip()}: email {'to ' + stored if stored else 'off'}.")


@app.command("revoke")
def revoke(principal: PrincipalArg) -> None:
    """Revoke a principal's token: its next request is refused (401)."""
    from bespoke.api import principals as p

    try:
        p.revoke(_engine(), principal)
    except p.PrincipalError as err:
        raise Rejected(str(err)) from None
    typer.echo(f"Revoked {principal.strip()}.")


@app.command("list")
def list_principals(as_json: JsonOpt = False) -> None:
    """Every principal (never a token)."""
    from bespoke.api import principals as p

    rows = [{"principal": r.principal, "role": r.role, "name": r.name, "scopes": r.scopes.split(), "email": r.email,
             "revoked": r.revoked, "created_at": r.created_at.isoformat(),
             "rotated_at": r.rotated_at.isoformat() if r.rotated_at else None} for r in p.list_all(_engine())]
    if as_json:
        typer.echo(json.dumps({"principals": rows}, ensure_ascii=False))
        return
    from rich.table import Table

    from bespoke.cli.order.common import out
    from bespoke.cli.output import cell

    table = Table("principal", "scopes", "email", "state", "created (UTC)", "rotated (UTC)")
    for r in rows:
        table.add_row(cell(r["principal"]), cell(" ".join(r["scopes"])), cell(r["email"] or ""),
                      "revoked" if r["revoked"] else "active",
                      r["created_at"][:16].replace("T", " "), (r["rotated_at"] or "")[:16].replace("T", " "))
    out.print(table)
