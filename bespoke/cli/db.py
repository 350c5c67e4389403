"""`bespoke db ...`: the schema of the read model, ledger and audit tables.

Every process already migrates to head when it opens the database; these
commands let an operator do it ahead of a deploy, or check where a database is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bespoke.cli.errors import CliError
from bespoke.settings import get_settings

app = typer.Typer(help="Database schema: migrate to the newest revision, or show the current one.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")]


def _target() -> tuple[str, str]:
    """The configured URL, and the same with any password masked (for printing)."""
    from sqlalchemy import make_url

    from bespoke.store.db import DatabaseUrlError, normalize_url

    url = get_settings().effective_database_url
    try:
        url = normalize_url(url)
        shown = make_url(url).render_as_string(hide_password=True)
    except (DatabaseUrlError, ValueError) as err:
        raise CliError(f"BESPOKE_DATABASE_URL: {err}") from None
    return url, shown


def _database_error(shown: str, err: Exception) -> CliError:
    detail = str(getattr(err, "orig", None) or err).strip().splitlines()
    return CliError(f"database {shown}: {detail[0] if detail else type(err).__name__}")


@app.command()
def current(as_json: JsonOpt = False) -> None:
    """Show the database's schema revision and the newest one this version ships.

    Read-only: it neither migrates nor creates a missing SQLite file."""
    from sqlalchemy.exc import SQLAlchemyError

    from bespoke.store.db import current_revision, head_revision, make_engine, sqlite_file

    url, shown = _target()
    head = head_revision()
    path = sqlite_file(url) if url.startswith("sqlite") else None
    exists = path is None or Path(path).exists()
    revision = None
    if exists:
        engine = make_engine(url)
        try:
            revision = current_revision(engine)
        except SQLAlchemyError as err:
            raise _database_error(shown, err) from None
        finally:
            engine.dispose()
    data = {"url": shown, "exists": exists, "current": revision, "head": head, "up_to_date": revision == head}
    if as_json:
        typer.echo(json.dumps(data))
        return
    if not exists:
        typer.echo(f"{shown}: no database yet (created at revision {head} on first use)")
    elif revision == head:
        typer.echo(f"{shown}: at revision {revision} (head)")
    else:
        typer.echo(f"{shown}: at revision {revision or 'none (unversioned)'}; head is {head} — run `bespoke db upgrade`")


@app.command()
def upgrade(as_json: JsonOpt = False) -> None:
    """Migrate the database to the newest revision (creating it if needed).

    Safe while workers run and when several processes start at once: the upgrade
    holds a PostgreSQL advisory lock, or SQLite's write lock, while it runs."""
    from sqlalchemy.exc import SQLAlchemyError

    from bespoke.store.db import current_revision, head_revision, make_engine, migrate

    url, shown = _target()
    engine = make_engine(url)
    try:
        before = current_revision(engine)
        migrate(engine)
        after = current_revision(engine)
    except SQLAlchemyError as err:
        raise _database_error(shown, err) from None
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps({"url": shown, "from": before, "to": after, "head": head_revision()}))
    elif before == after:
        typer.echo(f"{shown}: already at revision {after} (head)")
    else:
        typer.echo(f"{shown}: migrated from {before or 'empty'} to {after}")
