"""One bad file in BESPOKE_POLICY_DIR does not block orders on the other policies:
it is listed as broken with its error, and the good ones are found and pinned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bespoke.cli.policy import app
from bespoke.domain.models import Actor, PaymentPlan
from bespoke.rules import PolicyError, find_policy, list_policies
from bespoke.rules.loader import scan_policies
from bespoke.service import build_order_input

from .helpers import DEFAULT_TOML


def policy_dir(tmp_path: Path) -> Path:
    d = tmp_path / "policies"
    d.mkdir()
    shop = DEFAULT_TOML.read_text(encoding="utf-8").replace('name = "default"', 'name = "shop"', 1)
    (d / "shop.toml").write_text(shop, encoding="utf-8")
    (d / "broken.toml").write_text('name = "broken"\nversion = \n', encoding="utf-8")
    (d / "deep.toml").write_text('name = "deep"\nversion = "1"\ndescription = ' + "[" * 5000 + "]" * 5000, encoding="utf-8")
    return d


def test_a_good_policy_next_to_bad_files_is_found_and_pinned(tmp_path: Path) -> None:
    d = policy_dir(tmp_path)
    shop = find_policy("shop", [d])
    assert [p.name for p in list_policies([d])] == ["default", "shop"]
    inp = build_order_input(
        order_id="DIR-1", buyer="alice", seller="acme", price=100_000, currency="CNY",
        plan=PaymentPlan.parse("full_prepayment"), production_days=14, policy=shop, created_by=Actor.parse("ops:olga"),
    )  # fmt: skip
    assert inp.pin["name"] == "shop"


def test_scan_reports_each_bad_file_with_its_error(tmp_path: Path) -> None:
    d = policy_dir(tmp_path)
    scan = scan_policies([d])
    broken = {b.path.name: b.problems for b in scan.broken}
    assert sorted(broken) == ["broken.toml", "deep.toml"]
    assert broken["broken.toml"][0].startswith(f"{d / 'broken.toml'}: not valid TOML")
    assert "nested more than 16 levels deep" in broken["deep.toml"][0]
    assert scan.files[("shop", "1.2.0")] == d / "shop.toml"


def test_a_policy_in_a_bad_file_is_not_found_and_the_error_says_why(tmp_path: Path) -> None:
    d = policy_dir(tmp_path)
    with pytest.raises(PolicyError) as info:
        find_policy("broken", [d])
    message = str(info.value)
    assert message.startswith("policy 'broken' not found; 2 policy files could not be loaded: ")
    assert f"{d / 'broken.toml'}: not valid TOML" in message and "\n" not in message


def test_policy_list_shows_broken_files_with_their_error_and_exits_0(tmp_path: Path) -> None:
    d = policy_dir(tmp_path)
    runner = CliRunner()
    r = runner.invoke(app, ["list", "--json", "--policy-dir", str(d)])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert [(p["name"], p["ok"]) for p in data["policies"]] == [("default", True), ("shop", True)]
    assert {Path(b["file"]).name for b in data["broken"]} == {"broken.toml", "deep.toml"}
    r = runner.invoke(app, ["list", "--policy-dir", str(d)], env={"COLUMNS": "400"})
    assert r.exit_code == 0, r.output
    broken_line = next(line for line in r.stdout.splitlines() if "broken.toml" in line)
    assert "broken: not valid TOML" in broken_line
