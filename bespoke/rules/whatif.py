"""What-if for an order that does not exist yet: given a plan, a price, a stage and
the costs so far, the facts a cancellation would be decided on, and the decision.

The decision is `decide_cancellation`, the same code `order quote-cancel` and the
workflow use; only the facts are built differently: from what the payment plan has
collected by that stage (the workflow's own schedule: the deposit before production,
the middle parts after the quality check) instead of from a running order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from .decisions import CancellationDecision, decide_cancellation
from .facts import STAGES, CancellationFacts
from .model import Policy
from .money import allocate

WHATIF_PARTIES = ("buyer", "seller")
# The stages a party may cancel at (workflows/cancellation.py CANCELLABLE); once
# shipped, only refusing cash on delivery at the door cancels.
WHATIF_STAGES = ("awaiting_acceptance", "awaiting_deposit", "in_production", "quality_check", "awaiting_balance")


class WhatIfError(ValueError):
    """A what-if the facts model (or common sense) refuses; the message says why."""


def paid_by_stage(plan: str, ratios: Sequence[int], price: int, stage: str) -> tuple[int, int]:
    """(paid so far, first part paid) for a plan at a pre-delivery stage, as the
    workflow's schedule collects it: nothing before the deposit is due; the deposit
    (for full prepayment and collection accounts: the whole price) before production;
    a staged plan's middle parts once the quality check passed, before shipping.
    Credit and cash on delivery collect nothing before delivery."""
    if stage not in STAGES:
        raise WhatIfError(f"unknown stage {stage!r}")
    if plan in ("credit", "cash_on_delivery") or stage in ("awaiting_acceptance", "awaiting_deposit"):
        return 0, 0
    if plan != "staged":
        return price, price
    parts = allocate(price, list(ratios))
    # With three or more parts the last is retention, due after acceptance.
    middle = parts[1:-1] if len(parts) >= 3 else parts[1:]
    paid = parts[0] + (sum(middle) if stage == "shipped" else 0)
    return paid, parts[0]


def unpaid_by_stage(plan: str, ratios: Sequence[int], price: int, stage: str) -> int:
    """What the buyer owes under the plan and has not paid, as the workflow counts it
    (workflows/cancellation.py `unpaid_commitment`): on credit the price once the
    credit is reserved at acceptance; cash on delivery the whole price; otherwise
    the part that has fallen due (the deposit while it is awaited, the balance)."""
    if plan == "credit":
        return 0 if stage == "awaiting_acceptance" else price
    if plan == "cash_on_delivery":
        return price
    if stage == "awaiting_deposit":
        return allocate(price, list(ratios))[0] if plan == "staged" else price
    if stage == "awaiting_balance" and plan == "staged":
        parts = allocate(price, list(ratios))
        return sum(parts[1:-1] if len(parts) >= 3 else parts[1:])
    return 0


def whatif_facts(
    policy: Policy,
    *,
    plan: str,
    ratios: Sequence[int] = (),
    price: int,
    currency: str,
    stage: str,
    cancelled_by: str,
    costs_incurred: int = 0,
    salvage_value: int = 0,
    days_late: int = 0,
    earnest: bool = False,
    as_of: datetime,
) -> CancellationFacts:
    """The facts a cancellation of such an order would be decided on.

    The reason follows the workflow's: a buyer cancelling once the order is past the
    production grace period cancels for late delivery; anyone else at their request."""
    if stage not in WHATIF_STAGES:
        raise WhatIfError(f"an order cannot be cancelled at stage {stage!r}; stages: {', '.join(WHATIF_STAGES)}")
    if stage == "awaiting_balance" and plan != "staged":
        raise WhatIfError("only a staged plan waits for a balance")
    if cancelled_by not in WHATIF_PARTIES:
        raise WhatIfError("who cancels must be the buyer or the seller")
    if plan not in policy.payment_plans.allowed:
        raise WhatIfError(f"plan {plan!r} is not offered by policy {policy.name}@{policy.version}")
    if plan == "staged" and tuple(ratios) not in {tuple(r) for r in policy.payment_plans.staged_ratios}:
        raise WhatIfError("those staged ratios are not offered by this policy")
    if earnest and plan != "staged":
        raise WhatIfError("an earnest deposit applies to staged plans only")
    if earnest and ratios[0] * 100 > policy.payment_plans.earnest_deposit_max_bps:
        # As order creation refuses it (domain/checks.py, order_problems).
        cap = policy.payment_plans.earnest_deposit_max_bps / 100
        raise WhatIfError(f"an earnest deposit may be at most {cap:g}% of the price, not {ratios[0]}%")
    if stage in ("awaiting_acceptance", "awaiting_deposit") and (costs_incurred or salvage_value):
        raise WhatIfError("no costs can be incurred before production starts")
    if days_late and stage in ("awaiting_acceptance", "awaiting_deposit"):
        raise WhatIfError("an order cannot be late before production starts")
    paid, first = paid_by_stage(plan, ratios, price, stage)
    grace = policy.deadlines.production_grace
    past_grace = days_late > 0 and timedelta(days=days_late) >= grace
    if cancelled_by == "buyer":
        late_ok = stage in ("in_production", "quality_check")
        reason = "late_delivery" if past_grace and late_ok else "buyer_request"
    else:
        reason = "seller_request"
    # As the workflow counts it (cancellation.earnest_amount): the paid deposit, capped.
    earnest_paid = min(first, price * policy.payment_plans.earnest_deposit_max_bps // 10_000) if earnest else 0
    try:
        return CancellationFacts(
            stage=stage,
            cancelled_by=cancelled_by,
            reason=reason,
            price=price,
            currency=currency,
            payment_plan=plan,
            escrow_balance=paid,
            paid_total=paid,
            costs_incurred=costs_incurred,
            salvage_value=salvage_value,
            days_late=days_late,
            earnest_deposit=earnest_paid,
            unpaid_commitment=unpaid_by_stage(plan, ratios, price, stage),
            as_of=as_of,
        )
    except ValueError as err:  # pydantic's ValidationError is a ValueError
        raise WhatIfError(str(err).splitlines()[0]) from None


def whatif_cancellation(policy: Policy, **kw) -> tuple[CancellationFacts, CancellationDecision]:
    """`whatif_facts` and the decision `decide_cancellation` makes on them."""
    facts = whatif_facts(policy, **kw)
    return facts, decide_cancellation(policy, facts, decision_id="what-if")
