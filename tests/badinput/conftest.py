"""A real `bespoke up --headless` for the bad-input CLI tests (one per module), and
the checks that a refused command changed nothing: no workflow started in Temporal,
no row in the read model."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from bespoke.store.db import get_engine
from tests.processes import bespoke_command, clean_env, free_port  # noqa: F401 (re-exported)
from bespoke.store.tables import LedgerEntry, OrderRow

# Wall times measured by the tests, printed in the terminal summary (never asserted:
# speed is measured in bench/ as ratios).
TIMINGS: dict[str, float] = {}


@dataclass
class Cli:
    """Runs `bespoke ...` against one server."""

    home: Path
    env: dict[str, str]
    calls: list[list[str]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.env["TEMPORAL_ADDRESS"]

    def run(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(args))
        return subprocess.run([*bespoke_command(), *args], env={**self.env, **(env or {})}, capture_output=True,
                              text=True, timeout=timeout)

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = self.run(*args)
        assert proc.returncode == 0, f"bespoke {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
        return proc

    def fails(self, code: int, *args: str) -> str:
        """A command that must exit `code` with ONE line on stderr (no traceback, no usage box)."""
        proc = self.run(*args)
        assert proc.returncode == code, (
            f"bespoke {' '.join(a[:80] for a in args)}: expected exit {code}, got {proc.returncode}\n"
            f"{proc.stdout}\n{proc.stderr}")
        lines = proc.stderr.splitlines()
        assert len(lines) == 1, f"expected one stderr line, got: {proc.stderr!r}"
        assert lines[0].startswith("error: ") and "Traceback" not in proc.stderr
        return lines[0]

    @property
    def engine(self):
        return get_engine(f"sqlite:///{(self.home / 'bespoke.db').as_posix()}")

    def db_counts(self) -> tuple[int, int]:
        """(orders, ledger entries) in the read model."""
        with Session(self.engine) as session:
            orders = session.exec(select(func.count()).select_from(OrderRow)).one()
            entries = session.exec(select(func.count()).select_from(LedgerEntry)).one()
        return orders, entries


def start_up(home: Path, *extra_args: str) -> tuple[Cli, subprocess.Popen[str]]:
    env = clean_env(BESPOKE_HOME=str(home), TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
                    BESPOKE_UI_PORT=str(free_port()), BESPOKE_API_BIND="127.0.0.1:0")
    cli = Cli(home=home, env=env)
    with (home / "up.stdout").open("w") as out, (home / "up.stderr").open("w") as err:
        # The child keeps its own copies of the descriptors.
        proc = subprocess.Popen([*bespoke_command(), "up", "--headless", *extra_args], env=env, stdout=out,
                                stderr=err, text=True)
    deadline = time.monotonic() + 90
    # Ready once `up` prints its banner (`order list` answers from the read model alone).
    while "Press Ctrl-C to stop" not in (home / "up.stdout").read_text():
        if proc.poll() is not None:
            pytest.fail(f"bespoke up exited {proc.returncode}: {(home / 'up.stderr').read_text()}")
        if time.monotonic() > deadline:
            stop_up(proc)
            pytest.fail(f"bespoke up not ready in 90 s: {(home / 'up.stderr').read_text()}")
        time.sleep(0.3)
    return cli, proc


def stop_up(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    home = tmp_path_factory.mktemp("badinput-home")
    server, proc = start_up(home)
    try:
        yield server
    finally:
        stop_up(proc)
    stderr = (home / "up.stderr").read_text()
    assert "Traceback" not in stderr, stderr


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001
    if TIMINGS:
        terminalreporter.section("bad-input timings (wall clock, embedded server)")
        for name, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{name}: {seconds:.2f} s")
