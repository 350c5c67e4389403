"""A dispute whose evidence deadline passed: decided for one side, or left to ops."""

from __future__ import annotations

from bespoke.domain.vocabulary import Frozen

from ..explain import Explanation, PolicyPin
from ..facts import DisputeFacts, DisputeOutcome
from ..model import Policy
from ..money import apply_bps
from ..schema import DISPUTE_OUTPUT_DEFAULTS, DISPUTE_OUTPUTS
from .base import decided, format_money, prepare, rule_words, run_table


class DisputeDefaultDecision(Frozen):
    """A dispute whose evidence deadline passed: decided for one side, or left to ops.

    `refund` is what the buyer gets back (0 unless `outcome == "buyer_wins"`); pay it
    out with `decide_refund` (outcome `dispute_default`).
    """

    outcome: DisputeOutcome
    refund: int
    explanation: Explanation


def _builtin_outcome(facts: DisputeFacts) -> str:
    if facts.buyer_submitted and facts.seller_submitted:
        return "ops_review"
    if facts.buyer_submitted:
        return "buyer_wins"
    if facts.seller_submitted:
        return "seller_wins"
    return "seller_wins" if facts.opened_by == "buyer" else "buyer_wins"


def decide_dispute_default(
    policy: Policy, facts: DisputeFacts, *, decision_id: str, pin: PolicyPin | None = None
) -> DisputeDefaultDecision:
    """Decide a dispute when its evidence deadline passes.

    From the `dispute_default` table (built-in terms without one): the side that
    sent no evidence loses (Stripe); with evidence from both, operations must
    arbitrate; with evidence from neither, the side that opened the dispute loses.
    A buyer who wins gets `refund_bps` of the claim (all of it by default).
    """
    ctx = prepare(policy, facts.currency, pin)
    f = dict(facts.__dict__)
    o, matched = run_table(
        ctx, "dispute_default", f, DISPUTE_OUTPUT_DEFAULTS, DISPUTE_OUTPUTS, builtin={"outcome": _builtin_outcome(facts)}
    )
    outcome = o["outcome"]
    refund = apply_bps(facts.claim, o["refund_bps"]) if outcome == "buyer_wins" else 0

    cur = facts.currency
    sent = {
        (True, True): "both sides sent evidence",
        (True, False): "only the buyer sent evidence",
        (False, True): "only the seller sent evidence",
        (False, False): f"neither side sent evidence on the dispute the {facts.opened_by} opened",
    }[(facts.buyer_submitted, facts.seller_submitted)]
    if outcome == "buyer_wins":
        what = f"decided for the buyer: refund {format_money(refund, cur)} of the {format_money(facts.claim, cur)} claimed"
    elif outcome == "seller_wins":
        what = f"decided for the seller: no refund of the {format_money(facts.claim, cur)} claimed"
    else:
        what = "platform operations must arbitrate"
    return decided(
        DisputeDefaultDecision,
        {"outcome": outcome, "refund": refund},
        ctx,
        kind="dispute_default",
        decision_id=decision_id,
        as_of=facts.as_of,
        facts=f,
        matched=matched,
        amounts={"claim": facts.claim, "refund": refund},
        summary=f"The evidence deadline passed and {sent}: {what} ({rule_words(matched)}).",
        results={"outcome": outcome},
    )
