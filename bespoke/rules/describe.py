"""The policy in plain words, for buyers: `describe_policy` and `quote_text`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .decisions import CancellationDecision, SettlementDecision, format_money
from .durations import duration_words
from .facts import PARTIES, STAGES
from .model import Policy, Rule
from .schema import CANCELLATION_OUTPUT_DEFAULTS


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CancellationTerm(_Frozen):
    stage: str
    who: str
    when: str  # the remaining conditions in words ("" if none)
    rule_id: str
    terms: str  # what it costs, in words derived from the row's parameters
    because: str


class Section(_Frozen):
    title: str
    lines: list[str]


class PolicyDescription(_Frozen):
    name: str
    version: str
    description: str
    sections: list[Section]
    cancellation: list[CancellationTerm] = Field(default_factory=list)


STAGE_TITLES = {
    "awaiting_acceptance": "Before the seller accepts",
    "awaiting_deposit": "Before the deposit is paid",
    "in_production": "During production",
    "quality_check": "At quality check",
    "awaiting_balance": "While the balance is due",
    "shipped": "After shipping, before delivery",
}

_DEADLINE_WORDS = {
    "seller_acceptance": "The seller has {d} to accept an order; if they don't, it is cancelled at no cost.",
    "deposit": "The buyer has {d} to pay the deposit; if they don't, the order is cancelled at no cost.",
    "balance": "The buyer has {d} to pay the balance once goods pass quality check; after that the order is cancelled as the buyer's breach.",
    "retention": "A retention payment is due {d} after the buyer accepts the goods.",
    "inspection_window": "After delivery the buyer has {d} to inspect; silence confirms receipt and releases payment to the seller.",
    "credit_settlement": "On credit, the buyer pays {d} after confirming receipt.",
    "credit_reminder_interval": "Credit payment reminders go out every {d}.",
    "production_grace": "If the promised date passes, the seller has {d} of grace; after that the buyer may cancel free of cost.",
    "cod_remittance": "The carrier remits cash-on-delivery money within {d}.",
    "aftersales_window": "Returns, repairs and disputes may be opened within {d} of delivery.",
    "return_response": "The seller has {d} to answer a return request; silence approves it.",
    "return_ship": "After approval the buyer has {d} to ship the return; otherwise the case closes.",
    "return_receive": "The seller has {d} to confirm the returned goods; otherwise the buyer is refunded.",
    "partial_offer_response": "A partial-refund offer must be answered within {d}.",
    "dispute_evidence": "In a dispute each side has {d} to send evidence; missing it decides the dispute for the other side.",
}

_PLAN_WORDS = {
    "full_prepayment": "pay in full up front (held in escrow until you confirm receipt)",
    "staged": "pay in stages",
    "credit": "pay later on account",
    "cash_on_delivery": "pay the carrier on delivery after inspecting",
    "collection_account": "pay by bank transfer to a dedicated collection account",
}


def _pct(bps: int) -> str:
    whole, frac = divmod(bps, 100)
    return f"{whole}%" if frac == 0 else f"{whole}.{frac:02d}".rstrip("0") + "%"


def terms_words(outputs: dict[str, Any], policy: Policy) -> str:
    """What a cancellation row's parameters mean for the buyer, in one sentence."""
    o = {**CANCELLATION_OUTPUT_DEFAULTS, **outputs}
    bits: list[str] = []
    share = o["buyer_cost_share_bps"]
    if share == 0 and o["charge_bps"] == 0 and o["charge_fixed"] == 0:
        bits.append("you get back everything you paid")
    else:
        if share:
            what = "the seller's costs so far" if share == 10_000 else f"{_pct(share)} of the seller's costs so far"
            cap = {"paid": ", up to what you have paid", "price": ", up to the price", "none": ""}[o["cap"]]
            bits.append(f"you pay {what}, minus what the seller can resell the goods for{cap}")
        if o["charge_bps"]:
            bits.append(f"plus a cancellation charge of {_pct(o['charge_bps'])} of the price")
        if o["charge_fixed"]:
            bits.append(f"plus a fixed cancellation charge of {o['charge_fixed']} (minor units)")
        bits.append("the rest of what you paid comes back to you")
    cap_pct = _pct(policy.payment_plans.earnest_deposit_max_bps)
    if o["earnest"] == "forfeit":
        bits.append(f"an earnest deposit (counted up to {cap_pct} of the price) is kept by the seller")
    elif o["earnest"] == "double":
        bits.append(f"an earnest deposit (up to {cap_pct} of the price) is returned double")
    if o["late_penalty"]:
        f = policy.fees
        bits.append(
            f"if the order is late the seller pays you {_pct(f.late_penalty_bps_per_day)} of the price per day late "
            f"(at most {_pct(f.late_penalty_cap_bps)})"
            + (", or the doubled deposit if that is more" if o["earnest"] == "double" else "")
        )
    s = "; ".join(bits)
    return s[0].upper() + s[1:] + "."


_FIELD_WORDS = {
    "reason": {
        "buyer_request": "you simply change your mind",
        "seller_request": "the seller withdraws",
        "acceptance_timeout": "the seller does not accept in time",
        "deposit_timeout": "the deposit is not paid in time",
        "balance_timeout": "the balance is not paid in time",
        "qc_rework_limit": "the goods fail quality check too many times",
        "late_delivery": "delivery is late",
        "cod_refused": "cash on delivery is refused",
    },
}


def _row_when(rule: Rule, grace: str) -> str:
    bits = []
    for field, cond in rule.when.items():
        if field in ("stage", "cancelled_by"):
            continue
        words = _FIELD_WORDS.get(field, {})
        for op, e in cond.items():
            if field == "past_grace" and op == "eq":
                bits.append(f"more than {grace} late" if e else f"no more than {grace} late")
            elif op == "eq" and e in words:
                bits.append(words[e])
            elif op == "in" and all(v in words for v in e):
                bits.append(" or ".join(words[v] for v in e))
            else:
                bits.append(f"{field} {op} {e}")
    return "; ".join(bits)


def _matches_value(rule: Rule, field: str, value: str) -> bool:
    cond = rule.when.get(field)
    if cond is None:
        return True
    from .engine import test_condition

    return all(test_condition(op, e, value) for op, e in cond.items())


def describe_policy(policy: Policy) -> PolicyDescription:
    """What cancelling costs at each stage, late delivery, returns and deadlines, in plain words."""
    sections: list[Section] = []
    terms: list[CancellationTerm] = []
    grace = duration_words(policy.deadlines.production_grace)
    table = policy.tables.get("cancellation")
    if table is not None:
        for stage in STAGES:
            lines = []
            for party in PARTIES:
                for rule in table.rules:
                    if not (_matches_value(rule, "stage", stage) and _matches_value(rule, "cancelled_by", party)):
                        continue
                    if party == "seller" and "cancelled_by" not in rule.when:
                        continue  # rows open to any party are listed under the buyer/platform
                    who = {"buyer": "If you cancel", "seller": "If the seller cancels", "system": "If the order is cancelled automatically"}[party]
                    when = _row_when(rule, grace)
                    t = CancellationTerm(
                        stage=stage, who=party, when=when, rule_id=rule.id, terms=terms_words(rule.then, policy), because=rule.because
                    )
                    if any(x.rule_id == t.rule_id and x.stage == stage for x in terms):
                        continue
                    terms.append(t)
                    lines.append(f"{who}{' because ' + when if when else ''}: {t.terms} ({rule.id})")
            if lines:
                sections.append(Section(title=f"Cancelling — {STAGE_TITLES[stage].lower()}", lines=lines))
    f = policy.fees
    sections.append(
        Section(
            title="Late delivery",
            lines=[
                f"For each day past the promised date the seller owes you {_pct(f.late_penalty_bps_per_day)} of the price, "
                f"at most {_pct(f.late_penalty_cap_bps)}; it is paid out of escrow when the order settles.",
                f"Once the order is more than {grace} late you may cancel free of cost and still receive the penalty.",
            ],
        )
    )
    d = policy.deadlines
    sections.append(
        Section(
            title="Returns and after-sales",
            lines=[
                _DEADLINE_WORDS["inspection_window"].format(d=duration_words(d.inspection_window)),
                _DEADLINE_WORDS["aftersales_window"].format(d=duration_words(d.aftersales_window)),
                _DEADLINE_WORDS["return_response"].format(d=duration_words(d.return_response)),
                _DEADLINE_WORDS["return_ship"].format(d=duration_words(d.return_ship)),
                _DEADLINE_WORDS["return_receive"].format(d=duration_words(d.return_receive)),
                f"A faulty item may be repaired at most {policy.limits.max_repair_rounds} times before you may ask for a refund.",
            ],
        )
    )
    sections.append(
        Section(
            title="Deadlines",
            lines=[_DEADLINE_WORDS[k].format(d=duration_words(getattr(d, k))) for k in type(d).model_fields],
        )
    )
    pp = policy.payment_plans
    plan_lines = [f"You may {_PLAN_WORDS[p]}." for p in pp.allowed]
    if "staged" in pp.allowed:
        plan_lines.append("Staged plans: " + ", ".join("/".join(str(x) for x in r) for r in pp.staged_ratios) + " percent.")
    plan_lines.append(
        f"The platform keeps {_pct(f.platform_fee_bps)} of what the seller is paid; an earnest deposit counts up to "
        f"{_pct(pp.earnest_deposit_max_bps)} of the price."
    )
    sections.append(Section(title="Payment", lines=plan_lines))
    return PolicyDescription(
        name=policy.name, version=policy.version, description=policy.description, sections=sections, cancellation=terms
    )


def quote_text(decision: CancellationDecision | SettlementDecision) -> str:
    """A decision in plain words: the summary, then each amount and each reason."""
    e = decision.explanation
    cur = str(e.facts.get("currency", ""))
    lines = [e.summary]
    if isinstance(decision, CancellationDecision):
        pairs = [
            ("Refund to the buyer", decision.refund_to_buyer),
            ("To the seller", decision.to_seller),
            ("Platform fee", decision.platform_fee),
            ("Seller also pays the buyer", decision.seller_pays_buyer),
            ("Buyer still owes the seller", decision.buyer_owes_seller),
        ]
    else:
        pairs = [
            ("To the seller", decision.to_seller),
            ("Platform fee", decision.platform_fee),
            ("Late penalty to the buyer", decision.late_penalty_to_buyer),
        ]
    lines.extend(f"  {label}: {format_money(v, cur)}" for label, v in pairs if v or label in ("Refund to the buyer", "To the seller"))
    for m in e.matched:
        lines.append(f"  Why ({m.rule_id}): {m.because}")
    lines.append(f"  Policy {e.pin.name}@{e.pin.version} (sha256 {e.pin.sha256[:12]}), decision {e.decision_id}.")
    return "\n".join(lines)
