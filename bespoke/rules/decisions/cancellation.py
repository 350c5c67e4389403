"""Cancellation before delivery: who gets what from escrow, and who still owes whom."""

from __future__ import annotations

from typing import Any

from bespoke.domain.vocabulary import Frozen

from ..explain import Explanation, PolicyPin
from ..facts import CancellationFacts
from ..model import Policy
from ..money import apply_bps
from ..schema import CANCELLATION_OUTPUT_DEFAULTS, CANCELLATION_OUTPUTS
from .base import decided, format_money, late_penalty_bps, past_grace, prepare, run_table


class CancellationDecision(Frozen):
    """Cancellation outcome. From escrow: `refund_to_buyer + to_seller + platform_fee == escrow_balance`.

    `to_seller` is the seller's compensation net of the platform fee (the fee is
    taken out of the compensation, never added to the buyer's cost).
    `seller_pays_buyer` comes out of the seller's own balance (the second half of a
    doubled earnest deposit, a late penalty, or money already released to the
    seller that the seller must give back). `buyer_owes_seller` is a claim beyond
    what escrow holds: recorded, not posted.
    """

    refund_to_buyer: int
    to_seller: int
    platform_fee: int
    seller_pays_buyer: int
    buyer_owes_seller: int
    explanation: Explanation


_WHO = {"buyer": "The buyer", "seller": "The seller", "system": "The platform"}
_STAGE_WORDS = {
    "awaiting_acceptance": "before the seller accepted",
    "awaiting_deposit": "before the deposit was paid",
    "in_production": "during production",
    "quality_check": "at quality check",
    "awaiting_balance": "while the balance was due",
    "shipped": "after shipping",
}
_REASON_WORDS = {
    "buyer_request": "at the buyer's request",
    "seller_request": "at the seller's request",
    "acceptance_timeout": "because the seller did not accept in time",
    "deposit_timeout": "because the deposit was not paid in time",
    "balance_timeout": "because the balance was not paid in time",
    "qc_rework_limit": "because the goods failed quality check too many times",
    "late_delivery": "because delivery is late",
    "cod_refused": "because the buyer refused cash on delivery",
}


def derived_cancellation_facts(policy: Policy, facts: CancellationFacts) -> dict[str, Any]:
    """The facts a cancellation table sees: the given facts plus derived ones."""
    f = dict(facts.__dict__)
    f["past_grace"] = past_grace(policy, facts.days_late)
    f["has_earnest"] = facts.earnest_deposit > 0
    f["net_cost"] = max(0, facts.costs_incurred - facts.salvage_value)
    f["released_to_seller"] = max(0, facts.paid_total - facts.escrow_balance)
    return f


def decide_cancellation(
    policy: Policy, facts: CancellationFacts, *, decision_id: str, pin: PolicyPin | None = None
) -> CancellationDecision:
    """Who gets what when an order is cancelled before delivery.

    From the matched row's parameters: the buyer's liability is
    `min(net_cost * buyer_cost_share_bps, cap) + charge`, where net cost is costs
    incurred minus salvage value and the cap is what the buyer paid (`cap = "paid"`),
    the price, or none. A forfeited earnest deposit (effective up to
    `earnest_deposit_max_bps` of price) makes the liability at least the deposit;
    losses beyond it can still be claimed (PRC Civil Code art. 588). A doubled
    earnest deposit and a late penalty are both owed by the seller; the buyer
    gets the larger of the two, not both (art. 588: one or the other).
    """
    ctx = prepare(policy, facts.currency, pin, needs_table="cancellation")
    f = derived_cancellation_facts(policy, facts)
    o, matched = run_table(ctx, "cancellation", f, CANCELLATION_OUTPUT_DEFAULTS, CANCELLATION_OUTPUTS)

    price = facts.price
    escrow = facts.escrow_balance
    paid = facts.paid_total
    released = f["released_to_seller"]

    share = apply_bps(f["net_cost"], o["buyer_cost_share_bps"])
    cap = o["cap"]
    if cap == "paid":
        # What the buyer paid, or owes under its plan and has not paid yet (credit,
        # cash on delivery, a part fallen due): a plan that defers payment does not
        # let the buyer walk away from the maker's costs. Beyond what escrow holds,
        # the share is a recorded claim (buyer_owes_seller).
        share = min(share, paid + facts.unpaid_commitment)
    elif cap == "price":
        share = min(share, price)
    charge = apply_bps(price, o["charge_bps"]) + o["charge_fixed"]
    liability = share + charge
    earnest = min(facts.earnest_deposit, apply_bps(price, policy.payment_plans.earnest_deposit_max_bps), paid)
    earnest_mode = o["earnest"]
    if earnest_mode == "forfeit":
        liability = max(liability, earnest)

    double_extra = earnest if earnest_mode == "double" else 0
    penalty = apply_bps(price, late_penalty_bps(policy, facts.days_late)) if o["late_penalty"] else 0
    seller_extra = max(double_extra, penalty)

    # Money the seller already received counts toward the liability; any excess goes back.
    owed_from_escrow = max(0, liability - released)
    compensation = min(owed_from_escrow, escrow)
    claim = owed_from_escrow - compensation
    seller_extra += max(0, released - liability)
    # Never both directions at once: net the seller's debt against the buyer's claim.
    offset = min(seller_extra, claim)
    seller_extra -= offset
    claim -= offset

    fee = apply_bps(compensation, policy.fees.platform_fee_bps) if o["platform_fee"] else 0
    to_seller = compensation - fee
    refund = escrow - compensation

    cur = facts.currency
    ids = ", ".join(m.rule_id for m in matched)
    # After the rework limit the seller ends the order, decided as the quality
    # process ending it (cancelled_by "system"): it is still the seller who cancelled.
    who = "The seller" if facts.reason == "qc_rework_limit" else _WHO[facts.cancelled_by]
    summary = (
        f"{who} cancelled {_STAGE_WORDS[facts.stage]} {_REASON_WORDS[facts.reason]}: "
        f"{format_money(refund, cur)} back to the buyer and {format_money(to_seller, cur)} to the seller "
        f"(after a {format_money(fee, cur)} platform fee) from {format_money(escrow, cur)} in escrow"
    )
    if seller_extra:
        summary += f"; the seller also pays the buyer {format_money(seller_extra, cur)}"
    if claim:
        summary += f"; the buyer still owes the seller {format_money(claim, cur)}, which escrow cannot cover"
    summary += f" (rule {ids})."
    return decided(
        CancellationDecision,
        {
            "refund_to_buyer": refund,
            "to_seller": to_seller,
            "platform_fee": fee,
            "seller_pays_buyer": seller_extra,
            "buyer_owes_seller": claim,
        },
        ctx,
        kind="cancellation",
        decision_id=decision_id,
        as_of=facts.as_of,
        facts=f,
        matched=matched,
        amounts={
            "escrow_balance": escrow,
            "refund_to_buyer": refund,
            "to_seller": to_seller,
            "platform_fee": fee,
            "seller_pays_buyer": seller_extra,
            "buyer_owes_seller": claim,
            "buyer_cost_share": share,
            "charge": charge,
            "earnest_effective": earnest,
            "late_penalty": penalty,
            "liability": liability,
        },
        summary=summary,
    )
