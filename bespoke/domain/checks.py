"""What makes an order input acceptable under its policy: one function, used where
an order is built (the CLI, imports, the API) and again by the workflow when it
starts, so a client that reaches Temporal directly cannot start an order the CLI
would refuse.

Pure (no I/O, no clock): it runs inside the workflow sandbox.
"""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING

from bespoke.domain.accounts import virtual_account_for
from bespoke.domain.models import OrderInput, PlanKind, clean_name
from bespoke.domain.money import format_amount

if TYPE_CHECKING:
    from bespoke.rules import Policy

# Text fields of the input and the longest each may be (the model's own bounds).
_NAMES = (("buyer", 200), ("seller", 200))


def _canonical(value: str, what: str, max_length: int) -> str | None:
    """None if `value` is already in the form the CLI stores, else why not."""
    try:
        cleaned = clean_name(value, what, max_length=max_length)
    except ValueError as err:
        return str(err)
    if cleaned != value:
        return f"{what} is not in canonical form (Unicode NFC, no surrounding blanks)"
    return None


# Characters no free text may hold: control characters (a newline is fine in an
# address), bidirectional overrides and isolates (they reorder what a terminal or
# page shows), zero-width characters (they make look-alike names).
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}
_ZERO_WIDTH = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"}


def _text_problem(text: str) -> str | None:
    for c in text:
        if (unicodedata.category(c) == "Cc" and c != "\n") or c in _BIDI or c in _ZERO_WIDTH:
            return f"contains the invisible or control character U+{ord(c):04X}"
    return None


def price_problem(price: int, currency: str, policy: Policy) -> str | None:
    """The price is above what the policy lets one order be."""
    if price > policy.limits.max_order_amount:
        return (f"price: {format_amount(price, currency)} exceeds the policy's maximum order amount "
                f"{format_amount(policy.limits.max_order_amount, currency)}")
    return None


def order_problems(inp: OrderInput, policy: Policy, *, content_sha256: str | None = None) -> list[str]:
    """Why `inp` must not become an order under `policy` (empty: it may). Each
    problem starts with the field it is about."""
    problems: list[str] = []
    for field, max_length in _NAMES:
        problem = _canonical(getattr(inp, field), field, max_length)
        if problem:
            problems.append(f"{field}: {problem}")
    if inp.title:
        problem = _canonical(inp.title, "title", 500)
        if problem:
            problems.append(f"title: {problem}")
    if inp.shipping_address:
        problem = _text_problem(inp.shipping_address)
        if problem:
            problems.append(f"shipping_address: {problem}")
    problem = _canonical(inp.created_by.name, "created_by name", 200)
    if problem:
        problems.append(f"created_by: {problem}")
    if inp.buyer == inp.seller:
        problems.append("seller: the buyer and the seller are the same party")
    label = f"{policy.name}@{policy.version}"
    if inp.currency not in policy.limits.currencies:
        problems.append(f"currency: policy {label} does not accept {inp.currency}")
    plan = inp.plan
    if plan.kind.value not in policy.payment_plans.allowed:
        problems.append(f"plan: policy {label} does not offer the {plan.kind.value} plan")
    if plan.kind is PlanKind.STAGED and list(plan.ratios) not in [list(r) for r in policy.payment_plans.staged_ratios]:
        offered = ", ".join("/".join(map(str, r)) for r in policy.payment_plans.staged_ratios)
        problems.append(f"plan: staged ratios {'/'.join(map(str, plan.ratios))} not offered (offered: {offered})")
    problem = price_problem(inp.price, inp.currency, policy)
    if problem:
        problems.append(problem)
    if inp.earnest_deposit:
        if plan.kind is not PlanKind.STAGED:
            problems.append("earnest_deposit: an earnest deposit needs a staged plan (its first part is the deposit)")
        elif plan.ratios[0] * 100 > policy.payment_plans.earnest_deposit_max_bps:
            cap = policy.payment_plans.earnest_deposit_max_bps / 100
            problems.append(f"earnest_deposit: an earnest deposit may be at most {cap:g}% of the price, "
                            f"not {plan.ratios[0]}%")
    expected_account = virtual_account_for(inp.buyer) if plan.kind is PlanKind.COLLECTION_ACCOUNT else None
    if inp.virtual_account != expected_account:
        problems.append("virtual_account: not the buyer's collection account" if expected_account
                        else "virtual_account: only a collection-account order has one")
    if (inp.pin.get("name"), inp.pin.get("version")) != (policy.name, policy.version):
        problems.append(f"pin: names {inp.pin.get('name')}@{inp.pin.get('version')}, the policy is {label}")
    if content_sha256 is not None and inp.pin.get("sha256") != content_sha256:
        problems.append(f"pin: the policy content hashes to {content_sha256}, "
                        f"not to the pinned {str(inp.pin.get('sha256'))[:64]}")
    return problems
