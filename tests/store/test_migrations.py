"""Alembic migrations: `get_engine` brings a database to head on SQLite and on
PostgreSQL (run these with BESPOKE_TEST_DATABASE_URL set for the latter), the
migrated schema is exactly the models' metadata, and several processes starting
at once on a fresh database migrate it once."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool
from sqlmodel import Session, SQLModel, select

from bespoke.store.db import (
    BASELINE_REVISION,
    BASELINE_TABLES,
    SCHEMA_HEAD,
    DatabaseUrlError,
    alembic_config,
    current_revision,
    get_engine,
    head_revision,
    migrate,
    normalize_url,
)
from bespoke.store.tables import OrderRow
from tests.conftest import postgres_test_url

TABLES = {
    "orders",
    "ledger_entries",
    "timeline",
    "decisions",
    "buyer_accounts",
    "credit_reservations",
    "bank_transfers",
    "credit_changes",
    "debts",
}


def schema_diff(engine) -> list:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, SQLModel.metadata)


def raw_engine(url: str):
    """An engine that does not migrate (for setting up and inspecting)."""
    return create_engine(normalize_url(url), poolclass=NullPool)


def order_row(order_id: str) -> OrderRow:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return OrderRow.model_validate(
        {
            "order_id": order_id,
            "stage": "created",
            "buyer": "alice",
            "seller": "bob",
            "payment_plan": "full",
            "price": 12_345,
            "currency": "CNY",
            "policy_name": "default",
            "policy_version": "1",
            "created_at": now,
            "updated_at": now,
        }
    )


def test_get_engine_migrates_a_fresh_database_to_head(database_url):
    engine = get_engine(database_url)
    assert head_revision() is not None
    assert current_revision(engine) == head_revision()
    assert TABLES <= set(inspect(engine).get_table_names())


def test_schema_head_constant_names_the_newest_migration():
    # get_engine skips Alembic when a database is at SCHEMA_HEAD: a new migration
    # must move the constant too, or databases would never be upgraded.
    assert SCHEMA_HEAD == head_revision()


def test_migrated_schema_equals_the_models_metadata(engine):
    # What `alembic revision --autogenerate` would write: nothing.
    assert schema_diff(engine) == []


def test_schema_comparison_reports_drift(engine):
    # The comparison above is only worth something if it sees a difference.
    with engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_orders_stage"))
        connection.execute(text("ALTER TABLE orders ADD COLUMN stray INTEGER"))
    diff = schema_diff(engine)
    kinds = {entry[0] for entry in diff if isinstance(entry, tuple)}
    assert {"add_index", "remove_column"} <= kinds, diff


def test_migrating_again_at_head_changes_nothing(engine):
    with Session(engine) as session:
        session.add(order_row("o-again"))
        session.commit()
    migrate(engine)
    assert current_revision(engine) == head_revision()
    with Session(engine) as session:
        assert session.exec(select(OrderRow.order_id)).all() == ["o-again"]
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1


def test_downgrade_to_base_and_upgrade_again(engine):
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert not TABLES & set(inspect(engine).get_table_names())
    migrate(engine)
    assert current_revision(engine) == head_revision()
    assert schema_diff(engine) == []


def test_database_built_by_create_all_is_adopted_without_losing_rows(database_url):
    # Databases made before migrations existed have the tables but no version.
    # (the baseline revision's schema, less the version table).
    legacy = raw_engine(database_url)
    with legacy.begin() as connection:
        command.upgrade(alembic_config(connection), BASELINE_REVISION)
        connection.exec_driver_sql("DROP TABLE alembic_version")
    assert set(BASELINE_TABLES) <= set(inspect(legacy).get_table_names())
    with legacy.begin() as connection:  # the baseline's columns only (later revisions add some)
        row = order_row("o-legacy").model_dump()
        baseline = [c["name"] for c in inspect(connection).get_columns("orders")]
        connection.execute(text(f"INSERT INTO orders ({', '.join(baseline)}) VALUES "
                                f"({', '.join(':' + c for c in baseline)})"), {c: row[c] for c in baseline})
    legacy.dispose()

    engine = get_engine(database_url)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        stamped = MigrationContext.configure(connection).get_current_revision()
    assert stamped == head_revision()
    assert BASELINE_REVISION in {head_revision(), *_ancestors(head_revision())}
    with Session(engine) as session:
        assert session.get(OrderRow, "o-legacy").price == 12_345
    assert schema_diff(engine) == []


def _ancestors(revision: str | None) -> set[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return {rev.revision for rev in script.iterate_revisions(revision, "base")}


MIGRATOR = """
import sys, time
from pathlib import Path
from bespoke.store.db import current_revision, get_engine
url, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.005)
print(current_revision(get_engine(url)))
"""


def test_several_processes_starting_at_once_migrate_a_fresh_database_once(database_url, tmp_path: Path):
    count = 6
    go = tmp_path / "go"
    readies = [tmp_path / f"ready-{i}" for i in range(count)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATOR, database_url, str(ready), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for ready in readies
    ]
    try:
        deadline = time.monotonic() + 60
        while not all(ready.exists() for ready in readies):  # all imported: start together
            assert time.monotonic() < deadline, "migrator processes did not start"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
            time.sleep(0.01)
        go.touch()
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
        assert out.strip() == head_revision(), (out, err)
    engine = get_engine(database_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head_revision()]
    assert schema_diff(engine) == []


def test_postgresql_urls_use_psycopg_3():
    assert normalize_url("postgresql://u:p@h:5432/db") == "postgresql+psycopg://u:p@h:5432/db"
    assert normalize_url("postgres://u@h/db?sslmode=require") == "postgresql+psycopg://u@h/db?sslmode=require"
    assert normalize_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x/bespoke.db") == "sqlite:///x/bespoke.db"
    with pytest.raises(DatabaseUrlError, match="psycopg"):
        normalize_url("postgresql+psycopg2://u@h/db")


@pytest.mark.skipif(postgres_test_url() is None, reason="needs BESPOKE_TEST_DATABASE_URL (PostgreSQL)")
def test_plain_postgresql_url_connects_with_psycopg(database_url):
    plain = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    assert plain.startswith("postgresql://")
    engine = get_engine(plain)
    try:
        assert engine.dialect.driver == "psycopg"
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
