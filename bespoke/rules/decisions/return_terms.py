"""After-sales return terms: may the buyer open this return, who pays return
shipping, and may the seller still offer a repair."""

from __future__ import annotations

from typing import Any

from bespoke.domain.vocabulary import Frozen

from ..explain import Explanation, MatchedRule, PolicyPin
from ..facts import Payer, ReturnFacts
from ..model import Policy
from ..schema import REPAIR_OUTPUTS, RETURN_OUTPUT_DEFAULTS, RETURN_SHIPPING_OUTPUTS, RETURN_TERMS_OUTPUTS
from .base import decided, prepare, rule_words, run_table


class ReturnTermsDecision(Frozen):
    """May the buyer open this return, who pays to ship the goods back, and may the
    seller still offer a repair.

    `repair_allowed` is never true once `repair_rounds` reaches
    `limits.max_repair_rounds`; `refund_only` means the repair limit is reached, so
    the buyer may demand a refund and the seller can no longer offer a repair. Both
    are false when the return is not allowed.
    """

    allowed: bool
    return_shipping_payer: Payer
    repair_allowed: bool
    refund_only: bool
    explanation: Explanation


_RETURN_REASON_WORDS = {
    "defect": "a defect",
    "not_as_specified": "goods not as specified",
    "damaged_in_transit": "damage in transit",
    "changed_mind": "a change of mind",
}

# The three tables, in the order they run, each with the outputs it decides.
_TABLES = {"return_terms": RETURN_TERMS_OUTPUTS, "return_shipping": RETURN_SHIPPING_OUTPUTS, "repair": REPAIR_OUTPUTS}


def derived_return_facts(policy: Policy, facts: ReturnFacts) -> dict[str, Any]:
    """The facts the return tables see: the given facts plus derived ones."""
    f = dict(facts.__dict__)
    f["within_window"] = facts.days_since_delivery * 86400 <= policy.deadlines.aftersales_window.total_seconds()
    f["repair_limit_reached"] = facts.repair_rounds >= policy.limits.max_repair_rounds
    f["max_repair_rounds"] = policy.limits.max_repair_rounds
    return f


def decide_return_terms(
    policy: Policy, facts: ReturnFacts, *, decision_id: str, pin: PolicyPin | None = None
) -> ReturnTermsDecision:
    """Whether a return may be opened, who pays return shipping, and whether a repair
    may still be offered.

    Runs the policy's `return_terms`, `return_shipping` and `repair` tables. A policy
    without one of them gets the built-in terms for it: returns for a fault with
    the goods are allowed while delivered or within the after-sales window, a change
    of mind is not (made-to-order goods); the seller pays return shipping unless the
    buyer changed their mind; repairs up to `limits.max_repair_rounds`.
    """
    ctx = prepare(policy, facts.currency, pin)
    f = derived_return_facts(policy, facts)
    fault = facts.reason != "changed_mind"
    builtin = {
        "return_terms": {"allowed": fault and (facts.stage == "delivered" or f["within_window"])},
        "return_shipping": {"return_shipping_payer": "seller" if fault else "buyer"},
        "repair": {"repair_allowed": not f["repair_limit_reached"], "refund_only": f["repair_limit_reached"]},
    }
    o: dict[str, Any] = dict(RETURN_OUTPUT_DEFAULTS)
    matched: list[MatchedRule] = []
    for table, specs in _TABLES.items():
        out, m = run_table(ctx, table, f, RETURN_OUTPUT_DEFAULTS, specs, builtin=builtin[table])
        o.update({k: out[k] for k in specs})
        matched.extend(m)
    allowed = bool(o["allowed"])
    payer = o["return_shipping_payer"]
    # The repair limit is a hard limit: a table may restrict repairs further, never extend them.
    refund_only = allowed and bool(o["refund_only"] or f["repair_limit_reached"])
    repair_allowed = allowed and bool(o["repair_allowed"]) and not refund_only

    when = "during the inspection window" if facts.stage == "delivered" else f"{facts.days_since_delivery} days after delivery"
    asks = "a repair" if facts.remedy == "repair" else "a refund"
    summary = f"Return for {_RETURN_REASON_WORDS[facts.reason]} {when}, asking for {asks}: "
    if not allowed:
        summary += "not allowed"
    else:
        summary += f"allowed; the {payer} pays return shipping; "
        used = f"{facts.repair_rounds} of {policy.limits.max_repair_rounds} repairs used"
        if refund_only:
            summary += f"the repair limit is reached ({used}), so the buyer may demand a refund and no repair may be offered"
        elif repair_allowed:
            summary += f"the seller may offer a repair ({used})"
        else:
            summary += "no repair may be offered"
    summary += f" ({rule_words(matched)})."
    results = {"allowed": allowed, "return_shipping_payer": payer, "repair_allowed": repair_allowed, "refund_only": refund_only}
    return decided(
        ReturnTermsDecision,
        dict(results),
        ctx,
        kind="return_terms",
        decision_id=decision_id,
        as_of=facts.as_of,
        facts=f,
        matched=matched,
        amounts={},
        summary=summary,
        results=results,
    )
