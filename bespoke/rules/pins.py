"""Pinned policy content, verified: an order is pinned to its policy's name,
version and the sha256 of its canonical content; wherever content meets a pin, its
hash is computed here, never believed, and the validated Policy is shared between
orders by that computed hash.

Keying the share on the claimed hash let one order that carried other content
under a genuine pin's hash hand that content to every later order on the worker.

An order's workflow input carries the policy's *terms* (`policy_terms`: what the
workflow reads itself — deadlines, fees, limits, payment plans, who may act for
whom) and the pin; the whole policy (decision tables, golden cases, plugin hooks)
is in the policy store (`bespoke.store.policies`), where the rules activities find
it by the pin. Orders started before the store carry the whole policy instead.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .model import Policy

_VERIFIED: dict[str, Policy] = {}
_VERIFIED_MAX = 256  # distinct policy contents one worker keeps validated


def content_sha256(data: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of policy content (as `canonical_json` writes a
    Policy: sorted keys, no whitespace, UTF-8)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# What the terms leave out: read only by the rules (in activities) and by people.
NOT_IN_TERMS = ("description", "tables", "cases", "plugins")


def policy_terms(data: dict[str, Any]) -> dict[str, Any]:
    """The terms of policy content (`Policy.model_dump(mode="json")`): every section
    but the decision tables, golden cases, plugin hooks and description. They
    validate as a Policy of their own, so the workflow reads `policy.deadlines`,
    `policy.limits`... alike whichever form its input has."""
    return {k: v for k, v in data.items() if k not in NOT_IN_TERMS}


def verified_policy(sha256: str) -> Policy | None:
    """The validated Policy whose content this process has hashed to `sha256`."""
    return _VERIFIED.get(sha256)


def load_pinned(data: dict[str, Any]) -> tuple[Policy, str]:
    """The validated Policy for pinned content and the content's computed sha256.
    Orders pinned to the same content share one frozen Policy (about 140 KiB each,
    which counts when a worker caches a thousand orders)."""
    sha = content_sha256(data)
    policy = _VERIFIED.get(sha)
    if policy is None:
        policy = Policy.model_validate(data)
        if len(_VERIFIED) < _VERIFIED_MAX:
            _VERIFIED[sha] = policy
    return policy, sha
