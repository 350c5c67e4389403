"""`bespoke portal ...`: people's sign-in to the web portal (passwords, invitations).

Machines use the API's bearer tokens; these commands are for operations staff on
the trusted side (the ops CLI), like `buyer credit`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from bespoke.cli.errors import Rejected
from bespoke.settings import get_settings

app = typer.Typer(help="Web portal sign-in: set a person's password or send an invitation link.",
                  no_args_is_help=True)
AsOps = Annotated[str, typer.Option("--as", help="The operator doing this, ops:NAME (recorded).")]


def _ops(actor: str) -> str:
    from bespoke.portal.auth import AuthError, parse_principal

    try:
        p = parse_principal(actor)
    except AuthError as err:
        raise Rejected(f"--as: {str(err).removeprefix('account: ')}") from None
    if p.role != "ops":
        raise Rejected(f"--as: only ops may do this, not {p.role}")
    return p.ref


def _principal(text: str):
    from bespoke.portal.auth import AuthError, parse_principal

    try:
        return parse_principal(text)
    except AuthError as err:
        raise Rejected(str(err).replace("account: ", "ACCOUNT: ", 1)) from None


def _engine():
    from bespoke.store.db import get_engine

    return get_engine(get_settings().effective_database_url)


@app.command("password")
def password(
    account: Annotated[str, typer.Argument(help="The person, ROLE:NAME (buyer, seller or ops).")],
    actor: AsOps,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input "
                                                 "(first line) instead of prompting.")] = False,
) -> None:
    """Set (or replace) a person's portal password; their other sessions end."""
    from bespoke.portal.auth import AuthError, set_password

    by = _ops(actor)
    p = _principal(account)
    secret = sys.stdin.readline().rstrip("\r\n") if password_stdin else typer.prompt(
        "Password", hide_input=True, confirmation_prompt=True)
    try:
        set_password(_engine(), p, secret, set_by=by)
    except AuthError as err:
        raise Rejected(str(err)) from None
    typer.echo(f"{p.ref}: password set")


@app.command("invite")
def invite_cmd(
    account: Annotated[str, typer.Argument(help="The person, ROLE:NAME (buyer, seller or ops).")],
    actor: AsOps,
    base_url: Annotated[str, typer.Option(help="The portal's address, for the printed link.")] = "http://127.0.0.1:8000",
) -> None:
    """Print a one-time link (valid 7 days) with which the person chooses a password."""
    from bespoke.portal.auth import AuthError, invite

    by = _ops(actor)
    p = _principal(account)
    try:
        token = invite(_engine(), p, created_by=by)
    except AuthError as err:
        raise Rejected(str(err)) from None
    typer.echo(f"{p.ref}: invitation {base_url.rstrip('/')}/invite/{token}")
