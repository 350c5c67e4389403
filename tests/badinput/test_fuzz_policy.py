"""Fuzzing the policy loader: whatever text it is given, `load_policy_text` returns a
Policy or raises PolicyError -- never another exception (a KeyError, TypeError or
RecursionError would reach `bespoke policy check` and the importer as a traceback).
A policy it accepts must also survive the trip an order gives it: dumped to JSON
into the workflow input and validated again there."""

from __future__ import annotations

import datetime as dt
import json
import math
import tomllib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bespoke.rules import BUILTIN_POLICY_DIR, Policy, PolicyError, load_policy_text, pin_policy

DEFAULT_TEXT = (BUILTIN_POLICY_DIR / "default.toml").read_text(encoding="utf-8")
DEFAULT_LINES = DEFAULT_TEXT.splitlines()
DEFAULT_DATA = tomllib.loads(DEFAULT_TEXT)

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def load_or_refuse(text: str) -> Policy | None:
    """The property: a Policy or PolicyError (with a message); an accepted policy
    pins, and re-validates from its JSON dump as the workflow does."""
    try:
        policy = load_policy_text(text, "fuzz.toml")
    except PolicyError as err:
        assert str(err).strip(), "a PolicyError without a message"
        assert err.problems
        return None
    dumped = json.loads(json.dumps(policy.model_dump(mode="json")))
    assert Policy.model_validate(dumped) == policy
    assert len(pin_policy(policy).sha256) == 64
    return policy


# ------------------------------------------------------------------ TOML-ish text

TOKENS = st.sampled_from([
    "\n", " ", "=", "[", "]", "[[", "]]", "{", "}", ",", ".", '"', "'", '"""', "#", "\\", "\\u00e9", "-", "+",
    "name", "version", "deadlines", "fees", "limits", "payment_plans", "tables", "rules", "cases", "when",
    "then", "hit_policy", "deposit", "P3D", "P-1D", "PT0S", "P99999999999D", "0", "-1", "1e309", "nan", "inf",
    "9" * 40, "true", "false", "1979-05-27", "07:32:00", "1979-05-27T07:32:00Z", "platform_fee_bps",
    "max_order_amount", "currencies", "staged_ratios", "op", "eq", "between", "in", "unique", "first",
    "collect", "default", "1.0.0", "😀", "\x00", "\x7f", "\ufeff",
])


@st.composite
def tomlish(draw: st.DrawFn) -> str:
    return "".join(draw(st.lists(TOKENS | st.text(max_size=5), max_size=60)))


@FUZZ
@given(tomlish())
def test_tomlish_text_is_refused_with_policy_error_only(text: str) -> None:
    load_or_refuse(text)


@FUZZ
@given(st.text(max_size=300))
def test_random_text_is_refused_with_policy_error_only(text: str) -> None:
    load_or_refuse(text)


# ------------------------------------------------------------------ line mutations of default.toml


@st.composite
def mutated_lines(draw: st.DrawFn) -> str:
    lines = list(DEFAULT_LINES)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["delete", "duplicate", "swap", "truncate", "char", "value"]))
        if kind == "delete":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "truncate":
            lines = lines[:i]
        elif kind == "char" and lines[i]:
            k = draw(st.integers(0, len(lines[i]) - 1))
            lines[i] = lines[i][:k] + draw(st.characters()) + lines[i][k + 1:]
        elif kind == "value" and "=" in lines[i]:
            key = lines[i].split("=", 1)[0]
            lines[i] = f"{key}= {draw(toml_literal)}"
        if not lines:
            break
    return "\n".join(lines)


toml_literal = st.sampled_from([
    "0", "-1", "-100000", "10000000000000000000000", "1.5", "-0.0", "nan", "inf", "-inf", "true", '""', '"x"',
    '"P-3D"', '"P0D"', '"PT1H"', '"P1Y"', '"P99999999999999D"', '"garbage"', "[]", "[[]]", '["CNY", 1]',
    "[[30, 70], [50]]", "[[0, 100]]", "[[-10, 110]]", "{}", '{ op = "eq" }', "1979-05-27", "07:32:00",
    '"\\u0000"', '"😀"', '"' + "x" * 5000 + '"',
])


@FUZZ
@given(mutated_lines())
def test_line_mutations_of_the_default_policy_raise_only_policy_error(text: str) -> None:
    load_or_refuse(text)


# ------------------------------------------------------------------ structural mutations of default.toml


def toml_value(value: Any) -> str:
    """A TOML inline value (the whole policy is written as `key = <inline>` lines)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=True)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def to_toml(data: dict[str, Any]) -> str:
    return "\n".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in data.items()) + "\n"


def test_the_toml_writer_round_trips_the_default_policy() -> None:
    assert tomllib.loads(to_toml(DEFAULT_DATA)) == DEFAULT_DATA
    assert load_or_refuse(to_toml(DEFAULT_DATA)) is not None


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.sampled_from([0, -1, 1, 10**13, 10**13 + 1, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["P1D", "P-1D", "PT0S", "P0D", "eq", "between", "in", "buyer", "seller", "CNY", "XYZ", "unique",
                     "first", "collect", "sum", "refund", "stage", "price"]),
    st.dates(), st.times(),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=8), inner, max_size=3), max_leaves=10)


def paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for k, v in data.items():
            found += paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            found += paths(v, (*prefix, i))
    return found


ALL_PATHS = paths(DEFAULT_DATA)


@st.composite
def mutated_data(draw: st.DrawFn) -> dict[str, Any]:
    data = json.loads(json.dumps(DEFAULT_DATA, default=str))  # a deep copy
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent = data
        try:
            for step in path[:-1]:
                parent = parent[step]
            last = path[-1]
            action = draw(st.sampled_from(["delete", "replace", "replace", "add"]))
            if action == "delete":
                del parent[last]
            elif action == "replace":
                parent[last] = draw(values)
            elif isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=8))] = draw(values)
            else:
                parent.append(draw(values))
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or retyped this path
    return data


@FUZZ
@given(mutated_data())
def test_structural_mutations_of_the_default_policy_raise_only_policy_error(data: dict[str, Any]) -> None:
    try:
        text = to_toml(data)
    except TypeError:  # None has no TOML spelling: leave that key out
        text = to_toml(_drop_none(data))
    load_or_refuse(text)


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value if v is not None]
    return value
