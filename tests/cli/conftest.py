"""A real `bespoke up --headless` per test module, driven by real `bespoke`
subprocesses: the CLI contract as a script sees it (exit codes, one-line errors,
JSON on stdout)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bespoke.store.db import get_engine
from tests.processes import bespoke_command, clean_env, free_port  # noqa: F401 (re-exported)

# Wall times measured by the tests, printed in the terminal summary (never asserted:
# speed is measured in bench/ as ratios).
TIMINGS: dict[str, float] = {}


@dataclass
class Bespoke:
    """Runs `bespoke ...` against one `bespoke up`."""

    home: Path
    env: dict[str, str]
    calls: list[list[str]] = field(default_factory=list)

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(args))
        return subprocess.run([*bespoke_command(), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = self.run(*args)
        assert proc.returncode == 0, f"bespoke {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
        assert proc.stderr == "", proc.stderr
        return proc

    def json(self, *args: str) -> Any:
        """Run a command with --json; exit 0 and exactly one JSON document on stdout."""
        return json.loads(self.ok(*args, "--json").stdout)

    def fails(self, code: int, *args: str) -> str:
        """Run a command that must fail with `code` and ONE line on stderr, no traceback."""
        proc = self.run(*args)
        assert proc.returncode == code, (
            f"bespoke {' '.join(args)}: expected exit {code}, got {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
        lines = proc.stderr.splitlines()
        assert len(lines) == 1, f"expected one stderr line, got: {proc.stderr!r}"
        assert lines[0].startswith("error: ") and "Traceback" not in proc.stderr
        return lines[0]

    def status(self, order_id: str) -> dict[str, Any]:
        return self.json("order", "status", order_id)

    @property
    def engine(self):
        return get_engine(f"sqlite:///{(self.home / 'bespoke.db').as_posix()}")


@pytest.fixture(scope="module")
def bespoke(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bespoke]:
    home = tmp_path_factory.mktemp("bespoke-home")
    env = clean_env(
        BESPOKE_HOME=str(home),
        TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
        BESPOKE_UI_PORT=str(free_port()),
        BESPOKE_API_BIND="127.0.0.1:0",  # any free port: tests run side by side
    )
    cli = Bespoke(home=home, env=env)
    out = (home / "up.stdout").open("w")
    err = (home / "up.stderr").open("w")
    proc = subprocess.Popen([*bespoke_command(), "up", "--headless"], env=env, stdout=out, stderr=err, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"bespoke up exited {proc.returncode}: {(home / 'up.stderr').read_text()}")
            # The banner comes once the server answers and the worker starts (`order
            # list` reads only the read model: it answers before Temporal does).
            if "Press Ctrl-C to stop" in (home / "up.stdout").read_text():
                break
            if time.monotonic() > deadline:
                pytest.fail(f"bespoke up not ready in 60 s: {(home / 'up.stderr').read_text()}")
            time.sleep(0.2)
        yield cli
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # Ctrl-C: the worker drains, then the server stops
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        out.close()
        err.close()
    stderr = (home / "up.stderr").read_text()
    assert proc.returncode == 0, f"bespoke up exited {proc.returncode} on Ctrl-C: {stderr}"
    assert "Traceback" not in stderr, stderr


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001
    if TIMINGS:
        terminalreporter.section("bespoke CLI timings (wall clock, embedded server)")
        for name, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{name}: {seconds:.2f} s")
