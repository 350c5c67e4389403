"""How large a policy may be, checked before anything expensive reads it.

A policy comes from a file someone edited, or from an order's workflow input that
anyone with a Temporal client can write; either way it is parsed, validated,
compiled and checked in processes other orders depend on (the CLI, the worker's
local activities, whose timeout is 10 s). So: the file's bytes and its bracket
nesting are checked before `tomllib` parses it (a 50,000-deep nested array would
otherwise end in a RecursionError), and the parsed data's depth, string lengths
and counts before pydantic validates it (`Policy` runs `data_problems` first).
Each problem is one line naming the field: `tables.x.rules: 6,000 rows; ...`.
"""

from __future__ import annotations

import re
from typing import Any

MAX_POLICY_BYTES = 1024 * 1024  # the policy travels in the workflow input as JSON (Temporal refuses payloads over 2 MiB)
# Levels of tables and arrays below the top level; the default policy uses 7
# (tables.cancellation.rules[3].when.stage.in[0]).
MAX_DEPTH = 16
MAX_STRING_CHARS = 2_000  # any key or string value; `because` texts are copied into every explanation
MAX_TABLES = 32
MAX_ROWS_PER_TABLE = 5_000
MAX_CASES = 5_000
MAX_HOOKS = 32
# Enough lines to see what is wrong; a file with thousands of bad strings does not
# need thousands of lines to say so.
MAX_PROBLEMS = 20


def text_problems(text: str) -> list[str]:
    """Problems of a policy's TOML text found without parsing it: its size in bytes
    and how deep its arrays and inline tables nest."""
    size = len(text.encode("utf-8"))
    if size > MAX_POLICY_BYTES:
        return [f"{size:,} bytes; a policy file may have at most {MAX_POLICY_BYTES:,} bytes"]
    line = _too_deep_line(text)
    if line is not None:
        return [f"line {line}: arrays and inline tables nested more than {MAX_DEPTH} levels deep (at most {MAX_DEPTH})"]
    return []


# Strings and comments are skipped whole (a bracket inside one does not nest);
# what is left that matters is the brackets. Multi-line strings may end in up to two
# extra quotes (TOML 1.0: `"""a""""` is `a"`).
_SCAN = re.compile(
    r'"""(?:[^\\]|\\.)*?"""(?!"{3})"{0,2}'
    r"|'''.*?'''(?!'{3})'{0,2}"
    r'|"(?:[^"\\\n]|\\.)*"'
    r"|'[^'\n]*'"
    r"|#[^\n]*"
    r"|([\[\]{}])",
    re.S,
)


def _too_deep_line(text: str) -> int | None:
    depth = 0
    for m in _SCAN.finditer(text):
        bracket = m.group(1)
        if bracket is None:
            continue
        if bracket in "[{":
            depth += 1
            # A table header `[[x]]` opens two levels at the top; MAX_DEPTH + 1
            # leaves room for the outermost bracket of a value.
            if depth > MAX_DEPTH + 1:
                return text.count("\n", 0, m.start()) + 1
        else:
            depth -= 1
    return None


def data_problems(data: Any) -> list[str]:
    """Problems of a policy's parsed data (TOML or JSON) that must be found before
    validating it: nesting depth, string lengths, and the number of tables, rows per
    table, golden cases and plugin hooks. Iterative, so any depth is safe."""
    problems: list[str] = []
    if not isinstance(data, dict):
        return problems
    _count(problems, data.get("tables"), "tables", MAX_TABLES, "tables", "a policy")
    tables = data.get("tables")
    if isinstance(tables, dict):
        for name, table in tables.items():
            if isinstance(table, dict):
                _count(problems, table.get("rules"), f"tables.{_key(name)}.rules", MAX_ROWS_PER_TABLE, "rows", "a table")
    _count(problems, data.get("cases"), "cases", MAX_CASES, "cases", "a policy")
    plugins = data.get("plugins")
    if isinstance(plugins, dict):
        _count(problems, plugins.get("hooks"), "plugins.hooks", MAX_HOOKS, "hooks", "a policy")

    # Only containers are pushed, each with a (parent, key) chain that becomes a
    # path only when there is something to report: this runs on every validation.
    stack: list[tuple[Any, Any, int]] = [(data, None, 0)]
    while stack and len(problems) <= MAX_PROBLEMS:
        node, where, depth = stack.pop()
        is_dict = type(node) is dict
        for k, v in node.items() if is_dict else enumerate(node):
            if is_dict and type(k) is str and len(k) > MAX_STRING_CHARS:
                problems.append(f"{_path(where)}: a key of {len(k):,} characters; a key may have at most {MAX_STRING_CHARS:,}")
                continue
            t = type(v)
            if t is str:
                if len(v) > MAX_STRING_CHARS:
                    problems.append(f"{_path((where, k))}: {len(v):,} characters; a text may have at most {MAX_STRING_CHARS:,}")
            elif t is dict or t is list:
                if depth + 1 >= MAX_DEPTH:
                    problems.append(f"{_path((where, k))}: nested more than {MAX_DEPTH} levels deep (at most {MAX_DEPTH})")
                else:
                    stack.append((v, (where, k), depth + 1))
    if len(problems) > MAX_PROBLEMS:
        problems[MAX_PROBLEMS:] = ["(more problems not shown)"]
    return problems


def _count(problems: list[str], value: Any, path: str, limit: int, what: str, holder: str) -> None:
    if isinstance(value, (dict, list)) and len(value) > limit:
        problems.append(f"{path}: {len(value):,} {what}; {holder} may have at most {limit:,}")


def _path(where: Any) -> str:
    parts: list[Any] = []
    while where is not None:
        where, key = where
        parts.append(key)
    out = ""
    for key in reversed(parts):
        out += f"[{key}]" if isinstance(key, int) else (f".{_key(key)}" if out else _key(key))
    return out or "(top level)"


def _key(key: Any) -> str:
    text = str(key)
    return text if len(text) <= 60 else text[:60] + "…"
