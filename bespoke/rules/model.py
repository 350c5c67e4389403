"""Policy models: frozen pydantic v2, `extra="forbid"`.

A policy round-trips exactly through `Policy.model_validate(p.model_dump(mode="json"))`
(it travels in the workflow input as JSON): durations serialise to canonical
ISO-8601, conditions are normalised to `{op: value}` at validation time.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from bespoke.domain.vocabulary import PARTY_ACTIONS, Frozen

from .durations import format_duration, parse_duration
from .facts import PAYMENT_PLANS, CancellationFacts, DisputeFacts, PaymentPlan, RefundFacts, ReturnFacts, SettlementFacts
from .limits import data_problems
from .notices import Extensions, Reminders
from .schema import DECISION_RESULT_FIELDS, DECISION_TABLES, TABLE_SCHEMAS, value_matches

OPERATORS: tuple[str, ...] = ("eq", "ne", "lt", "le", "gt", "ge", "in", "between")


# --- value types -----------------------------------------------------------


def _validate_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        if value < timedelta(0) or value.microseconds:
            raise ValueError("expected a non-negative duration of whole seconds")
        return value
    return parse_duration(value)


Duration = Annotated[
    timedelta,
    PlainValidator(_validate_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (bool, int, str))


def _validate_scalar(v: Any) -> bool | int | str:
    if not _is_scalar(v):
        raise ValueError(f"expected a string, integer or boolean, got {type(v).__name__} {v!r}")
    return v


def _validate_fact_value(v: Any) -> Any:
    if _is_scalar(v):
        return v
    if isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, int) and not isinstance(x, bool) for k, x in v.items()):
        return dict(v)
    raise ValueError(f"expected a string, integer, boolean or a table of integers, got {type(v).__name__} {v!r}")


Scalar = Annotated[bool | int | str, PlainValidator(_validate_scalar)]
FactValue = Annotated[Any, PlainValidator(_validate_fact_value)]


def _validate_condition(value: Any) -> dict[str, Any]:
    """`"x"` means eq, `[..]` means in, else a table of operator = value."""
    if _is_scalar(value):
        return {"eq": value}
    if isinstance(value, list):
        value = {"in": value}
    if not isinstance(value, dict) or not value:
        raise ValueError(f"expected a value, a list, or a table of operators ({', '.join(OPERATORS)}), got {value!r}")
    out: dict[str, Any] = {}
    for op, arg in value.items():
        if op not in OPERATORS:
            raise ValueError(f"unknown operator {op!r}: expected one of {', '.join(OPERATORS)}")
        if op in ("eq", "ne"):
            if not _is_scalar(arg):
                raise ValueError(f"{op}: expected a string, integer or boolean, got {arg!r}")
        elif op in ("lt", "le", "gt", "ge"):
            if isinstance(arg, bool) or not isinstance(arg, int):
                raise ValueError(f"{op}: expected an integer, got {arg!r}")
        elif op == "in":
            if not isinstance(arg, list) or not arg or not all(_is_scalar(a) for a in arg):
                raise ValueError(f"in: expected a non-empty list of strings, integers or booleans, got {arg!r}")
            if len({(type(a), a) for a in arg}) != len(arg):
                raise ValueError(f"in: list has duplicates: {arg!r}")
            arg = list(arg)
        else:  # between
            if (
                not isinstance(arg, list)
                or len(arg) != 2
                or any(isinstance(a, bool) or not isinstance(a, int) for a in arg)
                or arg[0] > arg[1]
            ):
                raise ValueError(f"between: expected [low, high] integers with low <= high (inclusive), got {arg!r}")
            arg = list(arg)
        out[op] = arg
    return out


Condition = Annotated[dict[str, Any], PlainValidator(_validate_condition)]


# --- policy sections ---------------------------------------------------------


class Deadlines(Frozen):
    """How long each waiting stage lasts before its default action (ISO-8601 durations)."""

    seller_acceptance: Duration = timedelta(days=2)
    deposit: Duration = timedelta(days=3)
    balance: Duration = timedelta(days=7)
    retention: Duration = timedelta(days=7)
    inspection_window: Duration = timedelta(days=10)
    credit_settlement: Duration = timedelta(days=30)
    credit_reminder_interval: Duration = timedelta(days=3)
    production_grace: Duration = timedelta(days=3)
    cod_remittance: Duration = timedelta(days=3)
    aftersales_window: Duration = timedelta(days=15)
    return_response: Duration = timedelta(days=5)
    return_ship: Duration = timedelta(days=7)
    return_receive: Duration = timedelta(days=10)
    partial_offer_response: Duration = timedelta(days=3)
    dispute_evidence: Duration = timedelta(days=7)
    # The buyer's time to escalate a rejected case to a dispute, and the seller's
    # to reship repaired goods. Absent: return_response and return_receive, which
    # older policies used for these waits.
    escalation: Duration | None = None
    repair_reship: Duration | None = None

    def effective(self, name: str) -> timedelta:
        """The duration a deadline runs for, the fallbacks of absent fields applied."""
        value = getattr(self, name)
        if value is None:
            value = getattr(self, _BORROWED[name])
        return value


# What an absent optional deadline takes its duration from (older policies).
_BORROWED = {"escalation": "return_response", "repair_reship": "return_receive"}


Bps = Annotated[int, Field(strict=True, ge=0, le=10_000)]


class Fees(Frozen):
    platform_fee_bps: Bps = 500
    late_penalty_bps_per_day: Bps = 50
    late_penalty_cap_bps: Bps = 1000


class Limits(Frozen):
    qc_max_rework: Annotated[int, Field(strict=True, ge=0)] = 2
    max_repair_rounds: Annotated[int, Field(strict=True, ge=0)] = 2
    # Cases (returns, repairs, disputes) one order may have over its life, one after
    # another; bounds the workflow's history.
    max_cases_per_order: Annotated[int, Field(strict=True, ge=1)] = 5
    max_order_amount: Annotated[int, Field(strict=True, gt=0)] = 10_000_000_00
    # What one order may pile up, so no party can grow an order without bound
    # (each refused in the update's validator once reached).
    max_payments: Annotated[int, Field(strict=True, ge=1, le=100_000)] = 50
    max_milestones: Annotated[int, Field(strict=True, ge=1, le=100_000)] = 50
    max_salvage_records: Annotated[int, Field(strict=True, ge=1, le=100_000)] = 20
    max_qc_failures: Annotated[int, Field(strict=True, ge=1, le=100_000)] = 10
    max_evidence_items: Annotated[int, Field(strict=True, ge=1, le=1_000)] = 50
    max_evidence_item_length: Annotated[int, Field(strict=True, ge=1, le=10_000)] = 2000
    max_note_length: Annotated[int, Field(strict=True, ge=1, le=4000)] = 4000
    # Accepted updates per workflow run before the order continues as new
    # (Temporal allows 2,000 per run; fewer keep each run's history short).
    max_updates_per_run: Annotated[int, Field(strict=True, ge=1, le=1_500)] = 500
    currencies: list[Annotated[str, Field(pattern=r"^[A-Z]{3}$")]] = Field(
        default_factory=lambda: ["CNY", "USD", "EUR", "GBP", "JPY", "HKD"], min_length=1
    )


class PaymentPlans(Frozen):
    allowed: list[PaymentPlan] = Field(default_factory=lambda: list(PAYMENT_PLANS), min_length=1)
    staged_ratios: list[list[Annotated[int, Field(strict=True, gt=0, le=100)]]] = Field(
        default_factory=lambda: [[20, 80], [30, 70], [30, 60, 10]]
    )
    earnest_deposit_max_bps: Bps = 2000

    @field_validator("allowed")
    @classmethod
    def _unique_plans(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("expected each payment plan at most once")
        return v

    @field_validator("staged_ratios")
    @classmethod
    def _ratios_sum(cls, v: list[list[int]]) -> list[list[int]]:
        for i, ratios in enumerate(v):
            if len(ratios) < 2 or sum(ratios) != 100:
                raise ValueError(f"staged_ratios[{i}] = {ratios}: expected two or more percentages summing to 100")
        return v


RuleId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class Rule(Frozen):
    """One row of a decision table: all `when` conditions hold → `then` outputs apply."""

    id: RuleId
    because: Annotated[str, Field(min_length=1)]
    when: dict[str, Condition] = Field(default_factory=dict)
    then: dict[str, Scalar] = Field(default_factory=dict)


class DecisionTable(Frozen):
    """Rows over named facts. Hit policy `unique` (default: two matching rows is an
    error), `first` (first matching row in order), or `collect` with `aggregate = "sum"`."""

    description: str = ""
    hit_policy: Literal["unique", "first", "collect"] = "unique"
    aggregate: Literal["sum"] | None = None
    rules: list[Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _aggregate_only_collect(self) -> DecisionTable:
        if self.aggregate is not None and self.hit_policy != "collect":
            raise ValueError('aggregate is only allowed with hit_policy = "collect"')
        if self.hit_policy == "collect" and self.aggregate is None:
            raise ValueError('hit_policy = "collect" needs aggregate = "sum"')
        return self


DEFAULT_CASE_AS_OF = datetime(2025, 1, 1, tzinfo=timezone.utc)


class Case(Frozen):
    """A golden case: given facts, the policy must match these rules and produce these results.

    `decision` runs a built-in decision (`cancellation`, `settlement`, `return_terms`,
    `refund`, `dispute_default`) and `expect` names its results; `table` evaluates
    one table and `expect` names its outputs.
    """

    name: Annotated[str, Field(min_length=1)]
    decision: Literal["cancellation", "settlement", "return_terms", "refund", "dispute_default"] | None = None
    table: str | None = None
    as_of: AwareDatetime = DEFAULT_CASE_AS_OF
    given: dict[str, FactValue] = Field(default_factory=dict)
    expect_rules: list[str] | None = None
    expect: dict[str, Scalar] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_target(self) -> Case:
        if (self.decision is None) == (self.table is None):
            raise ValueError("expected exactly one of decision or table")
        return self


class PluginHook(Frozen):
    """After `table` is evaluated, the named plugin may adjust its outputs."""

    table: str
    plugin: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]+$")]


class Plugins(Frozen):
    hooks: list[PluginHook] = Field(default_factory=list)

    def names(self) -> list[str]:
        return sorted({h.plugin for h in self.hooks})


PolicyName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
PolicyVersion = Annotated[str, Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z.+-]*$")]


def _all(party: str):
    return lambda: list(PARTY_ACTIONS[party])


class OnBehalf(Frozen):
    """Which actions platform operations may take for each party, by action name
    (recorded as "ops:NAME for buyer:B"). Default: every action a party has, so an
    operator can act for a party who phones in; a stricter policy lists fewer."""

    buyer: list[str] = Field(default_factory=_all("buyer"))
    seller: list[str] = Field(default_factory=_all("seller"))
    carrier: list[str] = Field(default_factory=_all("carrier"))
    system: list[str] = Field(default_factory=_all("system"))

    @model_validator(mode="after")
    def _known(self) -> OnBehalf:
        for party, actions in PARTY_ACTIONS.items():
            unknown = sorted(set(getattr(self, party)) - set(actions))
            if unknown:
                raise ValueError(f"{party}: unknown action(s) {', '.join(unknown)}; {party} actions are "
                                 f"{', '.join(actions)}")
        return self


class Policy(Frozen):
    """A versioned set of deadlines, fees, limits, payment plans and decision tables."""

    name: PolicyName
    version: PolicyVersion
    description: str = ""
    deadlines: Deadlines = Field(default_factory=Deadlines)
    fees: Fees = Field(default_factory=Fees)
    limits: Limits = Field(default_factory=Limits)
    payment_plans: PaymentPlans = Field(default_factory=PaymentPlans)
    tables: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")], DecisionTable] = Field(default_factory=dict)
    cases: list[Case] = Field(default_factory=list)
    plugins: Plugins = Field(default_factory=Plugins)
    on_behalf: OnBehalf = Field(default_factory=OnBehalf)
    # Optional (absent: no reminders, no party-requested extensions); see notices.py.
    reminders: Reminders | None = None
    extensions: Extensions | None = None

    @model_validator(mode="before")
    @classmethod
    def _within_limits(cls, data: Any) -> Any:
        # Before any field is validated: a policy too large or too deep never reaches
        # pydantic's (recursive) validators, whatever sent it.
        problems = data_problems(data)
        if problems:
            raise PydanticCustomError("policy", "{problems}", {"problems": "\n".join(problems)})
        return data

    @model_validator(mode="after")
    def _cross_check(self) -> Policy:
        problems = cross_field_problems(self)
        if problems:
            raise PydanticCustomError("policy", "{problems}", {"problems": "\n".join(problems)})
        return self

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def _fmt_value(v: Any) -> str:
    return repr(v) if not isinstance(v, bool) else ("true" if v else "false")


def cross_field_problems(policy: Policy) -> list[str]:
    """Cross-field problems as `path: what was expected` lines."""
    problems: list[str] = []
    # Rule ids per table, once: golden cases name them (one case per row is common,
    # so looking them up per case would be rows x cases).
    rule_ids = {tname: {r.id for r in table.rules} for tname, table in policy.tables.items()}
    for tname, table in policy.tables.items():
        schema = TABLE_SCHEMAS.get(tname)
        seen: dict[str, int] = {}
        for i, rule in enumerate(table.rules):
            base = f"tables.{tname}.rules[{i}]"
            if rule.id in seen:
                problems.append(f"{base}.id: duplicate rule id {rule.id!r} (also rules[{seen[rule.id]}])")
            seen.setdefault(rule.id, i)
            if schema is not None:
                facts, outputs = schema
                for field, cond in rule.when.items():
                    spec = facts.get(field)
                    if spec is None:
                        problems.append(
                            f"{base}.when.{field}: unknown fact for table {tname!r}: expected one of {', '.join(sorted(facts))}"
                        )
                        continue
                    for op, arg in cond.items():
                        values = arg if op in ("in", "between") else [arg]
                        if op in ("lt", "le", "gt", "ge", "between") and spec.type != "int":
                            problems.append(f"{base}.when.{field}.{op}: {field} is a {spec.type}; ordering operators need an integer fact")
                            continue
                        for v in values:
                            msg = value_matches(spec, v)
                            if msg is not None and not (spec.type == "int" and isinstance(v, int) and not isinstance(v, bool)):
                                problems.append(f"{base}.when.{field}.{op}: {msg}, got {_fmt_value(v)}")
                                break
                for out, v in rule.then.items():
                    spec = outputs.get(out)
                    if spec is None:
                        problems.append(
                            f"{base}.then.{out}: unknown output for table {tname!r}: expected one of {', '.join(sorted(outputs))}"
                        )
                        continue
                    msg = value_matches(spec, v)
                    if msg is not None:
                        problems.append(f"{base}.then.{out}: {msg}, got {_fmt_value(v)}")
            if table.hit_policy == "collect":
                for out, v in rule.then.items():
                    if isinstance(v, bool) or not isinstance(v, int):
                        problems.append(f"{base}.then.{out}: collect(sum) tables output integers only, got {_fmt_value(v)}")
        if schema is not None and table.hit_policy == "collect":
            problems.append(f"tables.{tname}.hit_policy: the {tname} table needs hit_policy unique or first")
        if tname == "dispute_default":
            for i, rule in enumerate(table.rules):
                outcome = rule.then.get("outcome", "ops_review")
                bps = rule.then.get("refund_bps")
                base = f"tables.{tname}.rules[{i}].then"
                if outcome != "buyer_wins" and isinstance(bps, int) and bps > 0:
                    problems.append(f"{base}.refund_bps: only a buyer_wins row refunds; expected 0 or no refund_bps with outcome {outcome!r}")
                if outcome == "buyer_wins" and bps == 0:
                    problems.append(f"{base}.refund_bps: a buyer_wins row must refund something; expected 1..10000, got 0")
    for i, hook in enumerate(policy.plugins.hooks):
        if hook.table not in policy.tables:
            problems.append(f"plugins.hooks[{i}].table: no table named {hook.table!r} (tables: {', '.join(policy.tables) or 'none'})")
    for i, case in enumerate(policy.cases):
        base = f"cases[{i}]"
        if case.decision is not None:
            problems.extend(_case_facts_problems(case, base))
            allowed = DECISION_RESULT_FIELDS[case.decision]
            for key in case.expect:
                if key not in allowed:
                    problems.append(f"{base}.expect.{key}: unknown amount for a {case.decision} decision: expected one of {', '.join(allowed)}")
            if case.decision == "cancellation" and "cancellation" not in policy.tables:
                problems.append(f"{base}.decision: a cancellation case needs a tables.cancellation table")
            tables_for_rules = list(DECISION_TABLES[case.decision])
        else:
            assert case.table is not None
            if case.table not in policy.tables:
                problems.append(f"{base}.table: no table named {case.table!r}")
                continue
            tables_for_rules = [case.table]
        if case.expect_rules is not None:
            plugin_ids = {h.plugin for h in policy.plugins.hooks if h.table in tables_for_rules}
            for j, rid in enumerate(case.expect_rules):
                known = any(rid in rule_ids.get(t, ()) for t in tables_for_rules)
                if not known and not any(rid.startswith(f"plugin:{p}") for p in plugin_ids):
                    where = " or ".join(repr(t) for t in tables_for_rules)
                    problems.append(f"{base}.expect_rules[{j}]: no rule {rid!r} in table {where}")
    return problems


FACTS_MODELS: dict[str, type[BaseModel]] = {
    "cancellation": CancellationFacts,
    "settlement": SettlementFacts,
    "return_terms": ReturnFacts,
    "refund": RefundFacts,
    "dispute_default": DisputeFacts,
}


def _case_facts_problems(case: Case, base: str) -> list[str]:
    model = FACTS_MODELS[case.decision or ""]
    try:
        model.model_validate({**case.given, "as_of": case.as_of})
    except ValidationError as exc:
        return [f"{base}.given{format_loc(e['loc'], leading_dot=True)}: {clean_msg(e)}" for e in exc.errors()]
    return []


def format_loc(loc: tuple[Any, ...], leading_dot: bool = False) -> str:
    """('tables', 'x', 'rules', 3, 'when') → 'tables.x.rules[3].when'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if (out or leading_dot) else str(part)
    return out


def clean_msg(err: Any) -> str:
    msg = str(err.get("msg", ""))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    inp = err.get("input")
    if err.get("type") == "missing":
        return "required field is missing"
    if err.get("type") == "extra_forbidden":
        return "unknown field (not allowed here)"
    if err.get("type", "").startswith(("literal_", "string_pattern", "int_", "greater", "less", "too_", "bool_", "string_type", "dict_type", "list_type")):
        if not isinstance(inp, (dict, list)) or len(repr(inp)) < 60:
            msg = f"{msg}, got {inp!r}"
    return msg
