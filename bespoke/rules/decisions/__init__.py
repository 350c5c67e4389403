"""The built-in decisions: settlement at completion, cancellation before delivery,
and the after-sales return terms, refund and dispute default.

Each takes a policy and frozen facts, evaluates the policy's tables (plus any plugin
hooks), computes money from the resulting parameters in integers, and returns the
amounts with an `Explanation`. Same policy + same facts → identical result.
`base` holds what they share; each kind is one module.

Rounding: rates in basis points are applied with round-half-up on the single amount
they produce (`money.apply_bps`); the fee is then *subtracted* from the amount it
was taken from, so every split adds up to the escrow balance exactly.
"""

from .base import format_money, late_penalty_bps
from .cancellation import CancellationDecision, decide_cancellation, derived_cancellation_facts
from .dispute_default import DisputeDefaultDecision, decide_dispute_default
from .refund import RefundDecision, decide_refund, derived_refund_facts
from .return_terms import ReturnTermsDecision, decide_return_terms, derived_return_facts
from .settlement import SettlementDecision, decide_settlement

__all__ = [
    "CancellationDecision",
    "DisputeDefaultDecision",
    "RefundDecision",
    "ReturnTermsDecision",
    "SettlementDecision",
    "decide_cancellation",
    "decide_dispute_default",
    "decide_refund",
    "decide_return_terms",
    "decide_settlement",
    "derived_cancellation_facts",
    "derived_refund_facts",
    "derived_return_facts",
    "format_money",
    "late_penalty_bps",
]
