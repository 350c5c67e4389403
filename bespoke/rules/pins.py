"""Pinned policy content, verified: an order carries its policy's content and the
sha256 it was pinned with; the content's hash is computed here, never believed, and
the validated Policy is shared between orders by that computed hash.

Keying the share on the claimed hash let one order that carried other content
under a genuine pin's hash hand that content to every later order on the worker.
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
