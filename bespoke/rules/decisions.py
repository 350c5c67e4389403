"""The built-in decisions: settlement at completion, cancellation before delivery.

Each takes a policy and frozen facts, evaluates the policy's table (plus any plugin
hooks), computes money from the resulting parameters in integers, and returns the
amounts with an `Explanation`. Same policy + same facts → identical result.

Rounding: rates in basis points are applied with round-half-up on the single amount
they produce (`money.apply_bps`); the fee is then *subtracted* from the amount it
was taken from, so every split adds up to the escrow balance exactly.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from bespoke.domain.money import format_amount

from .engine import CompiledTable, ConditionResult, TableResult, compiled_tables, evaluate_compiled
from .errors import DecisionError, PolicyError
from .explain import Explanation, MatchedRule, PolicyPin, fast_model, pin_policy
from .facts import CancellationFacts, DisputeFacts, RefundFacts, ReturnFacts, SettlementFacts
from .model import Policy
from .money import allocate, apply_bps
from .plugins import ResolvedPlugin, resolve_plugin
from .schema import (
    CANCELLATION_OUTPUT_DEFAULTS,
    CANCELLATION_OUTPUTS,
    DISPUTE_OUTPUT_DEFAULTS,
    DISPUTE_OUTPUTS,
    REFUND_OUTPUT_DEFAULTS,
    REFUND_OUTPUTS,
    REPAIR_OUTPUTS,
    RETURN_OUTPUT_DEFAULTS,
    RETURN_SHIPPING_OUTPUTS,
    RETURN_TERMS_OUTPUTS,
    SETTLEMENT_OUTPUT_DEFAULTS,
    SETTLEMENT_OUTPUTS,
    Spec,
    value_matches,
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SettlementDecision(_Frozen):
    """Escrow at completion: `to_seller + platform_fee + late_penalty_to_buyer == escrow_balance`."""

    to_seller: int
    platform_fee: int
    late_penalty_to_buyer: int
    explanation: Explanation


class CancellationDecision(_Frozen):
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


class ReturnTermsDecision(_Frozen):
    """May the buyer open this return, who pays to ship the goods back, and may the
    seller still offer a repair.

    `repair_allowed` is never true once `repair_rounds` reaches
    `limits.max_repair_rounds`; `refund_only` means the repair limit is reached, so
    the buyer may demand a refund and the seller can no longer offer a repair. Both
    are false when the return is not allowed.
    """

    allowed: bool
    return_shipping_payer: Literal["buyer", "seller"]
    repair_allowed: bool
    refund_only: bool
    explanation: Explanation


class RefundDecision(_Frozen):
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


class DisputeDefaultDecision(_Frozen):
    """A dispute whose evidence deadline passed: decided for one side, or left to ops.

    `refund` is what the buyer gets back (0 unless `outcome == "buyer_wins"`); pay it
    out with `decide_refund` (outcome `dispute_default`).
    """

    outcome: Literal["buyer_wins", "seller_wins", "ops_review"]
    refund: int
    explanation: Explanation


# --- per-policy context (compiled tables, pin, resolved plugin hooks) ----------


class _Context:
    __slots__ = ("tables", "pin", "hooks", "__weakref__")

    def __init__(self, policy: Policy) -> None:
        self.tables: dict[str, CompiledTable] = compiled_tables(policy)
        self.pin: PolicyPin = pin_policy(policy)
        hooks: dict[str, list[ResolvedPlugin]] = {}
        for i, hook in enumerate(policy.plugins.hooks):
            hooks.setdefault(hook.table, []).append(resolve_plugin(hook.plugin, where=f"plugins.hooks[{i}].plugin"))
        self.hooks = hooks


_CONTEXTS: dict[int, tuple[weakref.ref[Policy], _Context]] = {}


# Local activities receive a fresh Policy object (decoded from the workflow input)
# on every call, so the per-object cache alone would recompile each time (~1.5 ms);
# equal content shares one context (LRU of _BY_CONTENT_MAX entries).
_BY_CONTENT: dict[str, _Context] = {}
_BY_CONTENT_MAX = 64


def _context(policy: Policy) -> _Context:
    entry = _CONTEXTS.get(id(policy))
    if entry is not None and entry[0]() is policy:
        return entry[1]
    content = policy.model_dump_json()
    ctx = _BY_CONTENT.pop(content, None)
    if ctx is None:
        ctx = _Context(policy)
    _BY_CONTENT[content] = ctx  # re-insert: most recently used last
    while len(_BY_CONTENT) > _BY_CONTENT_MAX:
        _BY_CONTENT.pop(next(iter(_BY_CONTENT)))
    key = id(policy)
    _CONTEXTS[key] = (weakref.ref(policy, lambda _r, key=key: _CONTEXTS.pop(key, None)), ctx)
    return ctx


def _check_pin(ctx: _Context, policy: Policy, pin: PolicyPin | None) -> None:
    if pin is None or pin == ctx.pin:
        return
    if pin.sha256 != ctx.pin.sha256:
        raise PolicyError(
            f"policy {policy.name}@{policy.version} (sha256 {ctx.pin.sha256[:12]}) is not the pinned "
            f"{pin.name}@{pin.version} (sha256 {pin.sha256[:12]})"
        )
    raise PolicyError(
        f"plugins changed since {pin.name}@{pin.version} was pinned: pinned "
        + ", ".join(f"{p.name}={p.distribution} {p.version}" for p in pin.plugins)
        + "; installed "
        + ", ".join(f"{p.name}={p.distribution} {p.version}" for p in ctx.pin.plugins)
    )


def _run_table(
    ctx: _Context,
    table: str,
    facts: dict[str, Any],
    defaults: Mapping[str, Any],
    specs: Mapping[str, Spec],
) -> tuple[dict[str, Any], list[MatchedRule]]:
    ct = ctx.tables[table]
    tr: TableResult = evaluate_compiled(ct, facts)
    outputs = {**defaults, **tr.outputs}
    matched = [
        fast_model(
            MatchedRule,
            {
                "table": table,
                "rule_id": row.rule.id,
                "because": row.rule.because,
                "conditions": [ConditionResult(f, op, e, facts[f], True) for (f, op, e) in row.triples],
                "outputs": row.outputs,
            },
        )
        for row in tr.matched
    ]
    for rp in ctx.hooks.get(table, ()):
        frozen_facts = MappingProxyType({k: MappingProxyType(v) if isinstance(v, dict) else v for k, v in facts.items()})
        try:
            changes = rp.plugin(frozen_facts, MappingProxyType(dict(outputs)))
        except Exception as exc:  # surface plugin bugs as decision errors naming the plugin
            raise DecisionError(f"plugin {rp.name!r} ({rp.plugin.id} {rp.plugin.version}) failed: {type(exc).__name__}: {exc}") from None
        if not changes:
            continue
        changes = dict(changes)
        for k, v in changes.items():
            spec = specs.get(k)
            msg = "unknown output" if spec is None else value_matches(spec, v)
            if msg is not None:
                raise DecisionError(f"plugin {rp.name!r} returned {k}={v!r}: {msg}")
        outputs.update(changes)
        matched.append(
            MatchedRule(
                table=table,
                rule_id=f"plugin:{rp.name}",
                because=f"{rp.plugin.because} (plugin {rp.plugin.id} {rp.plugin.version} from {rp.distribution} {rp.distribution_version})",
                conditions=[],
                outputs=changes,
            )
        )
    return outputs, matched


# --- money words --------------------------------------------------------------

def format_money(amount: int, currency: str) -> str:
    """`1,234.50 CNY`, `1,234 JPY` from integer minor units (exact, no floats): the
    same rendering as the CLI's (bespoke.domain.money.format_amount)."""
    return format_amount(amount, currency)


def late_penalty_bps(policy: Policy, days: int) -> int:
    """Daily late penalty rate, capped: `min(days * bps_per_day, cap)`."""
    return min(days * policy.fees.late_penalty_bps_per_day, policy.fees.late_penalty_cap_bps)


# --- settlement -------------------------------------------------------------------


def decide_settlement(
    policy: Policy, facts: SettlementFacts, *, decision_id: str, pin: PolicyPin | None = None
) -> SettlementDecision:
    """Split escrow at completion into seller payout, platform fee and late penalty.

    The penalty is `min(days_late * late_penalty_bps_per_day, cap) * price`, bounded
    by escrow; the platform fee is `platform_fee_bps` of what is released to the
    seller (escrow minus penalty), rounded half up.
    """
    ctx = _context(policy)
    _check_pin(ctx, policy, pin)
    if facts.currency not in policy.limits.currencies:
        raise DecisionError(f"currency {facts.currency!r} is not accepted by {policy.name}@{policy.version}")
    f = dict(facts.__dict__)
    f["past_grace"] = facts.days_late * 86400 > policy.deadlines.production_grace.total_seconds()
    if "settlement" in ctx.tables:
        outputs, matched = _run_table(ctx, "settlement", f, SETTLEMENT_OUTPUT_DEFAULTS, SETTLEMENT_OUTPUTS)
    else:
        outputs, matched = {"late_penalty": facts.days_late > 0, "penalty_free_days": 0}, []
    days = max(0, facts.days_late - outputs["penalty_free_days"]) if outputs["late_penalty"] else 0
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
    explanation = fast_model(
        Explanation,
        {
            "decision_id": decision_id,
            "kind": "settlement",
            "pin": ctx.pin,
            "as_of": facts.as_of,
            "facts": f,
            "matched": matched,
            "amounts": {
                "escrow_balance": escrow,
                "to_seller": to_seller,
                "platform_fee": fee,
                "late_penalty_to_buyer": penalty,
            },
            "summary": summary,
            "results": {},
        },
    )
    return fast_model(
        SettlementDecision,
        {"to_seller": to_seller, "platform_fee": fee, "late_penalty_to_buyer": penalty, "explanation": explanation},
    )


# --- cancellation -----------------------------------------------------------------

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
    f["past_grace"] = facts.days_late * 86400 > policy.deadlines.production_grace.total_seconds()
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
    ctx = _context(policy)
    _check_pin(ctx, policy, pin)
    if "cancellation" not in ctx.tables:
        raise PolicyError(f"policy {policy.name}@{policy.version} has no cancellation table")
    if facts.currency not in policy.limits.currencies:
        raise DecisionError(f"currency {facts.currency!r} is not accepted by {policy.name}@{policy.version}")
    f = derived_cancellation_facts(policy, facts)
    o, matched = _run_table(ctx, "cancellation", f, CANCELLATION_OUTPUT_DEFAULTS, CANCELLATION_OUTPUTS)

    price = facts.price
    escrow = facts.escrow_balance
    paid = facts.paid_total
    released = f["released_to_seller"]

    share = apply_bps(f["net_cost"], o["buyer_cost_share_bps"])
    cap = o["cap"]
    if cap == "paid":
        share = min(share, paid)
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
    summary = (
        f"{_WHO[facts.cancelled_by]} cancelled {_STAGE_WORDS[facts.stage]} {_REASON_WORDS[facts.reason]}: "
        f"{format_money(refund, cur)} back to the buyer and {format_money(to_seller, cur)} to the seller "
        f"(after a {format_money(fee, cur)} platform fee) from {format_money(escrow, cur)} in escrow"
    )
    if seller_extra:
        summary += f"; the seller also pays the buyer {format_money(seller_extra, cur)}"
    if claim:
        summary += f"; the buyer still owes the seller {format_money(claim, cur)}, which escrow cannot cover"
    summary += f" (rule {ids})."
    explanation = fast_model(
        Explanation,
        {
            "decision_id": decision_id,
            "kind": "cancellation",
            "pin": ctx.pin,
            "as_of": facts.as_of,
            "facts": f,
            "matched": matched,
            "amounts": {
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
            "summary": summary,
            "results": {},
        },
    )
    return fast_model(
        CancellationDecision,
        {
            "refund_to_buyer": refund,
            "to_seller": to_seller,
            "platform_fee": fee,
            "seller_pays_buyer": seller_extra,
            "buyer_owes_seller": claim,
            "explanation": explanation,
        },
    )


def _rule_words(matched: list[MatchedRule]) -> str:
    ids = [m.rule_id for m in matched]
    if not ids:
        return "built-in terms"
    return ("rule " if len(ids) == 1 else "rules ") + ", ".join(ids)


# --- after-sales: return terms -------------------------------------------------------

_RETURN_REASON_WORDS = {
    "defect": "a defect",
    "not_as_specified": "goods not as specified",
    "damaged_in_transit": "damage in transit",
    "changed_mind": "a change of mind",
}


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
    ctx = _context(policy)
    _check_pin(ctx, policy, pin)
    if facts.currency not in policy.limits.currencies:
        raise DecisionError(f"currency {facts.currency!r} is not accepted by {policy.name}@{policy.version}")
    f = derived_return_facts(policy, facts)
    matched: list[MatchedRule] = []
    fault = facts.reason != "changed_mind"
    builtin = {
        "return_terms": {"allowed": fault and (facts.stage == "delivered" or f["within_window"])},
        "return_shipping": {"return_shipping_payer": "seller" if fault else "buyer"},
        "repair": {"repair_allowed": not f["repair_limit_reached"], "refund_only": f["repair_limit_reached"]},
    }
    specs = {"return_terms": RETURN_TERMS_OUTPUTS, "return_shipping": RETURN_SHIPPING_OUTPUTS, "repair": REPAIR_OUTPUTS}
    o: dict[str, Any] = dict(RETURN_OUTPUT_DEFAULTS)
    for table in ("return_terms", "return_shipping", "repair"):
        if table in ctx.tables:
            out, m = _run_table(ctx, table, f, RETURN_OUTPUT_DEFAULTS, specs[table])
            o.update({k: out[k] for k in specs[table]})
            matched.extend(m)
        else:
            o.update(builtin[table])
    allowed = bool(o["allowed"])
    payer = o["return_shipping_payer"]
    # The repair limit is a hard limit: a table may restrict repairs further, never extend them.
    refund_only = allowed and bool(o["refund_only"] or f["repair_limit_reached"])
    repair_allowed = allowed and bool(o["repair_allowed"]) and not refund_only

    ids = _rule_words(matched)
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
    summary += f" ({ids})."
    explanation = fast_model(
        Explanation,
        {
            "decision_id": decision_id,
            "kind": "return_terms",
            "pin": ctx.pin,
            "as_of": facts.as_of,
            "facts": f,
            "matched": matched,
            "amounts": {},
            "summary": summary,
            "results": {
                "allowed": allowed,
                "return_shipping_payer": payer,
                "repair_allowed": repair_allowed,
                "refund_only": refund_only,
            },
        },
    )
    return fast_model(
        ReturnTermsDecision,
        {
            "allowed": allowed,
            "return_shipping_payer": payer,
            "repair_allowed": repair_allowed,
            "refund_only": refund_only,
            "explanation": explanation,
        },
    )


# --- after-sales: refund -------------------------------------------------------------

_OUTCOME_WORDS = {
    "return_received": "the seller confirmed the returned goods",
    "seller_silent_on_receipt": "the seller did not confirm the returned goods in time",
    "partial_offer_accepted": "the buyer accepted a partial refund and keeps the goods",
    "arbitration": "platform operations decided the dispute",
    "dispute_default": "the dispute was decided by default at the evidence deadline",
}


def derived_refund_facts(facts: RefundFacts) -> dict[str, Any]:
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
    ctx = _context(policy)
    _check_pin(ctx, policy, pin)
    if facts.currency not in policy.limits.currencies:
        raise DecisionError(f"currency {facts.currency!r} is not accepted by {policy.name}@{policy.version}")
    f = derived_refund_facts(facts)
    if "refund" in ctx.tables:
        o, matched = _run_table(ctx, "refund", f, REFUND_OUTPUT_DEFAULTS, REFUND_OUTPUTS)
    else:
        o = {**REFUND_OUTPUT_DEFAULTS, "reimburse_shipping": facts.outcome != "partial_offer_accepted"}
        matched = []
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
    ids = _rule_words(matched)
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
    summary += f" ({ids})."
    explanation = fast_model(
        Explanation,
        {
            "decision_id": decision_id,
            "kind": "refund",
            "pin": ctx.pin,
            "as_of": facts.as_of,
            "facts": f,
            "matched": matched,
            "amounts": {
                "refund_total": total,
                "refund_from_escrow": from_escrow,
                "chargeback_from_seller": chargeback,
                "fee_refund_to_seller": fee_refund,
                "shipping_reimbursement": shipping,
                "seller_net_cost": chargeback - fee_refund + shipping,
            },
            "summary": summary,
            "results": {"fee_refund": o["fee_refund"], "reimburse_shipping": bool(o["reimburse_shipping"])},
        },
    )
    return fast_model(
        RefundDecision,
        {
            "refund_from_escrow": from_escrow,
            "chargeback_from_seller": chargeback,
            "fee_refund_to_seller": fee_refund,
            "shipping_reimbursement": shipping,
            "explanation": explanation,
        },
    )


# --- after-sales: dispute default ------------------------------------------------------


def _builtin_dispute_outcome(facts: DisputeFacts) -> str:
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
    ctx = _context(policy)
    _check_pin(ctx, policy, pin)
    if facts.currency not in policy.limits.currencies:
        raise DecisionError(f"currency {facts.currency!r} is not accepted by {policy.name}@{policy.version}")
    f = dict(facts.__dict__)
    if "dispute_default" in ctx.tables:
        o, matched = _run_table(ctx, "dispute_default", f, DISPUTE_OUTPUT_DEFAULTS, DISPUTE_OUTPUTS)
    else:
        o, matched = {**DISPUTE_OUTPUT_DEFAULTS, "outcome": _builtin_dispute_outcome(facts)}, []
    outcome = o["outcome"]
    refund = apply_bps(facts.claim, o["refund_bps"]) if outcome == "buyer_wins" else 0

    cur = facts.currency
    sent = {
        (True, True): "both sides sent evidence",
        (True, False): "only the buyer sent evidence",
        (False, True): "only the seller sent evidence",
        (False, False): f"neither side sent evidence on the dispute the {facts.opened_by} opened",
    }[(facts.buyer_submitted, facts.seller_submitted)]
    ids = _rule_words(matched)
    if outcome == "buyer_wins":
        what = f"decided for the buyer: refund {format_money(refund, cur)} of the {format_money(facts.claim, cur)} claimed"
    elif outcome == "seller_wins":
        what = f"decided for the seller: no refund of the {format_money(facts.claim, cur)} claimed"
    else:
        what = "platform operations must arbitrate"
    summary = f"The evidence deadline passed and {sent}: {what} ({ids})."
    explanation = fast_model(
        Explanation,
        {
            "decision_id": decision_id,
            "kind": "dispute_default",
            "pin": ctx.pin,
            "as_of": facts.as_of,
            "facts": f,
            "matched": matched,
            "amounts": {"claim": facts.claim, "refund": refund},
            "summary": summary,
            "results": {"outcome": outcome},
        },
    )
    return fast_model(DisputeDefaultDecision, {"outcome": outcome, "refund": refund, "explanation": explanation})
