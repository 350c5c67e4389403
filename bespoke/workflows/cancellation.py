"""Cancelling an order before delivery: the facts the policy decides on, why the
order is being cancelled, the earnest deposit at stake, and carrying it out."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from bespoke.activities.rules import CancellationRequest, cancellation_decision
    from bespoke.domain.events import EventKind, SystemActor
    from bespoke.domain.models import Account, Actor, Role, Stage
    from bespoke.rules import CancellationFacts

if TYPE_CHECKING:
    from bespoke.workflows.core import OrderCore

# Why an order is cancelled (the `reason` fact of the cancellation table).
ACCEPTANCE_TIMEOUT = "acceptance_timeout"
DEPOSIT_TIMEOUT = "deposit_timeout"
BALANCE_TIMEOUT = "balance_timeout"
COD_REFUSED = "cod_refused"
LATE_DELIVERY = "late_delivery"
BUYER_REQUEST = "buyer_request"
SELLER_REQUEST = "seller_request"
QC_REWORK_LIMIT = "qc_rework_limit"
# Stages a party may cancel from: any before delivery. Once shipped, the goods
# come back to the seller (the cancellation rows for `shipped`, R10 and R14).
CANCELLABLE = (Stage.AWAITING_ACCEPTANCE, Stage.AWAITING_BALANCE, Stage.AWAITING_DEPOSIT, Stage.IN_PRODUCTION,
               Stage.QUALITY_CHECK, Stage.SHIPPED)
# A party cancelling while the goods are on their way (orders before it could not).
CANCEL_SHIPPED_PATCH = "cancel-shipped-v1"
MILESTONE_NAMES = ("materials", "fabrication", "finishing")


def earnest_amount(wf: OrderCore) -> int:
    """The earnest part (定金) of the deposit actually paid: capped by the policy
    (20% of the price in PRC law). Forfeited by a breaching buyer, returned double
    by a breaching seller."""
    inp, s = wf.inp, wf.s
    if not inp.earnest_deposit or not s.parts:
        return 0
    cap = inp.price * wf.policy.payment_plans.earnest_deposit_max_bps // 10_000
    return min(s.parts[0].paid, cap)


def facts(wf: OrderCore, by: Role, reason: str, at: datetime | None = None) -> CancellationFacts:
    """The facts a cancellation by `by` for `reason` is decided on, as of `at`."""
    inp, s = wf.inp, wf.s
    at = at or workflow.now()
    return CancellationFacts(
        stage=s.stage.value,
        cancelled_by="system" if by in (Role.SYSTEM, Role.OPS, Role.CARRIER, Role.INTEGRATION) else by.value,
        reason=reason,
        price=inp.price,
        currency=inp.currency,
        payment_plan=inp.plan.kind.value,
        escrow_balance=s.balances[Account.ESCROW],
        paid_total=s.paid,
        costs_incurred=s.costs_incurred(),
        costs_by_milestone={m: sum(r.cost for r in s.milestones if r.milestone == m) for m in MILESTONE_NAMES},
        salvage_value=s.salvage_value,
        days_late=wf._days_late(at),
        earnest_deposit=earnest_amount(wf),
        unpaid_commitment=unpaid_commitment(wf),
        as_of=at,
    )


def unpaid_commitment(wf: OrderCore) -> int:
    """What the buyer owes under its plan and has not paid: the price on credit
    (until repaid) or cash on delivery, else the part that has fallen due."""
    s, plan = wf.s, wf.plan
    if plan.on_credit:
        return s.credit_outstanding
    if plan.cash_on_delivery:
        return max(wf.inp.price - s.paid, 0)
    part = s.current_part()
    return part.due if part is not None else 0


def rework_limit_reached(wf: OrderCore) -> bool:
    s = wf.s
    return s.stage is Stage.QUALITY_CHECK and s.qc_failures > wf.policy.limits.qc_max_rework


def reason_for(wf: OrderCore, by: Role, at: datetime | None = None) -> str:
    """Why a party's cancellation happens: a buyer after the grace period cancels
    for late delivery; a seller after the rework limit, for quality."""
    s = wf.s
    at = at or workflow.now()
    if by is Role.BUYER:
        if wf._days_late(at) > 0 and s.promised_at is not None and (
            at >= s.promised_at + wf.policy.deadlines.production_grace
        ) and s.stage in (Stage.IN_PRODUCTION, Stage.QUALITY_CHECK, Stage.SHIPPED):
            return LATE_DELIVERY
        return BUYER_REQUEST
    if by is Role.SELLER and rework_limit_reached(wf):
        return QC_REWORK_LIMIT
    return SELLER_REQUEST


def return_shipping_payer(explanation: Any) -> str:
    """Who pays to bring cancelled goods back: the party the matched rule finds in
    breach (the buyer who changes their mind, R10; the seller who withdraws, R14;
    the seller who delivers late, R19); nobody in breach: the seller, whose goods
    they are."""
    for rule in explanation.matched:
        breach = (rule.outputs or {}).get("breach")
        if breach in ("buyer", "seller"):
            return breach
    return "seller"


def decided_by(actor_role: Role, reason: str) -> Role:
    # A seller giving up after the rework limit is the quality process ending the
    # order, not the seller walking away: the policy decides it as such.
    return Role.SYSTEM if reason == QC_REWORK_LIMIT else actor_role


async def cancel(wf: OrderCore, actor: Actor, reason: str, message: str) -> str:
    """Cancel the order as the policy decides: refund, costs to the seller, fee,
    any compensation; close it. Returns the timeline message."""
    s, inp = wf.s, wf.inp
    # Goods on their way come back: only a party's cancellation while shipped (a
    # refusal at the door is its own path, with the goods already returning).
    returning = s.stage is Stage.SHIPPED and reason != COD_REFUSED and wf._patched(CANCEL_SHIPPED_PATCH)
    s.closing = True
    request = CancellationRequest(**wf._rules_input(), facts=facts(wf, decided_by(actor.party.role, reason), reason),
                                  decision_id=wf._next_decision_id("cancellation"))
    try:
        decision = await wf._decide(cancellation_decision, request, "cancellation")
    except ApplicationError:
        s.closing = False  # asked for by a party: the order stays as it was
        raise
    wf._record_decision(decision.explanation.model_dump(mode="json"))
    now = workflow.now()
    # Credit that funded escrow at shipment goes back to the credit line first.
    to_buyer = (wf.books.to_buyer(decision.refund_to_buyer) if returning and wf.plan.on_credit
                else [(Account.BUYER, decision.refund_to_buyer)])
    wf.books.post(
        "cancellation",
        [
            (Account.ESCROW, -(decision.refund_to_buyer + decision.to_seller + decision.platform_fee)),
            *to_buyer,
            (Account.SELLER, decision.to_seller),
            (Account.PLATFORM_FEE, decision.platform_fee),
        ],
        decision.explanation.summary,
        at=now,
        key="cancellation",
    )
    # What escrow could not cover stays owed: a claim on the order (COD refused,
    # balance unpaid, a buyer on credit or COD who cancels after costs were spent).
    wf._claim(f"buyer:{inp.buyer}", f"seller:{inp.seller}", decision.buyer_owes_seller,
              f"cancellation ({reason}): the seller's costs escrow could not cover "
              f"(decision {request.decision_id})")
    if decision.seller_pays_buyer:
        wf.books.post("seller_compensation", [(Account.SELLER, -decision.seller_pays_buyer),
                                              (Account.BUYER, decision.seller_pays_buyer)],
                      "seller compensates the buyer", at=now, key="seller-compensation")
    wf.deadlines.clear()
    text = f"{message} ({reason}); {decision.explanation.summary}"
    wf._event(EventKind.CANCELLED, actor, text)
    if returning:
        payer = return_shipping_payer(decision.explanation)
        wf._event(EventKind.GOODS_RETURNING, SystemActor.RULES,
                  f"the goods return to the seller ({s.shipment['carrier']}, tracking {s.shipment['tracking']}); "
                  f"return shipping is paid by the {payer}")
    wf._set_stage(Stage.CANCELLED)
    await wf._sync()
    await wf.plan.after_cancel(wf)
    s.closed = True
    return text
