"""Policy size limits: too large, too deep or too long is one clear line naming the
file and the field, from a file, from text, or from a dict (an order's workflow
input), never a RecursionError or a minutes-long validation."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bespoke.rules import Policy, PolicyError, load_policy, load_policy_text
from bespoke.rules.limits import (
    MAX_CASES,
    MAX_DEPTH,
    MAX_HOOKS,
    MAX_POLICY_BYTES,
    MAX_ROWS_PER_TABLE,
    MAX_STRING_CHARS,
    MAX_TABLES,
)
from tests.processes import bespoke_command, clean_env, free_port

from .helpers import DEFAULT_TOML

HEAD = 'name = "big"\nversion = "1"\n'
DEEP = 50_000


def deep_array_policy() -> str:
    return HEAD + "description = " + "[" * DEEP + "]" * DEEP + "\n"


def _run(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = clean_env(BESPOKE_HOME=str(tmp_path / "home"), TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}", **env)
    return subprocess.run([*bespoke_command(), *args], env=full_env, capture_output=True, text=True, timeout=120)


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr[-2000:])
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return lines[0]


def test_a_50000_deep_nested_array_is_one_error_line_exit_2_from_policy_check(tmp_path: Path) -> None:
    f = tmp_path / "deep.toml"
    f.write_text(deep_array_policy(), encoding="utf-8")
    line = _one_error_line(_run("policy", "check", str(f), tmp_path=tmp_path))
    assert line == f"error: {f}: line 3: arrays and inline tables nested more than {MAX_DEPTH} levels deep (at most {MAX_DEPTH})"


def test_a_50000_deep_nested_array_is_one_error_line_exit_2_from_order_create(tmp_path: Path) -> None:
    d = tmp_path / "policies"
    d.mkdir()
    (d / "deep.toml").write_text(deep_array_policy(), encoding="utf-8")
    proc = _run("order", "create", "--buyer", "alice", "--seller", "acme", "--price", "10", "--policy", "deep",
                tmp_path=tmp_path, BESPOKE_POLICY_DIR=str(d))  # fmt: skip
    line = _one_error_line(proc)
    assert "policy 'deep' not found" in line and f"{d / 'deep.toml'}: line 3: arrays and inline tables nested" in line


def test_brackets_inside_strings_and_comments_do_not_count_as_nesting() -> None:
    brackets = "[" * 40 + "{" * 40
    top = (
        f"# {brackets}\n"
        f"notes = '''\n{brackets}\n'''\n"  # multi-line literal string
        f'more = """\\"""{brackets}"""\n'  # multi-line basic string with an escaped quote
        f"lit = '{brackets}'\n"
    )
    text = top + DEFAULT_TOML.read_text(encoding="utf-8").replace('description = "', f'description = "{brackets} ', 1)
    with pytest.raises(PolicyError) as info:  # only the unknown fields are wrong, not the nesting
        load_policy_text(text, "strings.toml")
    assert info.value.problems == [
        f"strings.toml: {key}: unknown field (not allowed here)" for key in ("notes", "more", "lit")
    ]


def test_a_file_over_the_byte_limit_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    f = tmp_path / "huge.toml"
    f.write_text(HEAD + "# " + "x" * MAX_POLICY_BYTES + "\n", encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(f)
    assert info.value.problems == [
        f"{f}: more than {MAX_POLICY_BYTES:,} bytes; a policy file may have at most {MAX_POLICY_BYTES:,} bytes"
    ]
    with pytest.raises(PolicyError, match=r"^text.toml: [0-9,]+ bytes; a policy file may have at most"):
        load_policy_text(f.read_text(encoding="utf-8"), "text.toml")


def _rows(n: int) -> list[dict]:
    return [{"id": f"R{i}", "because": "b", "when": {"n": i}} for i in range(n)]


LIMITED: list[tuple[str, dict, str]] = [
    ("rows", {"tables": {"t": {"hit_policy": "first", "rules": _rows(MAX_ROWS_PER_TABLE + 1)}}},
     f"tables.t.rules: {MAX_ROWS_PER_TABLE + 1:,} rows; a table may have at most {MAX_ROWS_PER_TABLE:,}"),
    ("tables", {"tables": {f"t{i}": {"rules": _rows(1)} for i in range(MAX_TABLES + 1)}},
     f"tables: {MAX_TABLES + 1:,} tables; a policy may have at most {MAX_TABLES:,}"),
    ("cases", {"cases": [{"name": f"c{i}", "table": "t", "given": {}} for i in range(MAX_CASES + 1)]},
     f"cases: {MAX_CASES + 1:,} cases; a policy may have at most {MAX_CASES:,}"),
    ("hooks", {"plugins": {"hooks": [{"table": "t", "plugin": "p"}] * (MAX_HOOKS + 1)}},
     f"plugins.hooks: {MAX_HOOKS + 1:,} hooks; a policy may have at most {MAX_HOOKS:,}"),
    ("string", {"tables": {"t": {"rules": [{"id": "A", "because": "x" * (MAX_STRING_CHARS + 1)}]}}},
     f"tables.t.rules[0].because: {MAX_STRING_CHARS + 1:,} characters; a text may have at most {MAX_STRING_CHARS:,}"),
    ("key", {"tables": {"t": {"rules": [{"id": "A", "because": "b", "when": {"k" * (MAX_STRING_CHARS + 1): 1}}]}}},
     f"tables.t.rules[0].when: a key of {MAX_STRING_CHARS + 1:,} characters; a key may have at most {MAX_STRING_CHARS:,}"),
]


@pytest.mark.parametrize(("what", "extra", "problem"), LIMITED, ids=[c[0] for c in LIMITED])
def test_each_limit_is_one_line_naming_the_field_from_a_dict_as_from_a_file(what: str, extra: dict, problem: str) -> None:
    data = {"name": "big", "version": "1", **extra}
    with pytest.raises(ValueError) as info:  # pydantic's ValidationError: a workflow input, not a file
        Policy.model_validate(data)
    assert problem in str(info.value)
    if what in ("rows", "string"):  # and the same line, prefixed by the file name, from TOML text
        body = "[tables.t]\n" + ('hit_policy = "first"\n' if what == "rows" else "")
        for rule in extra["tables"]["t"]["rules"]:
            body += f'[[tables.t.rules]]\nid = "{rule["id"]}"\nbecause = "{rule["because"]}"\n'
            body += "".join(f"when.{k} = {v}\n" for k, v in rule.get("when", {}).items())
        with pytest.raises(PolicyError) as file_info:
            load_policy_text(HEAD + body, "big.toml")
        assert file_info.value.problems == [f"big.toml: {problem}"]


def test_dotted_keys_nest_too_deep_without_brackets_and_are_named_by_path() -> None:
    # No bracket at all, so the text scan passes; the parsed data's depth is checked.
    text = HEAD + "description." + ".".join(["k"] * 30) + " = 1\n"
    with pytest.raises(PolicyError) as info:
        load_policy_text(text, "dotted.toml")
    [line] = info.value.problems
    assert line.startswith("dotted.toml: description.k.k.") and line.endswith(
        f"nested more than {MAX_DEPTH} levels deep (at most {MAX_DEPTH})"
    )


def test_a_deep_dict_in_a_workflow_input_is_refused_without_recursion() -> None:
    deep: dict = {}
    node = deep
    for _ in range(DEEP):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(ValueError, match=f"nested more than {MAX_DEPTH} levels deep"):
        Policy.model_validate({"name": "deep", "version": "1", "description": deep})


def test_the_default_policy_is_well_within_every_limit() -> None:
    text = DEFAULT_TOML.read_text(encoding="utf-8")
    assert len(text.encode()) < MAX_POLICY_BYTES // 10
    assert load_policy_text(text, "default.toml").name == "default"
