"""Releasing escrow: to the seller, the platform fee, and any late penalty back
to the buyer, as the pinned policy's settlement rules decide."""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from bespoke.activities.rules import SettlementRequest, settlement_decision
    from bespoke.domain.events import EventKind, SystemActor
    from bespoke.domain.models import Account
    from bespoke.rules import SettlementFacts

if TYPE_CHECKING:
    from bespoke.workflows.core import OrderCore


async def settle(wf: OrderCore, label: str) -> None:
    """Release what escrow holds. `label` ("settlement", or "retention" for the
    part paid after acceptance) names the decision, the posting and the entry."""
    s, inp = wf.s, wf.inp
    escrow = s.balances[Account.ESCROW]
    if escrow == 0:
        return
    days_late = wf._days_late(s.shipped_at) if label == "settlement" else 0
    facts = SettlementFacts(
        price=inp.price, currency=inp.currency, escrow_balance=escrow,
        days_late=days_late, payment_plan=inp.plan.kind.value, as_of=workflow.now(),
    )
    decision = await wf._decide(
        settlement_decision,
        SettlementRequest(**wf._rules_input(), facts=facts, decision_id=wf._next_decision_id(label)),
        "settlement",
    )
    wf._record_decision(decision.explanation.model_dump(mode="json"))
    s.late_penalty += decision.late_penalty_to_buyer
    wf.books.post(
        label,
        [
            (Account.ESCROW, -escrow),
            (Account.SELLER, decision.to_seller),
            (Account.PLATFORM_FEE, decision.platform_fee),
            (Account.BUYER, decision.late_penalty_to_buyer),
        ],
        decision.explanation.summary,
        at=workflow.now(),
        key=label,
    )
    wf._event(
        EventKind(label), SystemActor.RULES,
        f"escrow released: {wf._money(decision.to_seller)} to seller, fee {wf._money(decision.platform_fee)}"
        + (f", late penalty {wf._money(decision.late_penalty_to_buyer)} to buyer"
           if decision.late_penalty_to_buyer else ""),
    )
    await wf._sync()
