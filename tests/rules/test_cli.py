from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from bespoke.cli.policy import app

from .helpers import DEFAULT_TOML, default_policy

runner = CliRunner()

OVERLAPPING = """
name = "overlap"
version = "1"
[tables.t]
[[tables.t.rules]]
id = "A"
because = "a"
when = { n = { le = 10 } }
[[tables.t.rules]]
id = "B"
because = "b"
when = { n = { ge = 10 } }
[[cases]]
name = "low"
table = "t"
given = { n = 1 }
[[cases]]
name = "high"
table = "t"
given = { n = 11 }
"""


def test_check_default_policy_exits_0() -> None:
    r = runner.invoke(app, ["check", str(DEFAULT_TOML)])
    assert r.exit_code == 0, r.output
    n = len(default_policy().cases)
    assert f"{n}/{n} cases pass" in r.stdout and "0 overlaps" in r.stdout and "0 unreached rows" in r.stdout


def test_check_overlapping_policy_exits_2_naming_both_rows(tmp_path: Path) -> None:
    f = tmp_path / "overlap.toml"
    f.write_text(OVERLAPPING)
    r = runner.invoke(app, ["check", str(f)])
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [
        "error: tables.t: rules 'A' and 'B' overlap under hit policy unique (both match e.g. n=10)"
    ]


def test_check_invalid_policy_prints_one_line_per_problem_and_json(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text('name = "bad"\nversion = "1"\n[fees]\nplatform_fee_bps = -1\n[deadlines]\ndeposit = "3d"\n')
    r = runner.invoke(app, ["check", str(f)])
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith(f"error: {f}: ") for line in lines)
    assert "Traceback" not in r.output
    r = runner.invoke(app, ["check", str(f), "--json"])
    assert r.exit_code == 2 and json.loads(r.stdout)["ok"] is False


def test_check_json_reports_cases() -> None:
    r = runner.invoke(app, ["check", str(DEFAULT_TOML), "--json"])
    data = json.loads(r.stdout)
    assert r.exit_code == 0 and data["ok"] and len(data["cases"]) == len(default_policy().cases) >= 46


def test_list_and_show_with_policy_dir_env(tmp_path: Path) -> None:
    (tmp_path / "shop.toml").write_text('name = "shop"\nversion = "2"\ndescription = "Shop terms"\n')
    r = runner.invoke(app, ["list", "--json"], env={"BESPOKE_POLICY_DIR": str(tmp_path)})
    assert r.exit_code == 0
    refs = [(p["name"], p["version"]) for p in json.loads(r.stdout)["policies"]]
    assert ("shop", "2") in refs and ("default", "1.2.0") in refs
    r = runner.invoke(app, ["show", "shop@2", "--policy-dir", str(tmp_path)])
    assert r.exit_code == 0 and "shop@2" in r.stdout


def test_show_default_in_plain_words_and_json() -> None:
    r = runner.invoke(app, ["show", "default"])
    assert r.exit_code == 0
    assert "During production" in r.stdout or "during production" in r.stdout
    assert "Late delivery" in r.stdout
    r = runner.invoke(app, ["show", "default@1.2.0", "--json"])
    data = json.loads(r.stdout)
    assert data["deadlines"]["inspection_window"] == "P10D" and len(data["sha256"]) == 64
    assert data["plain_words"]["cancellation"]


def test_show_unknown_policy_is_one_line_exit_2() -> None:
    r = runner.invoke(app, ["show", "nope"])
    assert r.exit_code == 2 and r.stderr.strip() == "error: policy 'nope' not found"


def test_every_option_has_help() -> None:
    import typer.main

    group = typer.main.get_command(app)
    for name, cmd in group.commands.items():  # type: ignore[attr-defined]
        assert cmd.help, name
        for param in cmd.params:
            assert getattr(param, "help", None), f"{name} {param.name}"


def test_check_as_subprocess_exit_code() -> None:
    code = "from bespoke.cli.policy import app; app()"
    out = subprocess.run(
        [sys.executable, "-c", code, "check", str(DEFAULT_TOML)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
