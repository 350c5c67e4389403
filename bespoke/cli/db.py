"""`bespoke db ...`: the schema of the read model, ledger and audit tables.

Every process already migrates to head when it opens the database; these
commands let an operator do it ahead of a deploy, or check where a database is.
`bespoke db rebuild` restores the read model from the workflows (bespoke/rebuild.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bespoke.cli.errors import CliError
from bespoke.settings import get_settings

app = typer.Typer(help="Database schema (migrate, show the revision); rebuild the read model from the workflows.",
                  no_args_is_help=True)
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


@app.command()
def rebuild(as_json: JsonOpt = False) -> None:
    """Restore the orders, ledger, timeline and decisions tables from the order
    workflows on the task queue (running and closed), e.g. after the database was
    lost: each workflow's recorded ledger postings and read-model updates are
    applied again. Idempotent (a second run adds nothing) and safe while workers
    run. Buyer accounts, credit lines and bank transfers are not in the workflows
    and are not restored."""
    from sqlalchemy.exc import SQLAlchemyError

    from bespoke.cli.errors import long_running, run_async
    from bespoke.store.db import get_engine

    long_running()
    url, shown = _target()
    settings = get_settings()
    try:
        engine = get_engine(url)
    except SQLAlchemyError as err:
        raise _database_error(shown, err) from None
    try:
        report = run_async(_rebuild(settings, engine))
    except SQLAlchemyError as err:
        raise _database_error(shown, err) from None
    data = {"url": shown, "orders": report.orders, "runs": report.runs, "inputs": report.inputs,
            "added": report.added}
    if as_json:
        typer.echo(json.dumps(data))
        return
    added = ", ".join(f"{n} {name}" for name, n in report.added.items())
    typer.echo(f"{shown}: rebuilt from {report.orders} order workflows ({report.runs} runs, {report.inputs} recorded "
               f"writes); rows added: {added}")


async def _rebuild(settings, engine):
    from rich.console import Console

    from bespoke.rebuild import rebuild
    from bespoke.runtime.client import connect

    client = await connect(settings)
    console = Console(stderr=True)
    if not console.is_terminal:  # scripts: nothing on stderr
        return await rebuild(client, engine, task_queue=settings.task_queue)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("rebuilding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("rebuild", total=None)
        return await rebuild(client, engine, task_queue=settings.task_queue,
                             progress=lambda done, total: bar.update(task, completed=done, total=total))
