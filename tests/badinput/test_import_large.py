"""A large import file through the real `bespoke order import`, against an embedded
Temporal dev server (in memory; no worker: the import only starts workflows, and a
worker running thousands of new orders would compete for the same two cores). The
wall times are printed in the terminal summary, never asserted.

Rows: BESPOKE_BADINPUT_IMPORT_ROWS (default 10,000); every 500th row has a bad
price. Shown: a progress bar on a terminal, one stderr line per rejected row, the
per-row JSON report for every row, and a second run that creates nothing: each
order exists exactly once in Temporal.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bespoke.cli.errors import EXIT_REJECTED
from bespoke.runtime.client import connect
from bespoke.runtime.embedded import EmbeddedServer
from bespoke.settings import Settings

from .conftest import TIMINGS, Cli, clean_env, free_port

ROWS = int(os.environ.get("BESPOKE_BADINPUT_IMPORT_ROWS", "10000"))
BAD_EVERY = 500


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedServer]:
    home = tmp_path_factory.mktemp("import-large")
    settings = Settings(home=home, temporal_address=f"127.0.0.1:{free_port()}", ui_port=free_port())
    async with EmbeddedServer(settings, in_memory=True, headless=True) as embedded:
        yield embedded


async def test_large_import_reports_every_row_with_progress_and_reruns_without_duplicates(
    server: EmbeddedServer, tmp_path: Path,
) -> None:
    t = uuid.uuid4().hex[:6].upper()
    path = tmp_path / "big.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["order_id", "buyer", "seller", "price", "currency", "plan", "production_days", "title"])
        for i in range(1, ROWS + 1):
            bad = i % BAD_EVERY == 0
            out.writerow([f"BIG-{t}-{i:05d}", ["alice", "张伟", "🦊 fox"][i % 3], "acme",
                          "12.345" if bad else f"{100 + i}.50", "CNY", ["full_prepayment", "staged:30/70"][i % 2],
                          "14", f"item {i}"])
    bad_rows = list(range(BAD_EVERY, ROWS + 1, BAD_EVERY))
    good = ROWS - len(bad_rows)
    cli = Cli(home=server.home, env=clean_env(BESPOKE_HOME=str(server.home), TEMPORAL_ADDRESS=server.address))

    # First run, as a person at a terminal sees it (rich renders to the stderr pipe).
    started = time.perf_counter()
    first = await asyncio.to_thread(cli.run, "order", "import", str(path), timeout=1800,
                                    env={"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "NO_COLOR": "1"})
    TIMINGS[f"import {ROWS} rows, first run ({good} created)"] = time.perf_counter() - started
    assert first.returncode == EXIT_REJECTED, first.stderr[-2000:]
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", first.stdout)  # rich styles numbers on a terminal
    assert f"{good} created, 0 already existed, {len(bad_rows)} rejected" in plain
    assert re.search(rf"importing.*\b\d+/{ROWS}\b", first.stderr), "no progress bar"
    rejected = [line for line in first.stderr.splitlines() if ": rejected: " in line]
    assert [int(re.search(r"row (\d+):", line).group(1)) for line in rejected] == bad_rows
    assert all("more than 2 decimal places" in line for line in rejected)

    # Second run, as a script sees it: one JSON document, every row reported.
    started = time.perf_counter()
    second = await asyncio.to_thread(cli.run, "order", "import", str(path), "--json", timeout=1800)
    TIMINGS[f"import {ROWS} rows, second run (all exist)"] = time.perf_counter() - started
    assert second.returncode == EXIT_REJECTED
    report = json.loads(second.stdout)
    assert (report["created"], report["exists"], report["rejected"]) == (0, good, len(bad_rows))
    assert [r["row"] for r in report["results"]] == list(range(1, ROWS + 1))
    assert second.stderr == ""  # no progress bar off a terminal

    # Each order exactly once in Temporal (visibility catches up within seconds).
    client = await connect(server.settings)
    query = "WorkflowType = 'OrderWorkflow'"
    for _ in range(120):
        ids = [w.id async for w in client.list_workflows(query, page_size=1000)]
        if len(ids) >= good:
            break
        await asyncio.sleep(0.5)
    ours = [i for i in ids if i.startswith(f"order-BIG-{t}-")]
    assert len(ours) == len(set(ours)) == good
    assert {f"order-BIG-{t}-{n:05d}" for n in bad_rows}.isdisjoint(ours)
