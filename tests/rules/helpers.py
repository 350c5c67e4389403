"""Small builders for rules tests."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bespoke.rules import BUILTIN_POLICY_DIR, CancellationFacts, Policy, load_policy, load_policy_text

DEFAULT_TOML = BUILTIN_POLICY_DIR / "default.toml"
HERE = Path(__file__).parent  # no resolve(): test_sandbox imports this inside the workflow sandbox
AS_OF = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def default_policy() -> Policy:
    return load_policy(DEFAULT_TOML)


def table_policy(table_toml: str, *, extra: str = "") -> Policy:
    """A policy with one free-form table `t` written as TOML body lines."""
    return load_policy_text(f'name = "t"\nversion = "1"\n{table_toml}\n{extra}', "test.toml")


def cancellation_facts(**overrides: Any) -> CancellationFacts:
    base: dict[str, Any] = dict(
        stage="in_production",
        cancelled_by="buyer",
        reason="buyer_request",
        price=100_000,
        currency="CNY",
        payment_plan="staged",
        escrow_balance=30_000,
        paid_total=30_000,
        costs_incurred=40_000,
        costs_by_milestone={"materials": 25_000, "fabrication": 15_000},
        salvage_value=15_000,
        as_of=AS_OF,
    )
    base.update(overrides)
    return CancellationFacts(**base)
