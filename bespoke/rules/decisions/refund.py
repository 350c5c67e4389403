"""After-sales refund: paid from escrow first, the rest charged back to the seller."""

from __future__ import annotations

from typing import Any

from bespoke.domain.vocabulary import Frozen

from ..explain import Explanation, PolicyPin
from ..facts import RefundFacts
from ..model import Policy
from ..money import allocate
from ..schema import REFUND_OUTPUT_DEFAULTS, REFUND_OUTPUTS
from .base import decided, format_money, prepare, rule_words, run_table


class RefundDecision(Frozen):
    """How an after-sales refund is paid.

    `refund_from_escrow + chargeback_from_seller == min(requested_refund, paid_total -
    refunded_so_far)`; escrow is used first (`refund_from_escrow <= escrow_balance`),
    the rest is charged back to the seller. With the default `fee_refund = "pro_rata"`
    the platform gives back its fee on the charged-back money
    (`fee_refund_to_seller <= platform_fee_charged`), so the seller never pays back
    more than it was paid: `chargeback_from_seller <= released_to_seller +
    fee_refund_to_seller`. `shipping_reimbursement` (seller -> buyer) is the buyer's
    return-shipping cost when the seller pays return shipping.
    """

    refund_from_escrow: int
    chargeback_from_seller: int
    fee_refund_to_seller: int
    shipping_reimbursement: int
    explanation: Explanation


_OUTCOME_WORDS = {
    "return_received": "the seller confirmed the returned goods",
    "seller_silent_on_receipt": "the seller did not confirm the returned goods in time",
    "partial_offer_accepted": "the buyer accepted a partial refund and keeps the goods",
    "arbitration": "platform operations decided the dispute",
    "dispute_default": "the dispute was decided by default at the evidence deadline",
}


def derived_refund_facts(facts: RefundFacts) -> dict[str, Any]:
    """The facts a refund table sees: the given facts plus derived ones."""
    f = dict(facts.__dict__)
    f["unrefunded"] = facts.paid_total - facts.refunded_so_far
    f["escrow_covers"] = facts.escrow_balance >= min(facts.requested_refund, f["unrefunded"])
    return f


def decide_refund(policy: Policy, facts: RefundFacts, *, decision_id: str, pin: PolicyPin | None = None) -> RefundDecision:
    """Pay an after-sales refund: from escrow first, the rest charged back to the seller.

    The refund is `min(requested_refund, paid_total - refunded_so_far)`. Of a
    charge-back, the platform's share of the gross released money goes back to the
    seller (`fee_refund = "pro_rata"`, the default), split with largest remainder
    between fee and seller net. A seller who pays return shipping (by the return's
    reason) reimburses the buyer's carrier cost, unless the `refund` row says not.
    """
    ctx = prepare(policy, facts.currency, pin)
    f = derived_refund_facts(facts)
    builtin = {"reimburse_shipping": facts.outcome != "partial_offer_accepted"}
    o, matched = run_table(ctx, "refund", f, REFUND_OUTPUT_DEFAULTS, REFUND_OUTPUTS, builtin=builtin)
    total = min(facts.requested_refund, f["unrefunded"])
    from_escrow = min(total, facts.escrow_balance)
    chargeback = total - from_escrow
    fee_refund = 0
    if chargeback and o["fee_refund"] == "pro_rata":
        # chargeback <= released + fee (RefundFacts guarantees it), so each part stays
        # within what was paid out: fee_refund <= fee, chargeback - fee_refund <= released.
        fee_refund = allocate(chargeback, [facts.platform_fee_charged, facts.released_to_seller])[0]
    shipping = facts.return_shipping_cost if (o["reimburse_shipping"] and facts.return_shipping_payer == "seller") else 0

    cur = facts.currency
    summary = f"Refund {format_money(total, cur)} because {_OUTCOME_WORDS[facts.outcome]}"
    if total < facts.requested_refund:
        summary += f" (capped at the {format_money(f['unrefunded'], cur)} not yet refunded)"
    parts = []
    if from_escrow:
        parts.append(f"{format_money(from_escrow, cur)} from escrow")
    if chargeback:
        cb = f"{format_money(chargeback, cur)} charged back to the seller"
        if fee_refund:
            cb += f" (the platform returns {format_money(fee_refund, cur)} of its fee to the seller)"
        parts.append(cb)
    if parts:
        summary += ": " + ", ".join(parts)
    if shipping:
        summary += f"; the seller reimburses {format_money(shipping, cur)} return shipping"
    elif facts.return_shipping_cost:
        summary += f"; the {facts.return_shipping_payer} bears the {format_money(facts.return_shipping_cost, cur)} return shipping"
    summary += f" ({rule_words(matched)})."
    return decided(
        RefundDecision,
        {
            "refund_from_escrow": from_escrow,
            "chargeback_from_seller": chargeback,
            "fee_refund_to_seller": fee_refund,
            "shipping_reimbursement": shipping,
        },
        ctx,
        kind="refund",
        decision_id=decision_id,
        as_of=facts.as_of,
        facts=f,
        matched=matched,
        amounts={
            "refund_total": total,
            "refund_from_escrow": from_escrow,
            "chargeback_from_seller": chargeback,
            "fee_refund_to_seller": fee_refund,
            "shipping_reimbursement": shipping,
            "seller_net_cost": chargeback - fee_refund + shipping,
        },
        summary=summary,
        results={"fee_refund": o["fee_refund"], "reimburse_shipping": bool(o["reimburse_shipping"])},
    )
