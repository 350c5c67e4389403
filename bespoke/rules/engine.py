"""Decision-table evaluation, precompiled for speed.

At first use each table is compiled once into plain Python functions (generated
source, constants bound by name, never by `repr`): rows are bucketed by the value
of a *discriminant* fact tested with eq/in in most rows, so a lookup touches only
the rows that can match. Explanations are built only for matched rows, from static
(field, op, expected) triples plus the actual fact value.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, TypeVar

from .errors import DecisionError, OverlapError
from .model import DecisionTable, Policy, Rule

T = TypeVar("T")


class ConditionResult(NamedTuple):
    """One tested condition: `field op expected` was `result` for `actual`."""

    field: str
    op: str
    expected: Any
    actual: Any
    result: bool


_OP_SRC = {
    "eq": "{a} == {e}",
    "ne": "{a} != {e}",
    "lt": "{a} < {e}",
    "le": "{a} <= {e}",
    "gt": "{a} > {e}",
    "ge": "{a} >= {e}",
    "in": "{a} in {e}",
}

_OP_FN: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, e: a == e,
    "ne": lambda a, e: a != e,
    "lt": lambda a, e: a < e,
    "le": lambda a, e: a <= e,
    "gt": lambda a, e: a > e,
    "ge": lambda a, e: a >= e,
    "in": lambda a, e: a in e,
    "between": lambda a, e: e[0] <= a <= e[1],
}


def test_condition(op: str, expected: Any, actual: Any) -> bool:
    """Evaluate one operator (used by tests and by `check`; the hot path is generated code)."""
    if op == "eq" or op == "ne" or op == "in":
        # bool is an int in Python; a condition on true must not match 1.
        if op == "in":
            return any(type(x) is type(actual) and x == actual for x in expected) if isinstance(actual, bool) or any(
                isinstance(x, bool) for x in expected
            ) else actual in expected
        same = (type(expected) is bool) == (type(actual) is bool) and expected == actual
        return same if op == "eq" else not same
    return _OP_FN[op](actual, expected)


@dataclass(frozen=True, slots=True)
class CompiledRow:
    index: int
    rule: Rule
    fields: tuple[str, ...]
    triples: tuple[tuple[str, str, Any], ...]  # (field, op, expected as written)
    outputs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CompiledTable:
    name: str
    hit_policy: str
    rows: tuple[CompiledRow, ...]
    discriminant: str | None
    buckets: dict[Any, Callable[[Mapping[str, Any]], list[int]]]
    fallback: Callable[[Mapping[str, Any]], list[int]]
    fields: frozenset[str]
    has_fallback: bool  # some rows are outside every bucket: run `fallback` beside the bucket
    size: int  # rows generated, over all buckets and the fallback (linear in the table's size)


class TableResult(NamedTuple):
    """Matched rows (in table order) and the table's resulting outputs."""

    table: str
    matched: tuple[CompiledRow, ...]
    outputs: dict[str, Any]

    def explain(self, facts: Mapping[str, Any]) -> list[tuple[str, str, str, list[ConditionResult], dict[str, Any]]]:
        """(table, rule_id, because, conditions, outputs) for every matched row."""
        out = []
        for row in self.matched:
            conds = [ConditionResult(f, op, e, facts[f], True) for (f, op, e) in row.triples]
            out.append((self.table, row.rule.id, row.rule.because, conds, row.outputs))
        return out


def pick_discriminant(rules: Sequence[Rule], exclude: frozenset[str] = frozenset()) -> str | None:
    """The fact (not in `exclude`) tested with eq/in in the most rows, splitting them
    into the most buckets (ties: the first by name). One pass over the conditions."""
    covered: dict[str, int] = {}
    values: dict[str, set[Any]] = {}
    for r in rules:
        for f, cond in r.when.items():
            if f in exclude:
                continue
            if "eq" in cond and type(cond["eq"]) is not bool:
                vals: Any = (cond["eq"],)
            elif "in" in cond and not any(type(v) is bool for v in cond["in"]):
                vals = cond["in"]
            else:
                continue
            covered[f] = covered.get(f, 0) + 1
            values.setdefault(f, set()).update(vals)
    best: tuple[int, int, str] | None = None
    for f in sorted(covered):
        key = (covered[f], len(values[f]), f)
        if best is None or key[:2] > best[:2]:
            best = key
    return best[2] if best else None


def split_by(
    items: Iterable[T], when: Callable[[T], Mapping[str, dict[str, Any]]], field: str | None
) -> tuple[dict[tuple[type, Any], list[T]], list[T]]:
    """`items` grouped by each value their eq/in condition on `field` allows, keyed
    by (type, value) because conditions are type-exact; and the items whose
    condition allows other values (or that do not test `field`), in order."""
    parts: dict[tuple[type, Any], list[T]] = {}
    rest: list[T] = []
    for item in items:
        cond = when(item).get(field) if field is not None else None
        values = bucket_values(cond) if cond is not None else None
        if values is None:
            rest.append(item)
            continue
        for v in values:
            parts.setdefault((type(v), v), []).append(item)
    return parts, rest


def bucket_values(cond: dict[str, Any]) -> tuple[Any, ...] | None:
    """The only values a condition lets its fact take (its eq, or its in-list), or
    None when it allows others (ordering operators, ne) or names a boolean (never
    bucketed: true == 1 in Python)."""
    if not _bucketable(cond):
        return None
    return (cond["eq"],) if "eq" in cond else tuple(cond["in"])


def _row_source(row: CompiledRow, ns: dict[str, Any], skip_field: str | None, first: bool) -> list[str]:
    conds = []
    for j, (field, op, expected) in enumerate(row.triples):
        if field == skip_field and op in ("eq", "in") and _bucketable(row.rule.when[field]):
            continue  # already satisfied by the bucket lookup
        fk = f"_k{row.index}_{j}"
        ek = f"_e{row.index}_{j}"
        ns[fk] = field
        a = f"f[{fk}]"
        if op == "between":
            ns[ek + "lo"], ns[ek + "hi"] = expected
            conds.append(f"{ek}lo <= {a} <= {ek}hi")
        elif op in ("eq", "ne") and isinstance(expected, bool):
            ns[ek] = expected
            cmp = "is" if op == "eq" else "is not"
            conds.append(f"{a} {cmp} {ek}")
        elif op == "in":
            if any(isinstance(v, bool) for v in expected):
                ns[ek] = tuple(expected)
                conds.append(f"_in_strict({a}, {ek})")
            else:
                ns[ek] = frozenset(expected)
                conds.append(f"({a} in {ek} and {a} is not True and {a} is not False)")
        else:
            ns[ek] = expected
            if op in ("eq", "ne"):
                # type-exact equality so that 1 never equals true
                t = f"type({a}) is not bool"
                conds.append(f"({a} {'==' if op == 'eq' else '!='} {ek} {'and' if op == 'eq' else 'or'} {'' if op == 'eq' else 'not '}({t}))")
            else:
                conds.append(_OP_SRC[op].format(a=a, e=ek))
    test = " and ".join(conds) if conds else "True"
    action = f"return [{row.index}]" if first else f"m.append({row.index})"
    return [f"    if {test}:", f"        {action}"]


def _in_strict(actual: Any, expected: tuple[Any, ...]) -> bool:
    return any(type(x) is type(actual) and x == actual for x in expected)


def _gen(name: str, rows: list[CompiledRow], skip_field: str | None, first: bool) -> Callable[[Mapping[str, Any]], list[int]]:
    ns: dict[str, Any] = {"_in_strict": _in_strict}
    lines = ["def _match(f):", "    m = []"]
    for row in rows:
        lines.extend(_row_source(row, ns, skip_field, first))
    lines.append("    return m")
    code = compile("\n".join(lines), f"<table {name}>", "exec")
    exec(code, ns)  # noqa: S102 - source is generated from validated operators; values are bound by name
    return ns["_match"]


def compile_table(name: str, table: DecisionTable) -> CompiledTable:
    """Compile a table in time and code linear in its size: each row is generated
    into the bucket of each value its discriminant condition allows, or once into
    the fallback (rows that do not test the discriminant with eq/in), which runs
    beside whichever bucket the facts select."""
    rows = []
    for i, rule in enumerate(table.rules):
        triples = tuple((field, op, expected) for field, cond in rule.when.items() for op, expected in cond.items())
        rows.append(CompiledRow(i, rule, tuple(rule.when), triples, dict(rule.then)))
    first = table.hit_policy == "first"
    disc = pick_discriminant(table.rules)
    members, fallback_rows = split_by(rows, lambda r: r.rule.when, disc)
    buckets = {v: _gen(name, rs, disc, first) for (_t, v), rs in members.items()}
    fallback = _gen(name, fallback_rows, None, first)
    fields = frozenset(f for r in rows for f in r.fields)
    size = sum(len(rs) for rs in members.values()) + len(fallback_rows)
    return CompiledTable(name, table.hit_policy, tuple(rows), disc, buckets, fallback, fields, bool(fallback_rows), size)


def _bucketable(cond: dict[str, Any]) -> bool:
    if "eq" in cond:
        return type(cond["eq"]) is not bool
    if "in" in cond:
        return not any(type(v) is bool for v in cond["in"])
    return False


def evaluate_compiled(ct: CompiledTable, facts: Mapping[str, Any]) -> TableResult:
    """Match `facts` against a compiled table, applying its hit policy."""
    try:
        fn = None
        if ct.discriminant is not None:
            key = facts[ct.discriminant]
            if type(key) is not bool:
                fn = ct.buckets.get(key)
        if fn is None:
            idx = ct.fallback(facts)
        elif ct.has_fallback:
            # Rows of the bucket and of the fallback, merged back into table order.
            idx = sorted(fn(facts) + ct.fallback(facts))
            if ct.hit_policy == "first":
                idx = idx[:1]
        else:
            idx = fn(facts)
    except KeyError as exc:
        raise DecisionError(f"table {ct.name!r}: fact {exc.args[0]!r} is missing") from None
    except TypeError as exc:
        raise DecisionError(f"table {ct.name!r}: a fact has the wrong type for its condition ({exc})") from None
    rows = ct.rows
    if not idx:
        raise DecisionError(f"table {ct.name!r}: no rule matches {_brief(ct, facts)}")
    if ct.hit_policy == "unique":
        if len(idx) > 1:
            ids = tuple(rows[i].rule.id for i in idx)
            raise OverlapError(
                f"table {ct.name!r}: rules {' and '.join(map(repr, ids))} both match {_brief(ct, facts)} (hit policy unique)",
                table=ct.name,
                rule_ids=ids,
            )
        row = rows[idx[0]]
        return TableResult(ct.name, (row,), row.outputs)
    if ct.hit_policy == "first":
        row = rows[idx[0]]
        return TableResult(ct.name, (row,), row.outputs)
    matched = tuple(rows[i] for i in idx)
    total: dict[str, Any] = {}
    for row in matched:
        for k, v in row.outputs.items():
            total[k] = total.get(k, 0) + v
    return TableResult(ct.name, matched, total)


def _brief(ct: CompiledTable, facts: Mapping[str, Any]) -> str:
    shown = ", ".join(f"{f}={facts[f]!r}" for f in sorted(ct.fields) if f in facts)
    return "{" + shown + "}"


# One compiled form per Policy object. Policies are frozen, so the compiled form
# can never go stale; the weak reference drops it with the policy.
_COMPILED: dict[int, tuple[weakref.ref[Policy], dict[str, CompiledTable]]] = {}


def compiled_tables(policy: Policy) -> dict[str, CompiledTable]:
    entry = _COMPILED.get(id(policy))
    if entry is not None and entry[0]() is policy:
        return entry[1]
    tables = {name: compile_table(name, t) for name, t in policy.tables.items()}
    key = id(policy)
    ref = weakref.ref(policy, lambda _r, key=key: _COMPILED.pop(key, None))
    _COMPILED[key] = (ref, tables)
    return tables


def evaluate_table(policy: Policy, table: str, facts: Mapping[str, Any]) -> TableResult:
    """Evaluate one named table of a policy against a facts mapping."""
    tables = compiled_tables(policy)
    ct = tables.get(table)
    if ct is None:
        raise DecisionError(f"policy {policy.name}@{policy.version} has no table {table!r}")
    return evaluate_compiled(ct, facts)
