"""The policy in plain words, for buyers: `describe_policy` and `quote_text`."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from bespoke.domain.vocabulary import Frozen

from .decisions import (
    CancellationDecision,
    DisputeDefaultDecision,
    RefundDecision,
    ReturnTermsDecision,
    SettlementDecision,
    format_money,
)
from .durations import duration_words
from .facts import PARTIES, STAGES
from .model import Policy, Rule
from .schema import (
    CANCELLATION_OUTPUT_DEFAULTS,
    DISPUTE_OUTPUT_DEFAULTS,
    REFUND_OUTPUT_DEFAULTS,
    RETURN_OUTPUT_DEFAULTS,
)


class CancellationTerm(Frozen):
    stage: str
    who: str
    when: str  # the remaining conditions in words ("" if none)
    rule_id: str
    terms: str  # what it costs, in words derived from the row's parameters
    because: str


class Section(Frozen):
    title: str
    lines: list[str]


class AftersalesTerm(Frozen):
    """One after-sales row in words: `if <when>: <terms>` (`when` is "" for any case)."""

    table: str
    rule_id: str
    when: str
    terms: str
    because: str


class PolicyDescription(Frozen):
    name: str
    version: str
    description: str
    sections: list[Section]
    cancellation: list[CancellationTerm] = Field(default_factory=list)
    aftersales: list[AftersalesTerm] = Field(default_factory=list)


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
    "aftersales_window": "Returns, repairs and disputes may be opened within {d} of delivery (time a case is "
                         "open does not count).",
    "return_response": "The seller has {d} to answer a return request; silence approves it.",
    "return_ship": "After approval the buyer has {d} to ship the return; otherwise the case closes.",
    "return_receive": "The seller has {d} to confirm the returned goods; otherwise the buyer is refunded.",
    "partial_offer_response": "A partial-refund offer must be answered within {d}.",
    "dispute_evidence": "In a dispute each side has {d} to send evidence; missing it decides the dispute for the other side.",
    "escalation": "After the seller rejects a case the buyer has {d} to open a dispute; otherwise the case closes.",
    "repair_reship": "The seller has {d} to send back goods it took in for repair; otherwise the buyer is refunded.",
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
            cap = {"paid": ", up to what you have paid or owe under your payment plan (credit, cash on delivery, "
                           "a part fallen due)", "price": ", up to the price", "none": ""}[o["cap"]]
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
    aftersales = aftersales_terms(policy)
    by_table: dict[str, list[str]] = {}
    for t in aftersales:
        by_table.setdefault(t.table, []).append(
            (f"If {t.when}: " if t.when else "") + t.terms + (f" ({t.rule_id})" if t.rule_id else "")
        )
    sections.append(
        Section(
            title="Returns and after-sales",
            lines=[
                _DEADLINE_WORDS["inspection_window"].format(d=duration_words(d.inspection_window)),
                _DEADLINE_WORDS["aftersales_window"].format(d=duration_words(d.aftersales_window)),
                *by_table["return_terms"],
                _DEADLINE_WORDS["return_response"].format(d=duration_words(d.return_response)),
                _DEADLINE_WORDS["partial_offer_response"].format(d=duration_words(d.partial_offer_response)),
                _DEADLINE_WORDS["return_ship"].format(d=duration_words(d.return_ship)),
                _DEADLINE_WORDS["return_receive"].format(d=duration_words(d.return_receive)),
                f"An order can have at most {policy.limits.max_cases_per_order} after-sales cases, one at a time.",
            ],
        )
    )
    sections.append(Section(title="Who pays return shipping", lines=by_table["return_shipping"]))
    max_rounds = policy.limits.max_repair_rounds
    sections.append(
        Section(
            title="Repairs",
            lines=[
                (
                    f"Faulty goods may be repaired at most {max_rounds} time{'s' if max_rounds != 1 else ''}; "
                    "after that you may demand a refund and the seller cannot offer another repair. "
                    "A repaired item comes back with a new inspection window."
                )
                if max_rounds
                else "Faulty goods are not repaired under this policy: you may demand a refund.",
                *by_table["repair"],
            ],
        )
    )
    sections.append(
        Section(
            title="Refunds",
            lines=[
                "A refund comes out of the money still held in escrow first; money already paid out to the seller "
                "is charged back to the seller.",
                *by_table["refund"],
            ],
        )
    )
    sections.append(
        Section(
            title="Disputes",
            lines=[
                "Either side may escalate a rejected or stuck case to platform operations.",
                _DEADLINE_WORDS["dispute_evidence"].format(d=duration_words(d.dispute_evidence)),
                "When the evidence deadline passes:",
                *by_table["dispute_default"],
            ],
        )
    )
    sections.append(
        Section(
            title="Deadlines",
            lines=[_DEADLINE_WORDS[k].format(d=duration_words(d.effective(k))) for k in type(d).model_fields],
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
        name=policy.name,
        version=policy.version,
        description=policy.description,
        sections=sections,
        cancellation=terms,
        aftersales=aftersales,
    )


# --- after-sales in words ------------------------------------------------------------

_AFTERSALES_VALUE_WORDS: dict[str, dict[Any, str]] = {
    "reason": {
        "defect": "the goods are faulty",
        "not_as_specified": "the goods are not as specified",
        "damaged_in_transit": "the goods arrived damaged",
        "changed_mind": "you changed your mind",
    },
    "stage": {"delivered": "the inspection window is still open", "completed": "the order is already settled"},
    "remedy": {"refund": "you ask for a refund", "repair": "you ask for a repair"},
    "outcome": {
        "return_received": "the seller confirms the returned goods",
        "seller_silent_on_receipt": "the seller does not confirm the returned goods in time",
        "partial_offer_accepted": "you accept a partial refund and keep the goods",
        "arbitration": "platform operations decide a dispute",
        "dispute_default": "a dispute is decided by default",
        "buyer_wins": "decided for you",
        "seller_wins": "decided for the seller",
        "ops_review": "platform operations decide",
    },
    "opened_by": {"buyer": "you opened the dispute", "seller": "the seller escalated the case"},
    "return_shipping_payer": {"buyer": "you pay return shipping", "seller": "the seller pays return shipping"},
}

_FLAG_WORDS: dict[str, tuple[str, str]] = {
    # field: (words when true, words when false); {w} is the after-sales window, {n} the repair limit
    "within_window": ("it is within {w} of delivery", "it is more than {w} after delivery"),
    "repair_limit_reached": (
        "the goods were already repaired {n} {times}",
        "the goods were repaired fewer than {n} {times}",
    ),
    "buyer_submitted": ("you sent evidence", "you sent none"),
    "seller_submitted": ("the seller sent evidence", "the seller sent none"),
    "escrow_covers": ("escrow still holds the whole refund", "escrow no longer holds the whole refund"),
}

_FAULT_WORDS = {"defect": "faulty", "not_as_specified": "not as specified", "damaged_in_transit": "damaged in transit"}


def _or_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


_OP_WORDS = {"eq": "is", "ne": "is not", "lt": "is under", "le": "is at most", "gt": "is over", "ge": "is at least"}


def _value_words(field: str, value: Any) -> str:
    return _AFTERSALES_VALUE_WORDS.get(field, {}).get(value, str(value).replace("_", " "))


def _aftersales_when(rule: Rule, policy: Policy) -> str:
    n = policy.limits.max_repair_rounds
    fmt = {"w": duration_words(policy.deadlines.aftersales_window), "n": n, "times": "time" if n == 1 else "times"}
    bits: list[str] = []
    for field, cond in rule.when.items():
        for op, e in cond.items():
            if field in _FLAG_WORDS and op in ("eq", "ne") and isinstance(e, bool):
                yes, no = _FLAG_WORDS[field]
                bits.append((yes if (e if op == "eq" else not e) else no).format(**fmt))
            elif op == "eq":
                bits.append(_value_words(field, e))
            elif op == "in" and field == "reason" and "changed_mind" not in e:
                bits.append("the goods are " + _or_list([_FAULT_WORDS[v] for v in e]))
            elif op == "in":
                bits.append(_or_list([_value_words(field, v) for v in e]))
            elif op == "ne":
                bits.append(f"not ({_value_words(field, e)})")
            elif op == "between":
                bits.append(f"{field.replace('_', ' ')} is between {e[0]} and {e[1]}")
            else:
                bits.append(f"{field.replace('_', ' ')} {_OP_WORDS[op]} {e}")
    return " and ".join(bits)


def _aftersales_then(table: str, outputs: dict[str, Any]) -> str:
    if table == "return_terms":
        o = {**RETURN_OUTPUT_DEFAULTS, **outputs}
        s = "you may return the goods" if o["allowed"] else "you cannot return the goods"
    elif table == "return_shipping":
        o = {**RETURN_OUTPUT_DEFAULTS, **outputs}
        s = _value_words("return_shipping_payer", o["return_shipping_payer"])
    elif table == "repair":
        o = {**RETURN_OUTPUT_DEFAULTS, **outputs}
        if o["refund_only"]:
            s = "you may demand a refund and the seller cannot offer another repair"
        elif o["repair_allowed"]:
            s = "the seller may offer a repair instead of a refund"
        else:
            s = "the seller cannot offer a repair"
    elif table == "refund":
        o = {**REFUND_OUTPUT_DEFAULTS, **outputs}
        bits = ["you are refunded the amount agreed or decided"]
        if o["fee_refund"] == "pro_rata":
            bits.append("the platform gives back its fee on money charged back to the seller")
        else:
            bits.append("the platform keeps its fee on money charged back to the seller")
        bits.append(
            "a seller who pays return shipping reimburses what you paid the carrier"
            if o["reimburse_shipping"]
            else "no return shipping is reimbursed"
        )
        s = "; ".join(bits)
    else:  # dispute_default
        o = {**DISPUTE_OUTPUT_DEFAULTS, **outputs}
        if o["outcome"] == "buyer_wins":
            s = f"decided for you, and {_pct(o['refund_bps'])} of your claim is refunded"
        elif o["outcome"] == "seller_wins":
            s = "decided for the seller, with no refund"
        else:
            s = "platform operations review the evidence and decide"
    return s[0].upper() + s[1:] + "."


_BUILTIN_AFTERSALES: dict[str, list[tuple[str, str]]] = {
    # (when, terms) used when a policy has no table for this part
    "return_terms": [
        ("the goods are faulty, not as specified or arrived damaged, while the inspection window is open or within the after-sales window", "You may return the goods."),
        ("you changed your mind", "You cannot return made-to-order goods."),
    ],
    "return_shipping": [
        ("the goods are faulty, not as specified or arrived damaged", "The seller pays return shipping."),
        ("you changed your mind", "You pay return shipping."),
    ],
    "repair": [("", "The seller may offer a repair until the repair limit is reached; then you may demand a refund.")],
    "refund": [
        ("", "You are refunded the amount agreed or decided; the platform gives back its fee on money charged back "
         "to the seller; a seller who pays return shipping reimburses it, unless you kept the goods for a partial refund."),
    ],
    "dispute_default": [
        ("only one side sent evidence", "The side that sent none loses."),
        ("both sides sent evidence", "Platform operations review the evidence and decide."),
        ("neither side sent evidence", "The side that opened the dispute loses."),
    ],
}

AFTERSALES_TABLES: tuple[str, ...] = ("return_terms", "return_shipping", "repair", "refund", "dispute_default")


def aftersales_terms(policy: Policy) -> list[AftersalesTerm]:
    """Every after-sales row (or the built-in terms a policy without the table gets), in words."""
    out: list[AftersalesTerm] = []
    for tname in AFTERSALES_TABLES:
        table = policy.tables.get(tname)
        if table is None:
            out.extend(
                AftersalesTerm(table=tname, rule_id="", when=w, terms=t, because="Built-in terms (the policy has no table for this).")
                for w, t in _BUILTIN_AFTERSALES[tname]
            )
            continue
        for rule in table.rules:
            out.append(
                AftersalesTerm(
                    table=tname,
                    rule_id=rule.id,
                    when=_aftersales_when(rule, policy),
                    terms=_aftersales_then(tname, rule.then),
                    because=rule.because,
                )
            )
    return out


def quote_text(
    decision: CancellationDecision | SettlementDecision | ReturnTermsDecision | RefundDecision | DisputeDefaultDecision,
) -> str:
    """A decision in plain words: the summary, then each amount (or result) and each reason."""
    e = decision.explanation
    cur = str(e.facts.get("currency", ""))
    lines = [e.summary]
    pairs: list[tuple[str, int]]
    always: tuple[str, ...] = ()
    if isinstance(decision, CancellationDecision):
        pairs = [
            ("Refund to the buyer", decision.refund_to_buyer),
            ("To the seller", decision.to_seller),
            ("Platform fee", decision.platform_fee),
            ("Seller also pays the buyer", decision.seller_pays_buyer),
            ("Buyer still owes the seller", decision.buyer_owes_seller),
        ]
        always = ("Refund to the buyer", "To the seller")
    elif isinstance(decision, SettlementDecision):
        pairs = [
            ("To the seller", decision.to_seller),
            ("Platform fee", decision.platform_fee),
            ("Late penalty to the buyer", decision.late_penalty_to_buyer),
        ]
        always = ("To the seller",)
    elif isinstance(decision, RefundDecision):
        pairs = [
            ("Refund from escrow", decision.refund_from_escrow),
            ("Charged back to the seller", decision.chargeback_from_seller),
            ("Platform fee returned to the seller", decision.fee_refund_to_seller),
            ("Return shipping reimbursed by the seller", decision.shipping_reimbursement),
        ]
    elif isinstance(decision, DisputeDefaultDecision):
        pairs = [("Refund to the buyer", decision.refund)]
        always = ("Refund to the buyer",)
    else:
        pairs = []
        lines.append(f"  Return allowed: {'yes' if decision.allowed else 'no'}")
        lines.append(f"  Return shipping paid by: the {decision.return_shipping_payer}")
        lines.append(f"  Repair may be offered: {'yes' if decision.repair_allowed else 'no'}")
        if decision.refund_only:
            lines.append("  Refund only: the repair limit is reached")
    lines.extend(f"  {label}: {format_money(v, cur)}" for label, v in pairs if v or label in always)
    for m in e.matched:
        lines.append(f"  Why ({m.rule_id}): {m.because}")
    lines.append(f"  Policy {e.pin.name}@{e.pin.version} (sha256 {e.pin.sha256[:12]}), decision {e.decision_id}.")
    return "\n".join(lines)
