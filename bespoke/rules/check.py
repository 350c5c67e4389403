"""`check_policy`: run golden cases, find overlapping `unique` rows, find unreached rows.

`policy_problems` is the same check as a list of lines, cached per policy content:
an order may pin only a policy with none (`bespoke.service.build_order_input`, and
the workflow at its start).
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Sequence
from typing import Any

from pydantic import Field, ValidationError

from bespoke.domain.vocabulary import Frozen

from .decisions import (
    decide_cancellation,
    decide_dispute_default,
    decide_refund,
    decide_return_terms,
    decide_settlement,
)
from .engine import evaluate_table, pick_discriminant, split_by, test_condition
from .errors import DecisionError, OverlapError, PolicyError
from .explain import policy_sha256
from .model import FACTS_MODELS, Case, Policy, Rule, clean_msg, format_loc
from .plugins import resolve_plugin
from .schema import DECISION_RESULT_FIELDS, TABLE_SCHEMAS, Spec

_DECIDE: dict[str, Any] = {
    "cancellation": decide_cancellation,
    "settlement": decide_settlement,
    "return_terms": decide_return_terms,
    "refund": decide_refund,
    "dispute_default": decide_dispute_default,
}


class CaseResult(Frozen):
    name: str
    ok: bool
    expected_rules: list[str] | None
    got_rules: list[str]
    problems: list[str] = Field(default_factory=list)


class Overlap(Frozen):
    table: str
    rule_a: str
    rule_b: str
    example: dict[str, Any]
    found_by: str  # "case" (a golden case matched both) or "analysis" (conditions intersect)


class UnreachedRow(Frozen):
    table: str
    rule_id: str


class CheckReport(Frozen):
    policy: str
    ok: bool
    cases: list[CaseResult]
    overlaps: list[Overlap]
    unreached: list[UnreachedRow]
    problems: list[str]  # one readable line per problem; empty when ok


def _run_case(
    policy: Policy, case: Case
) -> tuple[list[tuple[str, str]], dict[str, Any], OverlapError | None, str | None]:
    """((table, rule id) matched, results, overlap, error message)."""
    try:
        if case.decision is not None:
            facts = FACTS_MODELS[case.decision].model_validate({**case.given, "as_of": case.as_of})
            d = _DECIDE[case.decision](policy, facts, decision_id=f"check:{case.name}")
            matched = [(m.table, m.rule_id) for m in d.explanation.matched]
            results = {**d.explanation.amounts, **{k: getattr(d, k) for k in DECISION_RESULT_FIELDS[case.decision]}}
            return matched, results, None, None
        assert case.table is not None
        tr = evaluate_table(policy, case.table, dict(case.given))
        return [(case.table, r.rule.id) for r in tr.matched], dict(tr.outputs), None, None
    except OverlapError as exc:
        return [], {}, exc, str(exc)
    except (DecisionError, PolicyError) as exc:
        return [], {}, None, str(exc)
    except ValidationError as exc:
        return [], {}, None, "; ".join(f"given{format_loc(tuple(e['loc']), True)}: {clean_msg(e)}" for e in exc.errors())


def check_policy(policy: Policy) -> CheckReport:
    """Run every golden case, report overlapping `unique` rows and rows no case reaches."""
    problems: list[str] = []
    for name in policy.plugins.names():
        try:
            resolve_plugin(name)
        except PolicyError as exc:
            problems.append(str(exc))
    if problems:
        return CheckReport(policy=policy.ref, ok=False, cases=[], overlaps=[], unreached=[], problems=problems)

    reached: set[tuple[str, str]] = set()
    overlaps: dict[tuple[str, str, str], Overlap] = {}
    results: list[CaseResult] = []
    for i, case in enumerate(policy.cases):
        pairs, got, overlap, error = _run_case(policy, case)
        ids = [rid for _, rid in pairs]
        case_problems: list[str] = []
        if overlap is not None:
            a, b = overlap.rule_ids[0], overlap.rule_ids[1]
            overlaps.setdefault((overlap.table, a, b), Overlap(table=overlap.table, rule_a=a, rule_b=b, example=dict(case.given), found_by="case"))
            reached.update((overlap.table, r) for r in overlap.rule_ids)
        if error is not None:
            case_problems.append(f"case {case.name!r} (cases[{i}]): {error}")
        else:
            reached.update(pairs)
            if case.expect_rules is not None and ids != case.expect_rules:
                case_problems.append(
                    f"case {case.name!r} (cases[{i}]): expected rules {', '.join(case.expect_rules) or 'none'}, matched {', '.join(ids) or 'none'}"
                )
            for key, want in case.expect.items():
                have = got.get(key)
                if have != want or isinstance(have, bool) != isinstance(want, bool):
                    case_problems.append(f"case {case.name!r} (cases[{i}]): expected {key} = {want!r}, got {have!r}")
        results.append(
            CaseResult(name=case.name, ok=not case_problems, expected_rules=case.expect_rules, got_rules=ids, problems=case_problems)
        )
        problems.extend(case_problems)

    for tname, table in policy.tables.items():
        if table.hit_policy != "unique":
            continue
        specs = TABLE_SCHEMAS.get(tname, ({}, {}))[0]
        for ia, ib in candidate_pairs(table.rules):
            ra, rb = table.rules[ia], table.rules[ib]
            if (tname, ra.id, rb.id) in overlaps:
                continue
            example = rows_intersect(ra, rb, specs)
            if example is not None:
                overlaps[(tname, ra.id, rb.id)] = Overlap(table=tname, rule_a=ra.id, rule_b=rb.id, example=example, found_by="analysis")
    for ov in overlaps.values():
        ex = ", ".join(f"{k}={v!r}" for k, v in ov.example.items()) or "any facts"
        how = "a golden case matched both" if ov.found_by == "case" else f"both match e.g. {ex}"
        problems.append(f"tables.{ov.table}: rules {ov.rule_a!r} and {ov.rule_b!r} overlap under hit policy unique ({how})")

    unreached = [
        UnreachedRow(table=tname, rule_id=r.id)
        for tname, table in policy.tables.items()
        for r in table.rules
        if (tname, r.id) not in reached
    ]
    for u in unreached:
        problems.append(f"tables.{u.table}: rule {u.rule_id!r} is not reached by any golden case")
    return CheckReport(
        policy=policy.ref,
        ok=not problems,
        cases=results,
        overlaps=list(overlaps.values()),
        unreached=unreached,
        problems=problems,
    )


def candidate_pairs(rules: Sequence[Rule]) -> list[tuple[int, int]]:
    """Index pairs (i < j), in table order, of the rows that might both match.

    Two rows whose eq/in conditions on one fact allow disjoint values never both
    match. So the rows are split by the values of the fact most of them test that
    way (the engine's discriminant), each part again by another such fact, and only
    rows sharing a part are paired; a row that does not test the fact that way is
    paired with every row of its part. A table keyed by distinct values costs time
    linear in its rows; only rows no eq/in condition tells apart are compared
    pairwise.
    """
    pairs: set[tuple[int, int]] = set()
    stack: list[tuple[list[int], frozenset[str]]] = [(list(range(len(rules))), frozenset())]
    while stack:
        idx, used = stack.pop()
        if len(idx) < 2:
            continue
        field = pick_discriminant([rules[i] for i in idx], exclude=used)
        if field is None:
            pairs.update(itertools.combinations(idx, 2))  # idx is ascending
            continue
        parts, wild = split_by(idx, lambda i: rules[i].when, field)
        deeper = used | {field}
        stack.extend((part, deeper) for part in parts.values())
        stack.append((wild, deeper))
        if wild:
            tested = sorted({i for part in parts.values() for i in part})
            pairs.update((min(w, i), max(w, i)) for w in wild for i in tested)
    return sorted(pairs)


_OTHER = "\x00other"


def _candidates(conds: list[tuple[str, Any]], spec: Spec | None) -> list[Any]:
    if spec is not None and spec.type == "bool":
        return [False, True]
    if spec is not None and spec.type == "str" and spec.choices:
        return list(spec.choices)
    values: list[Any] = []
    n_ne = sum(1 for op, _ in conds if op == "ne") + 1
    for op, e in conds:
        points = e if op in ("in", "between") else [e]
        for p in points:
            if isinstance(p, bool) or isinstance(p, str):
                values.append(p)
            else:
                values.extend(p + d for d in range(-n_ne, n_ne + 1))
    if spec is None or spec.type == "str":
        values.append(_OTHER)  # a value no eq/in names: satisfies every ne
    if spec is not None and spec.minimum is not None:
        values = [v for v in values if not isinstance(v, int) or isinstance(v, bool) or v >= spec.minimum]
        values.append(spec.minimum)
    return values


def _holds(conds: list[tuple[str, Any]], value: Any) -> bool:
    try:
        return all(test_condition(op, e, value) for op, e in conds)
    except TypeError:
        return False


def rows_intersect(a: Rule, b: Rule, specs: dict[str, Spec]) -> dict[str, Any] | None:
    """Facts both rows match (a witness), or None when they can never both match.

    Per shared field, the conjunction of both rows' conditions is tested on the
    domain (finite choices, booleans) or on boundary points of the integer
    conditions: if the intersection is non-empty it contains one of them.
    """
    example: dict[str, Any] = {}
    for field in sorted(set(a.when) | set(b.when)):
        conds = [*a.when.get(field, {}).items(), *b.when.get(field, {}).items()]
        spec = specs.get(field)
        for v in _candidates(conds, spec):
            if _holds(conds, v):
                if field in a.when and field in b.when:
                    example[field] = v if v != _OTHER else "(any other value)"
                break
        else:
            return None
    return example


# --- the check as a pin-time gate -------------------------------------------------

# By content (sha256 of the canonical JSON, as pinned), most recent last; and per
# Policy object, so an import of 10,000 rows from one policy hashes it once.
_BY_SHA: dict[str, tuple[str, ...]] = {}
_BY_SHA_MAX = 64
_BY_ID: dict[int, tuple[weakref.ref[Policy], tuple[str, ...]]] = {}


def policy_problems(policy: Policy) -> list[str]:
    """Every problem `bespoke policy check` reports for `policy` (failing or
    erroring golden cases, overlapping `unique` rows, unreached rows, missing
    plugins), one line each; empty when the policy passes.

    Deterministic and free of I/O and clocks, except that a policy with plugin
    hooks resolves them through `importlib.metadata` (once per process). Cached per
    content: the check runs once per distinct policy, not once per order.
    """
    entry = _BY_ID.get(id(policy))
    if entry is not None and entry[0]() is policy:
        return list(entry[1])
    sha = policy_sha256(policy)
    problems = _BY_SHA.pop(sha, None)
    if problems is None:
        problems = tuple(check_policy(policy).problems)
    _BY_SHA[sha] = problems
    while len(_BY_SHA) > _BY_SHA_MAX:
        _BY_SHA.pop(next(iter(_BY_SHA)))
    key = id(policy)
    _BY_ID[key] = (weakref.ref(policy, lambda _r, key=key: _BY_ID.pop(key, None)), problems)
    return list(problems)
