"""A policy that fails `bespoke policy check` is never pinned: `build_order_input`
refuses it, listing the problems (the CLI exits 2), and the check runs once per
policy content, not once per order."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from bespoke.domain.models import Actor, PaymentPlan
from bespoke.rules import find_policy, load_policy_text
from bespoke.rules import check as check_module
from bespoke.rules.check import check_policy, policy_problems
from bespoke.service import OrderRejected, build_order_input
from tests.processes import bespoke_command, clean_env, free_port

from .helpers import DEFAULT_TOML

# The default policy with R07 (buyer cancels in production) copied under a new id:
# two `unique` rows match every buyer cancellation in production, so a buyer could
# never cancel (each attempt fails with OverlapError).
R07 = re.search(r"\[\[tables\.cancellation\.rules\]\]\nid = \"R07\"\n(?:(?!\n\[).*\n)*", DEFAULT_TOML.read_text())


def overlapping_text(name: str = "overlap") -> str:
    assert R07 is not None
    text = DEFAULT_TOML.read_text(encoding="utf-8")
    text = re.sub(r'^name = ".*"$', f'name = "{name}"', text, count=1, flags=re.M)
    dup = R07.group(0).replace('id = "R07"', 'id = "R07b"')
    return text.replace(R07.group(0), R07.group(0) + "\n" + dup, 1)


def order(policy, **kw):
    return build_order_input(
        order_id=kw.get("order_id", "GATE-1"), buyer="alice", seller="acme", price=100_000, currency="CNY",
        plan=PaymentPlan.parse("staged:30/70"), production_days=14, policy=policy, created_by=Actor.parse("ops:olga"),
    )  # fmt: skip


def test_an_order_cannot_pin_a_policy_with_overlapping_unique_rows() -> None:
    policy = load_policy_text(overlapping_text(), "overlap.toml")
    with pytest.raises(OrderRejected) as info:
        order(policy)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("policy overlap@1.2.0 fails `bespoke policy check`")
    assert "rules 'R07' and 'R07b' both match" in message  # a golden case hits both rows


def test_an_order_cannot_pin_a_policy_whose_golden_cases_fail() -> None:
    text = DEFAULT_TOML.read_text(encoding="utf-8").replace("platform_fee_bps = 500", "platform_fee_bps = 450")
    with pytest.raises(OrderRejected, match=r"expected to_seller = 23750, got 23875"):
        order(load_policy_text(text, "fee.toml"))


def test_policy_problems_is_what_policy_check_reports_and_empty_for_the_default() -> None:
    policy = load_policy_text(overlapping_text(), "overlap.toml")
    assert policy_problems(policy) == check_policy(policy).problems != []
    assert policy_problems(find_policy("default")) == []


def test_the_check_runs_once_per_policy_content_not_once_per_order(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = check_module.check_policy

    def counting(policy):  # the real check, counted
        calls.append(policy.ref)
        return real(policy)

    monkeypatch.setattr(check_module, "check_policy", counting)
    # A fresh name, so no earlier test has cached this content.
    policy = load_policy_text(DEFAULT_TOML.read_text().replace('name = "default"', 'name = "gate-count"'), "g.toml")
    for i in range(500):  # an import of many rows from one policy
        order(policy, order_id=f"GATE-{i}")
    same_content = load_policy_text(DEFAULT_TOML.read_text().replace('name = "default"', 'name = "gate-count"'), "h.toml")
    assert same_content is not policy
    order(same_content)
    assert calls == ["gate-count@1.2.0"]


def test_order_create_with_a_policy_that_fails_check_exits_2_with_one_line(tmp_path: Path) -> None:
    d = tmp_path / "policies"
    d.mkdir()
    (d / "overlap.toml").write_text(overlapping_text(), encoding="utf-8")
    env = clean_env(BESPOKE_HOME=str(tmp_path / "home"), BESPOKE_POLICY_DIR=str(d),
                    TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}")  # fmt: skip
    proc = subprocess.run(
        [*bespoke_command(), "order", "create", "--buyer", "alice", "--seller", "acme", "--price", "1000.00",
         "--plan", "staged:30/70", "--policy", "overlap"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    [line] = proc.stderr.splitlines()
    assert line.startswith("error: policy overlap@1.2.0 fails `bespoke policy check`") and "'R07' and 'R07b'" in line


def test_an_orders_start_check_works_a_policy_out_once_and_each_content_on_its_own(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`check_pinned_policy` (every order's first decision) hashes the terms and pins
    the plugins once per policy content; another content gets its own answer."""
    from bespoke.activities import rules as rules_activities
    from bespoke.activities.rules import PolicyCheckRequest, RulesActivities
    from bespoke.rules import pin_policy
    from bespoke.store.db import get_engine

    pins: list[str] = []

    def counting(policy):  # the real pin, counted
        pins.append(policy.ref)
        return pin_policy(policy)

    monkeypatch.setattr(rules_activities, "pin_policy", counting)
    activities = RulesActivities(get_engine(f"sqlite:///{tmp_path}/rules.db"))
    # Fresh names, so no earlier test has cached these contents.
    good = load_policy_text(DEFAULT_TOML.read_text().replace('name = "default"', 'name = "start-check"'), "s.toml")
    bad = load_policy_text(overlapping_text("start-overlap"), "o.toml")

    def check(policy):
        return activities.check(PolicyCheckRequest(policy=policy.model_dump(mode="json"),
                                                   pin=pin_policy(policy).model_dump(mode="json")))

    answers = [check(good) for _ in range(20)]
    assert all(a.problems == [] for a in answers)
    assert check(bad).problems == policy_problems(bad) != []
    assert check(good).problems == []
    assert pins == ["start-check@1.2.0", "start-overlap@1.2.0"]
