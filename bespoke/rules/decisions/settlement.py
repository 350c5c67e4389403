"""Settlement at completion: escrow split into seller payout, platform fee and late penalty."""

from __future__ import annotations

from bespoke.domain.vocabulary import Frozen

from ..explain import Explanation, PolicyPin
from ..facts import SettlementFacts
from ..model import Policy
from ..money import apply_bps
from ..schema import SETTLEMENT_OUTPUT_DEFAULTS, SETTLEMENT_OUTPUTS
from .base import decided, format_money, late_penalty_bps, past_grace, prepare, run_table


class SettlementDecision(Frozen):
    """Escrow at completion: `to_seller + platform_fee + late_penalty_to_buyer == escrow_balance`."""

    to_seller: int
    platform_fee: int
    late_penalty_to_buyer: int
    explanation: Explanation


def decide_settlement(
    policy: Policy, facts: SettlementFacts, *, decision_id: str, pin: PolicyPin | None = None
) -> SettlementDecision:
    """Split escrow at completion into seller payout, platform fee and late penalty.

    The penalty is `min(days_late * late_penalty_bps_per_day, cap) * price`, bounded
    by escrow; the platform fee is `platform_fee_bps` of what is released to the
    seller (escrow minus penalty), rounded half up. Without a `settlement` table
    every late day counts.
    """
    ctx = prepare(policy, facts.currency, pin)
    f = dict(facts.__dict__)
    f["past_grace"] = past_grace(policy, facts.days_late)
    o, matched = run_table(
        ctx, "settlement", f, SETTLEMENT_OUTPUT_DEFAULTS, SETTLEMENT_OUTPUTS, builtin={"late_penalty": facts.days_late > 0}
    )
    days = max(0, facts.days_late - o["penalty_free_days"]) if o["late_penalty"] else 0
    escrow = facts.escrow_balance
    penalty = min(apply_bps(facts.price, late_penalty_bps(policy, days)), escrow)
    released = escrow - penalty
    fee = apply_bps(released, policy.fees.platform_fee_bps)
    to_seller = released - fee

    cur = facts.currency
    summary = f"Settlement: {format_money(to_seller, cur)} to the seller, {format_money(fee, cur)} platform fee"
    if penalty:
        summary += f", {format_money(penalty, cur)} late penalty to the buyer for {days} day{'s' if days != 1 else ''} late"
    summary += f", from {format_money(escrow, cur)} in escrow."
    return decided(
        SettlementDecision,
        {"to_seller": to_seller, "platform_fee": fee, "late_penalty_to_buyer": penalty},
        ctx,
        kind="settlement",
        decision_id=decision_id,
        as_of=facts.as_of,
        facts=f,
        matched=matched,
        amounts={"escrow_balance": escrow, "to_seller": to_seller, "platform_fee": fee, "late_penalty_to_buyer": penalty},
        summary=summary,
    )
