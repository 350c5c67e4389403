"""What every decision shares: the policy's compiled context, the pin check, running
a table (with its plugin hooks), and building the `Explanation`.

A decision kind (one module beside this one) is then only its facts, its money
and its words: `prepare` → `run_table` → integer arithmetic → `decided` (the
decision model with its explanation).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, TypeVar

from bespoke.domain.money import format_amount

from ..engine import CompiledTable, ConditionResult, TableResult, compiled_tables, evaluate_compiled
from ..errors import DecisionError, PolicyError
from ..explain import Explanation, MatchedRule, PolicyPin, fast_model, pin_policy
from ..model import Policy
from ..plugins import ResolvedPlugin, resolve_plugin
from ..schema import Spec, value_matches

T = TypeVar("T")

# --- per-policy context (compiled tables, pin, resolved plugin hooks) ----------


class Context:
    __slots__ = ("tables", "pin", "hooks", "__weakref__")

    def __init__(self, policy: Policy) -> None:
        self.tables: dict[str, CompiledTable] = compiled_tables(policy)
        self.pin: PolicyPin = pin_policy(policy)
        hooks: dict[str, list[ResolvedPlugin]] = {}
        for i, hook in enumerate(policy.plugins.hooks):
            hooks.setdefault(hook.table, []).append(resolve_plugin(hook.plugin, where=f"plugins.hooks[{i}].plugin"))
        self.hooks = hooks


_CONTEXTS: dict[int, tuple[weakref.ref[Policy], Context]] = {}


# Local activities receive a fresh Policy object (decoded from the workflow input)
# on every call, so the per-object cache alone would recompile each time (~1.5 ms);
# equal content shares one context (LRU of _BY_CONTENT_MAX entries).
_BY_CONTENT: dict[str, Context] = {}
_BY_CONTENT_MAX = 64


def policy_context(policy: Policy) -> Context:
    entry = _CONTEXTS.get(id(policy))
    if entry is not None and entry[0]() is policy:
        return entry[1]
    content = policy.model_dump_json()
    ctx = _BY_CONTENT.pop(content, None)
    if ctx is None:
        ctx = Context(policy)
    _BY_CONTENT[content] = ctx  # re-insert: most recently used last
    while len(_BY_CONTENT) > _BY_CONTENT_MAX:
        _BY_CONTENT.pop(next(iter(_BY_CONTENT)))
    key = id(policy)
    _CONTEXTS[key] = (weakref.ref(policy, lambda _r, key=key: _CONTEXTS.pop(key, None)), ctx)
    return ctx


def check_pin(ctx: Context, policy: Policy, pin: PolicyPin | None) -> None:
    if pin is None or pin == ctx.pin:
        return
    if pin.sha256 != ctx.pin.sha256:
        raise PolicyError(
            f"policy {policy.name}@{policy.version} (sha256 {ctx.pin.sha256[:12]}) is not the pinned "
            f"{pin.name}@{pin.version} (sha256 {pin.sha256[:12]})"
        )
    raise PolicyError(
        f"plugins changed since {pin.name}@{pin.version} was pinned: pinned "
        + ", ".join(f"{p.name}={p.distribution} {p.version}" for p in pin.plugins)
        + "; installed "
        + ", ".join(f"{p.name}={p.distribution} {p.version}" for p in ctx.pin.plugins)
    )


def prepare(policy: Policy, currency: str, pin: PolicyPin | None, *, needs_table: str | None = None) -> Context:
    """The policy's context, once the pin matches, the required table exists and the
    currency is one the policy accepts (checked in that order)."""
    ctx = policy_context(policy)
    check_pin(ctx, policy, pin)
    if needs_table is not None and needs_table not in ctx.tables:
        raise PolicyError(f"policy {policy.name}@{policy.version} has no {needs_table} table")
    if currency not in policy.limits.currencies:
        raise DecisionError(f"currency {currency!r} is not accepted by {policy.name}@{policy.version}")
    return ctx


# --- tables -----------------------------------------------------------------------

# A NamedTuple's own __new__ is generated Python code (~0.3 µs per call); a decision
# builds one ConditionResult per condition of every matched row, fields already in order.
_tuple_new = tuple.__new__


def run_table(
    ctx: Context,
    table: str,
    facts: dict[str, Any],
    defaults: Mapping[str, Any],
    specs: Mapping[str, Spec],
    builtin: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[MatchedRule]]:
    """The table's outputs over `defaults`, then each plugin hook's changes, with
    every matched row and plugin as a `MatchedRule`. A policy without the table
    gets the built-in terms, `builtin` over `defaults`, matching no rule."""
    if builtin is not None and table not in ctx.tables:
        return {**defaults, **builtin}, []
    ct = ctx.tables[table]
    tr: TableResult = evaluate_compiled(ct, facts)
    outputs = {**defaults, **tr.outputs}
    matched = [
        fast_model(
            MatchedRule,
            {
                "table": table,
                "rule_id": row.rule.id,
                "because": row.rule.because,
                "conditions": [_tuple_new(ConditionResult, (f, op, e, facts[f], True)) for (f, op, e) in row.triples],
                "outputs": row.outputs,
            },
        )
        for row in tr.matched
    ]
    for rp in ctx.hooks.get(table, ()):
        frozen_facts = MappingProxyType({k: MappingProxyType(v) if isinstance(v, dict) else v for k, v in facts.items()})
        try:
            changes = rp.plugin(frozen_facts, MappingProxyType(dict(outputs)))
        except Exception as exc:  # surface plugin bugs as decision errors naming the plugin
            raise DecisionError(f"plugin {rp.name!r} ({rp.plugin.id} {rp.plugin.version}) failed: {type(exc).__name__}: {exc}") from None
        if not changes:
            continue
        changes = dict(changes)
        for k, v in changes.items():
            spec = specs.get(k)
            msg = "unknown output" if spec is None else value_matches(spec, v)
            if msg is not None:
                raise DecisionError(f"plugin {rp.name!r} returned {k}={v!r}: {msg}")
        outputs.update(changes)
        matched.append(
            MatchedRule(
                table=table,
                rule_id=f"plugin:{rp.name}",
                because=f"{rp.plugin.because} (plugin {rp.plugin.id} {rp.plugin.version} from {rp.distribution} {rp.distribution_version})",
                conditions=[],
                outputs=changes,
            )
        )
    return outputs, matched


# --- explanation ------------------------------------------------------------------


def decided(
    cls: type[T],
    fields: dict[str, Any],
    ctx: Context,
    *,
    kind: str,
    decision_id: str,
    as_of: datetime,
    facts: dict[str, Any],
    matched: list[MatchedRule],
    amounts: dict[str, int],
    summary: str,
    results: dict[str, bool | int | str] | None = None,
) -> T:
    """The decision model `cls`: its result `fields` plus its `Explanation`.

    Both are built without re-validation (every value comes from validated facts,
    the compiled tables and integer arithmetic); `fields` becomes the decision's
    own dict, so pass a fresh one.
    """
    fields["explanation"] = fast_model(
        Explanation,
        {
            "decision_id": decision_id,
            "kind": kind,
            "pin": ctx.pin,
            "as_of": as_of,
            "facts": facts,
            "matched": matched,
            "amounts": amounts,
            "summary": summary,
            "results": {} if results is None else results,
        },
    )
    return fast_model(cls, fields)  # type: ignore[no-any-return]


# --- words shared by the decisions ---------------------------------------------------


# `1,234.50 CNY`, `1,234 JPY` from integer minor units (exact, no floats): the CLI's
# rendering itself, not a wrapper around it (a summary formats up to six amounts, on
# the hot path).
format_money = format_amount


def rule_words(matched: list[MatchedRule]) -> str:
    ids = [m.rule_id for m in matched]
    if not ids:
        return "built-in terms"
    return ("rule " if len(ids) == 1 else "rules ") + ", ".join(ids)


def late_penalty_bps(policy: Policy, days: int) -> int:
    """Daily late penalty rate, capped: `min(days * bps_per_day, cap)`."""
    return min(days * policy.fees.late_penalty_bps_per_day, policy.fees.late_penalty_cap_bps)


def past_grace(policy: Policy, days_late: int) -> bool:
    """Late by more than the policy's production grace period."""
    return days_late * 86400 > policy.deadlines.production_grace.total_seconds()
