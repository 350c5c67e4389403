"""Small builders for rules tests."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bespoke.rules import (
    BUILTIN_POLICY_DIR,
    CancellationFacts,
    DisputeFacts,
    Policy,
    RefundFacts,
    ReturnFacts,
    load_policy,
    load_policy_text,
)

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


def return_facts(**overrides: Any) -> ReturnFacts:
    base: dict[str, Any] = dict(
        reason="defect",
        stage="delivered",
        remedy="refund",
        days_since_delivery=3,
        repair_rounds=0,
        price=100_000,
        currency="CNY",
        as_of=AS_OF,
    )
    base.update(overrides)
    return ReturnFacts(**base)


def refund_facts(**overrides: Any) -> RefundFacts:
    """Default: a completed order (1,000.00 CNY paid, 5% fee released) refunded in full after the return arrived."""
    base: dict[str, Any] = dict(
        reason="defect",
        outcome="return_received",
        requested_refund=100_000,
        price=100_000,
        currency="CNY",
        paid_total=100_000,
        refunded_so_far=0,
        escrow_balance=0,
        released_to_seller=95_000,
        platform_fee_charged=5_000,
        return_shipping_cost=2_000,
        return_shipping_payer="seller",
        as_of=AS_OF,
    )
    base.update(overrides)
    return RefundFacts(**base)


def dispute_facts(**overrides: Any) -> DisputeFacts:
    base: dict[str, Any] = dict(
        opened_by="buyer",
        buyer_submitted=True,
        seller_submitted=False,
        claim=50_000,
        price=100_000,
        currency="CNY",
        as_of=AS_OF,
    )
    base.update(overrides)
    return DisputeFacts(**base)


def edited_default(old: str, new: str) -> Policy:
    """The default policy with one piece of its TOML text replaced (must occur once)."""
    text = DEFAULT_TOML.read_text()
    assert text.count(old) == 1, old
    return load_policy_text(text.replace(old, new), "edited.toml")
