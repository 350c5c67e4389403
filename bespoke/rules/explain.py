"""Pins and explanations: what a decision was made with, and why."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field, field_serializer

from bespoke.domain.vocabulary import Frozen

from .engine import ConditionResult
from .model import Policy
from .plugins import resolve_plugin


class PluginPin(Frozen):
    name: str  # entry-point name used by the policy
    distribution: str
    version: str  # distribution version


class PolicyPin(Frozen):
    """Which policy an order is bound to: editing or publishing a policy never changes it."""

    name: str
    version: str
    sha256: str
    plugins: list[PluginPin] = Field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class MatchedRule(Frozen):
    """A row (or plugin) that decided part of the outcome, with each condition as tested."""

    table: str
    rule_id: str
    because: str
    conditions: list[ConditionResult] = Field(default_factory=list)
    outputs: dict[str, Any] = Field(default_factory=dict)

    @field_serializer("conditions")
    def _named(self, conditions: list[ConditionResult]) -> list[dict[str, Any]]:
        # Objects with named keys (field, op, expected, actual, result), not bare
        # arrays: the explanation is read by people and scripts. Both forms validate.
        return [c._asdict() for c in conditions]


class Explanation(Frozen):
    decision_id: str
    kind: str
    pin: PolicyPin
    as_of: AwareDatetime
    facts: dict[str, Any]
    matched: list[MatchedRule]
    amounts: dict[str, int]
    summary: str
    # Non-money results (allowed, payer, outcome ...); money stays in `amounts`.
    results: dict[str, bool | int | str] = Field(default_factory=dict)


def decision_entry(explanation: dict[str, Any]) -> dict[str, Any]:
    """One entry of `order status --json`'s `decisions`: what was decided (id, kind,
    when, summary, amounts, results) with the whole `explanation` (pin, facts,
    matched rules and conditions) under its own key, as the audit table stores it
    and as `order quote-cancel` prints it."""
    return {
        "decision_id": explanation["decision_id"],
        "kind": explanation["kind"],
        "as_of": explanation["as_of"],
        "summary": explanation["summary"],
        "amounts": explanation["amounts"],
        "results": explanation.get("results", {}),
        "explanation": explanation,
    }


def canonical_json(policy: Policy) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the bytes the pin's sha256 is taken over."""
    return json.dumps(
        policy.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def policy_sha256(policy: Policy) -> str:
    return hashlib.sha256(canonical_json(policy)).hexdigest()


def pin_policy(policy: Policy) -> PolicyPin:
    """Pin name, version, content hash and the installed plugin distributions."""
    plugins = []
    for name in policy.plugins.names():
        r = resolve_plugin(name, where=f"policy {policy.name}@{policy.version}")
        plugins.append(PluginPin(name=name, distribution=r.distribution, version=r.distribution_version))
    return PolicyPin(name=policy.name, version=policy.version, sha256=policy_sha256(policy), plugins=plugins)


def fast_model(cls: type[BaseModel], fields: dict[str, Any]) -> Any:
    """Build a model from values already known valid, skipping validation.

    Explanations are built from validated facts and compiled tables on the hot path;
    `model_construct` costs ~2 µs per object, this costs a fraction. Every field
    must be given.
    """
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", fields)
    object.__setattr__(obj, "__pydantic_fields_set__", set(fields))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj
