from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest

from bespoke.rules import Policy, PolicyError, find_policy, list_policies, load_policy, load_policy_text, pin_policy
from bespoke.rules.durations import duration_words, format_duration, parse_duration

from .helpers import DEFAULT_TOML, default_policy

BAD_STAGE = """
name = "bad"
version = "1"
[tables.cancellation]
[[tables.cancellation.rules]]
id = "A"
because = "a"
when = { stage = "awaiting_acceptance" }
[[tables.cancellation.rules]]
id = "B"
because = "b"
when = { stage = "awaiting_deposit" }
[[tables.cancellation.rules]]
id = "C"
because = "c"
when = { stage = "in_production" }
[[tables.cancellation.rules]]
id = "D"
because = "d"
when = { stage = "in_prod" }
"""


def test_unknown_stage_error_names_file_and_field_path() -> None:
    with pytest.raises(PolicyError) as info:
        load_policy_text(BAD_STAGE, "bad.toml")
    msg = str(info.value)
    assert msg.startswith("bad.toml: tables.cancellation.rules[3].when.stage.eq: expected one of awaiting_acceptance")
    assert "got 'in_prod'" in msg
    assert len(info.value.problems) == 1


@pytest.mark.parametrize(
    ("snippet", "path", "expected"),
    [
        ('[deadlines]\ndeposit = "3 days"', "deadlines.deposit", "ISO-8601 duration"),
        ('[deadlines]\ndeposit = "P1M"', "deadlines.deposit", "years and months have no fixed length"),
        ("[deadlines]\ndeposit = 3", "deadlines.deposit", "ISO-8601 duration"),
        ('[deadlines]\ndeposit = "P1.5D"', "deadlines.deposit", "ISO-8601 duration"),
        ('[deadlines]\nbogus = "P1D"', "deadlines.bogus", "unknown field"),
        ("[fees]\nplatform_fee_bps = 10001", "fees.platform_fee_bps", "less than or equal to 10000"),
        ("[fees]\nplatform_fee_bps = 5.5", "fees.platform_fee_bps", "integer"),
        ("[payment_plans]\nstaged_ratios = [[30, 60]]", "payment_plans.staged_ratios", "summing to 100"),
        ('[payment_plans]\nallowed = ["barter"]', "payment_plans.allowed[0]", "full_prepayment"),
        ('[limits]\ncurrencies = ["usd"]', "limits.currencies[0]", "pattern"),
    ],
)
def test_section_errors_name_the_field_and_what_was_expected(snippet: str, path: str, expected: str) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy_text(f'name = "x"\nversion = "1"\n{snippet}\n', "x.toml")
    line = info.value.problems[0]
    assert line.startswith(f"x.toml: {path}: "), line
    assert expected in line


def test_every_problem_is_one_line() -> None:
    text = 'name = "x"\nversion = "1"\n[fees]\nplatform_fee_bps = -1\nlate_penalty_cap_bps = "a"\n[deadlines]\nbalance = "soon"\n'
    with pytest.raises(PolicyError) as info:
        load_policy_text(text, "x.toml")
    assert len(info.value.problems) == 3
    assert str(info.value).count("\n") == 2
    assert all(p.startswith("x.toml: ") for p in info.value.problems)


def test_unknown_operator_and_bad_between_are_rejected() -> None:
    table = """
[tables.t]
[[tables.t.rules]]
id = "A"
because = "a"
when = { n = { like = 3 } }
[[tables.t.rules]]
id = "B"
because = "b"
when = { n = { between = [5, 1] } }
"""
    with pytest.raises(PolicyError) as info:
        load_policy_text(f'name = "x"\nversion = "1"\n{table}', "x.toml")
    problems = info.value.problems
    assert any("tables.t.rules[0].when.n: unknown operator 'like'" in p for p in problems)
    assert any("tables.t.rules[1].when.n: between: expected [low, high]" in p for p in problems)


def test_unknown_output_and_wrong_output_type_for_cancellation_table() -> None:
    text = """
name = "x"
version = "1"
[tables.cancellation]
[[tables.cancellation.rules]]
id = "A"
because = "a"
then = { refund_everything = true, earnest = "triple" }
"""
    with pytest.raises(PolicyError) as info:
        load_policy_text(text, "x.toml")
    joined = str(info.value)
    assert "tables.cancellation.rules[0].then.refund_everything: unknown output" in joined
    assert "tables.cancellation.rules[0].then.earnest: expected one of refund, forfeit, double, got 'triple'" in joined


def test_duplicate_rule_ids_and_bad_case_facts_are_reported() -> None:
    text = """
name = "x"
version = "1"
[tables.t]
[[tables.t.rules]]
id = "A"
because = "a"
[[tables.t.rules]]
id = "A"
because = "again"
[[cases]]
name = "c"
decision = "settlement"
given = { price = 100, currency = "CNY", escrow_balance = -5, payment_plan = "staged" }
"""
    with pytest.raises(PolicyError) as info:
        load_policy_text(text, "x.toml")
    joined = str(info.value)
    assert "tables.t.rules[1].id: duplicate rule id 'A'" in joined
    assert "cases[0].given.escrow_balance" in joined


def test_toml_syntax_error_names_the_file() -> None:
    with pytest.raises(PolicyError, match=r"^broken.toml: not valid TOML"):
        load_policy_text("name = ", "broken.toml")


def test_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no such policy file"):
        load_policy(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("text", "delta", "canonical"),
    [
        ("P2D", timedelta(days=2), "P2D"),
        ("PT36H", timedelta(hours=36), "P1DT12H"),
        ("P1DT12H", timedelta(days=1, hours=12), "P1DT12H"),
        ("P2W", timedelta(weeks=2), "P14D"),
        ("PT90M", timedelta(minutes=90), "PT1H30M"),
        ("PT0S", timedelta(0), "PT0S"),
    ],
)
def test_iso_durations_parse_and_format_canonically(text: str, delta: timedelta, canonical: str) -> None:
    assert parse_duration(text) == delta
    assert format_duration(delta) == canonical
    assert parse_duration(canonical) == delta


@pytest.mark.parametrize("bad", ["", "P", "PT", "2D", "P-1D", "P1Y", "P1M", "P1.5D", "PT1.5H", "p2d", "P2DT"])
def test_non_iso_durations_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="ISO-8601 duration"):
        parse_duration(bad)


def test_duration_words() -> None:
    assert duration_words(timedelta(days=1, hours=12)) == "1 day and 12 hours"
    assert duration_words(timedelta(days=3)) == "3 days"


def test_policy_round_trips_through_json_with_equal_sha() -> None:
    p = default_policy()
    q = Policy.model_validate(p.model_dump(mode="json"))
    assert q == p
    assert pin_policy(q).sha256 == pin_policy(p).sha256
    assert Policy.model_validate_json(p.model_dump_json()) == p


def test_pin_sha_is_sha256_of_canonical_json_and_changes_with_content() -> None:
    from bespoke.rules import canonical_json

    p = default_policy()
    pin = pin_policy(p)
    assert pin.sha256 == hashlib.sha256(canonical_json(p)).hexdigest()
    assert (pin.name, pin.version, pin.plugins) == ("default", "1.2.0", [])
    changed = load_policy_text(DEFAULT_TOML.read_text().replace("platform_fee_bps = 500", "platform_fee_bps = 450"), "x.toml")
    assert pin_policy(changed).sha256 != pin.sha256
    reworded = load_policy_text(
        DEFAULT_TOML.read_text().replace("so the buyer may withdraw it free", "so the buyer may cancel it free"), "x.toml"
    )
    assert pin_policy(reworded).sha256 != pin.sha256


def test_condition_shorthand_normalises_and_round_trips() -> None:
    p = load_policy_text(
        'name = "x"\nversion = "1"\n[tables.t]\n[[tables.t.rules]]\nid = "A"\nbecause = "a"\nwhen = { s = "v", n = [1, 2] }\n',
        "x.toml",
    )
    assert p.tables["t"].rules[0].when == {"s": {"eq": "v"}, "n": {"in": [1, 2]}}
    assert Policy.model_validate(p.model_dump(mode="json")) == p


def _write(d: Path, name: str, version: str) -> None:
    (d / f"{name}-{version}.toml").write_text(f'name = "{name}"\nversion = "{version}"\n')


def test_find_policy_picks_highest_version_and_exact_version(tmp_path: Path) -> None:
    for v in ("1.2", "1.10", "1.9"):
        _write(tmp_path, "shop", v)
    assert find_policy("shop", [tmp_path]).version == "1.10"
    assert find_policy("shop@1.9", [tmp_path]).version == "1.9"
    assert find_policy("default").name == "default"
    with pytest.raises(PolicyError, match=r"policy shop@2 not found \(versions of shop: 1.2, 1.9, 1.10\)"):
        find_policy("shop@2", [tmp_path])
    with pytest.raises(PolicyError, match="policy 'nope' not found"):
        find_policy("nope", [tmp_path])


def test_list_policies_includes_builtin_and_extra_dirs(tmp_path: Path) -> None:
    _write(tmp_path, "shop", "1")
    refs = [p.ref for p in list_policies([tmp_path])]
    assert "default@1.2.0" in refs and "shop@1" in refs


def test_rules_package_imports_neither_temporalio_nor_sqlmodel() -> None:
    import subprocess
    import sys

    code = (
        "import sys, bespoke.rules, bespoke.rules.check, bespoke.rules.describe;"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('temporalio','sqlmodel','sqlalchemy')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_orders_pinned_to_the_same_content_share_one_validated_policy_keyed_by_its_computed_hash() -> None:
    from bespoke.rules import policy_sha256
    from bespoke.rules.pins import content_sha256, load_pinned

    policy = default_policy()
    data = policy.model_dump(mode="json")
    first, sha = load_pinned(data)
    assert first == policy and sha == policy_sha256(policy) == content_sha256(data)
    assert load_pinned(dict(data))[0] is first  # the second order reuses it
    # Other content gets its own hash and its own Policy, whatever pin it claims:
    # the share is keyed by what the content hashes to, so it cannot be poisoned.
    other = dict(data, version="9.9.9")
    policy_other, sha_other = load_pinned(other)
    assert policy_other.version == "9.9.9" and sha_other != sha
    assert load_pinned(data)[0] is first


def test_a_policy_file_is_parsed_again_only_when_its_bytes_change(tmp_path: Path) -> None:
    """Finding a policy scans every file; a file whose bytes are what they were
    gives the policy it gave (no TOML parse, no validation), and any change to
    the bytes, even one that keeps the size, is loaded afresh."""
    path = tmp_path / "house.toml"
    path.write_text(Path(DEFAULT_TOML).read_text().replace('name = "default"', 'name = "house"'))
    first = load_policy(path)
    assert load_policy(path) is first and find_policy("house", [tmp_path]) is first
    bumped = path.read_text().replace('version = "', 'version = "9', 1)
    path.write_text(bumped)
    again = load_policy(path)
    assert again is not first and again.version == "9" + first.version
    # The same length, other bytes: a timestamp or size check would miss this.
    path.write_text(bumped.replace('name = "house"', 'name = "horse"'))
    assert load_policy(path).name == "horse"
    # A file that does not load is refused every time, never served from before.
    path.write_text(bumped + "\nnot toml at all [[[\n")
    for _ in range(2):
        with pytest.raises(PolicyError, match="not valid TOML"):
            load_policy(path)
