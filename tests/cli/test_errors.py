"""Errors of commands that need no server, through the real `bespoke` command:
one line on stderr, prefixed `error: `, with the contract's exit code."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bespoke.cli.errors import EXIT_REJECTED

from .conftest import bespoke_command, clean_env


def run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*bespoke_command(), *args], env=clean_env(BESPOKE_HOME=str(home)), capture_output=True,
                          text=True, timeout=120)


def test_policy_errors_are_prefixed_like_every_other_command(tmp_path: Path) -> None:
    for args, text in ((["policy", "show", "nosuch"], "policy 'nosuch' not found"),
                       (["policy", "check", str(tmp_path / "nonexistent.toml")], "nonexistent.toml")):
        proc = run(*args, home=tmp_path)
        assert proc.returncode == EXIT_REJECTED, proc
        assert proc.stderr.splitlines() == [proc.stderr.strip()] and proc.stderr.startswith("error: "), proc.stderr
        assert text in proc.stderr


def test_every_problem_of_a_failing_policy_check_is_an_error_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nversion = "1"\n[fees]\nplatform_fee_bps = -1\n[deadlines]\ndeposit = "3d"\n')
    proc = run("policy", "check", str(bad), home=tmp_path)
    assert proc.returncode == EXIT_REJECTED
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and all(line.startswith(f"error: {bad}: ") for line in lines), lines
