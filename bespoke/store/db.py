"""Engine, sessions and schema migrations. Only activities (and read-only CLI
queries) open sessions.

`get_engine(url)` brings the database to the newest Alembic revision before it
returns, on SQLite and PostgreSQL alike, so a worker, `bespoke up` or a CLI
command never sees a half-built schema. Several processes may start at once:
on PostgreSQL the upgrade runs under a transaction-scoped advisory lock, on a
SQLite file inside one `BEGIN IMMEDIATE` transaction (both DBs have
transactional DDL), so the first process migrates and the others wait, then
find the schema at head and do nothing.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from typing import TYPE_CHECKING

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool
from sqlmodel import Session, SQLModel, create_engine

from bespoke.store import tables  # noqa: F401  (registers the tables)

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
# The revision that matches the schema `create_all` built before migrations
# existed; an unversioned database with our tables is adopted at this revision.
BASELINE_REVISION = "0001"
# The tables that revision has (later revisions add their own).
BASELINE_TABLES = ("orders", "ledger_entries", "timeline", "decisions", "buyer_accounts", "credit_reservations",
                   "bank_transfers")
# The newest revision in migrations/versions (a test keeps the two equal). A
# database already there is opened without importing Alembic at all: every CLI
# command opens the database, and Alembic costs more than the check.
SCHEMA_HEAD = "0011"
# pg_advisory_xact_lock key serialising migrations in one PostgreSQL database
# (bytes of "bespoke" as a signed 64-bit integer).
MIGRATION_LOCK_KEY = int.from_bytes(b"bespoke", "big")


class DatabaseUrlError(ValueError):
    """A database URL this service cannot use."""


def normalize_url(url: str) -> str:
    """Accept `postgresql://` and `postgres://` (what most hosts hand out) and
    use the psycopg 3 driver for them; other URLs pass unchanged."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    if url.startswith(("postgresql+psycopg2://", "postgresql+asyncpg://", "postgresql+pg8000://")):
        raise DatabaseUrlError(
            f"unsupported PostgreSQL driver in {url.split('://', 1)[0]!r}: use postgresql+psycopg:// (psycopg 3)"
        )
    return url


def sqlite_file(url: str) -> str | None:
    """The file path of a SQLite URL, or None for an in-memory database."""
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else ""
    return None if not path or path == ":memory:" or path.startswith("file::memory:") else path


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the CLI read while the worker writes; the busy timeout rides out
    # short write locks instead of failing an activity.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for `url` (normalised) that does NOT migrate: for inspecting a
    database as it is. Everything else uses `get_engine`."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _at_head(engine: Engine) -> bool:
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except SQLAlchemyError:  # no version table yet
        return False
    return versions == [SCHEMA_HEAD]


@functools.cache
def _engine_for(url: str) -> Engine:
    engine = make_engine(url)
    try:
        if not _at_head(engine):
            migrate(engine)
        if url.startswith("sqlite") and (path := sqlite_file(url)):
            guard_file(engine, path)
    except BaseException:
        engine.dispose()
        raise
    return engine


def get_engine(url: str) -> Engine:
    """One engine per database URL, with the schema migrated to head."""
    return _engine_for(normalize_url(url))


# --- Migrations -------------------------------------------------------------------


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic configured in code (no alembic.ini): the scripts ship inside the
    package, and `env.py` runs on the connection passed here."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest revision among the migration scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: not versioned yet)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection, revision: str) -> None:
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    config = alembic_config(connection)
    if MigrationContext.configure(connection).get_current_revision() is None and inspect(connection).has_table(
        "orders"
    ):
        # Built by `create_all` before migrations existed: the baseline revision
        # creates only the tables it lacks (if_not_exists), the later ones follow.
        command.upgrade(config, BASELINE_REVISION)
    command.upgrade(config, revision)


@contextmanager
def _sqlite_write_locked(engine: Engine) -> Iterator[Connection]:
    """A connection inside `BEGIN IMMEDIATE`: it holds SQLite's write lock for the
    whole migration, so concurrent migrators queue behind it (busy timeout)."""
    lock_engine = create_engine(engine.url, poolclass=NullPool, connect_args={"timeout": 120})

    @event.listens_for(lock_engine, "connect")
    def _connect(dbapi_connection, record) -> None:
        _sqlite_pragmas(dbapi_connection, record)
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves

    @event.listens_for(lock_engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    try:
        with lock_engine.begin() as connection:
            yield connection
    finally:
        lock_engine.dispose()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database behind `engine` to `revision`; safe to call from
    several processes at once, and a no-op when already there."""
    dialect = engine.dialect.name
    if dialect == "postgresql":
        with engine.begin() as connection:
            # Released at commit; a second migrator blocks here, then finds head.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            _upgrade(connection, revision)
    elif dialect == "sqlite" and sqlite_file(engine.url.render_as_string(hide_password=False)):
        with _sqlite_write_locked(engine) as connection:
            _upgrade(connection, revision)
    else:  # in-memory SQLite: one process, nothing to race with
        with engine.begin() as connection:
            _upgrade(connection, revision)


# --- The SQLite file under us ---------------------------------------------------------
#
# Deleting `.bespoke/bespoke.db` under a running worker used to lose the read model
# silently: the worker's pooled connections kept writing to the deleted file (its
# inode lives on while a descriptor is open), and a reconciliation read the same
# ghost and said every order balanced. A SQLite engine therefore remembers the
# file's identity (device and inode) once migrated, and every session checks it:
# a file that vanished or was swapped for another fails the session with
# DatabaseFileChanged, before anything is read or written.


class DatabaseFileChanged(RuntimeError):
    """The SQLite file this process opened was deleted, moved or replaced."""


_log = logging.getLogger("bespoke.store")


def _identity(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def guard_file(engine: Engine, path: str) -> None:
    """Remember the identity of `engine`'s SQLite file (it exists: migrated), and
    refuse a new connection when the file is gone: sqlite3 would create an empty
    one at the path and carry on."""
    engine._bespoke_file = (str(Path(path).resolve()), _identity(path))  # type: ignore[attr-defined]

    @event.listens_for(engine, "do_connect")
    def _before_connect(_dialect, _record, _cargs, _cparams) -> None:
        check_file(engine)


def check_file(engine: Engine) -> None:
    """Raise DatabaseFileChanged (and log it as an error) when the SQLite file
    `engine` opened is no longer the file at its path. No-op for other databases."""
    guard = getattr(engine, "_bespoke_file", None)
    if guard is None:
        return
    path, identity = guard
    try:
        found = _identity(path)
    except FileNotFoundError:
        problem = "was deleted or moved away"
    else:
        if found == identity:
            return
        problem = "was replaced by another file"
    message = (f"the read-model database {path} {problem} after this process opened it; nothing more is "
               f"written until the original file is back, or until it is rebuilt (`bespoke db rebuild`) and "
               f"this process restarted")
    _log.error(message)
    raise DatabaseFileChanged(message)


# --- Sessions ---------------------------------------------------------------------


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session committed at the end (rolled back on error). Checks first that a
    SQLite file is still the one this process opened (see DatabaseFileChanged)."""
    check_file(engine)
    with Session(engine) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
