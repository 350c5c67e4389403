"""`bespoke db current|upgrade` against the test database (SQLite, or PostgreSQL
with BESPOKE_TEST_DATABASE_URL), run as the installed command in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bespoke.store.db import head_revision


def bespoke(*args: str, url: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BESPOKE_", "TEMPORAL_"))}
    env |= {"BESPOKE_HOME": str(home), "BESPOKE_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "bespoke.cli.app", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_db_upgrade_brings_a_fresh_database_to_head_and_current_reports_it(database_url, tmp_path: Path):
    before = bespoke("db", "current", "--json", url=database_url, home=tmp_path)
    assert before.returncode == 0, before.stderr
    state = json.loads(before.stdout)
    assert state["current"] is None and state["head"] == head_revision() and state["up_to_date"] is False
    assert "***" in state["url"] or database_url.startswith("sqlite")  # never prints a password

    first = bespoke("db", "upgrade", "--json", url=database_url, home=tmp_path)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) | {"url": None} == {"url": None, "from": None, "to": head_revision(), "head": head_revision()}

    again = bespoke("db", "upgrade", url=database_url, home=tmp_path)
    assert again.returncode == 0 and "already at revision" in again.stdout, again

    after = bespoke("db", "current", "--json", url=database_url, home=tmp_path)
    assert json.loads(after.stdout)["up_to_date"] is True


def test_db_rejects_an_unsupported_driver_in_one_line(tmp_path: Path):
    result = bespoke("db", "current", url="postgresql+psycopg2://u@127.0.0.1/db", home=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: BESPOKE_DATABASE_URL: unsupported PostgreSQL driver in 'postgresql+psycopg2': use postgresql+psycopg:// (psycopg 3)"
    ]
