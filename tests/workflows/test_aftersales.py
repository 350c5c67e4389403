"""After-sales on the time-skipping server: returns, repairs, partial refunds and
disputes, every deadline's default action, and the ledger after each."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bespoke.domain.models import (
    Actor,
    ArbitrateInput,
    DisputeInput,
    EvidenceInput,
    OfferAnswerInput,
    ReceiveReturnInput,
    ReturnRequestInput,
    ReturnResponseInput,
    ShipInput,
    ShipReturnInput,
    Stage,
)
from bespoke.workflows.order import OrderWorkflow
from tests.helpers import (
    BUYER,
    OPS,
    SELLER,
    accept,
    assert_view_matches_ledger,
    confirm,
    create_order,
    deliver,
    delivered_order,
    pay,
    produce,
    rejected,
    ship,
    status,
)

pytestmark = pytest.mark.usefixtures("worker")
PRICE = 100_000


async def completed_order(client, task_queue):
    handle = await delivered_order(client, task_queue)
    await confirm(handle)
    return handle


def oid(handle) -> str:
    return handle.id.removeprefix("order-")


async def request_return(handle, reason="defect", remedy="refund"):
    return await handle.execute_update(
        OrderWorkflow.request_return,
        ReturnRequestInput(actor=BUYER, reason=reason, remedy=remedy, description="hinge cracked",
                           evidence=("photo-1.jpg",)),
    )


async def respond(handle, action, amount=None, reason=""):
    return await handle.execute_update(
        OrderWorkflow.respond_return, ReturnResponseInput(actor=SELLER, action=action, amount=amount, reason=reason)
    )


async def ship_back(handle, cost=0):
    return await handle.execute_update(
        OrderWorkflow.ship_return, ShipReturnInput(actor=BUYER, carrier="sf-express", tracking="RT1", shipping_cost=cost)
    )


async def receive(handle, disposition="resell_as_stock", salvage=30_000):
    return await handle.execute_update(
        OrderWorkflow.receive_return,
        ReceiveReturnInput(actor=SELLER, disposition=disposition,
                           salvage_value=salvage if disposition == "resell_as_stock" else 0),
    )


async def test_approved_return_refunds_in_full_from_escrow_and_records_disposition(client, task_queue, engine):
    handle = await delivered_order(client, task_queue)
    result = await request_return(handle)
    assert result.stage is Stage.RETURN_REQUESTED
    view = await status(handle)
    assert view.open_case.reason == "defect" and "return_response" in [d.name for d in view.deadlines]
    assert "inspection_window" not in [d.name for d in view.deadlines]  # paused
    await respond(handle, "approve")
    await ship_back(handle, cost=2_000)
    assert (await status(handle)).stage is Stage.RETURN_IN_TRANSIT
    await receive(handle)
    await handle.result()
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)
    assert view.stage is Stage.REFUNDED
    # Full refund of the price; the seller pays return shipping for a defect.
    assert view.refunded == PRICE + 2_000
    assert view.released_to_seller == -2_000 and view.platform_fee == 0
    assert view.salvage_value == 30_000
    assert view.cases[0].disposition == "resell_as_stock" and view.cases[0].outcome == "return_received"
    assert {d["kind"] for d in view.decisions} >= {"return_terms", "refund"}


async def test_seller_silence_approves_and_buyer_not_shipping_closes_the_case_then_inspection_resumes(
    client, task_queue, engine, env
):
    handle = await delivered_order(client, task_queue)
    before = {d.name: d.due_at for d in (await status(handle)).deadlines}["inspection_window"]
    await env.sleep(timedelta(days=2))
    await request_return(handle)
    await env.sleep(timedelta(days=6))  # seller silent past return_response (5 d)
    view = await status(handle)
    assert view.open_case.state == "approved"
    assert any(e.kind == "return_auto_approved" for e in view.timeline)
    await env.sleep(timedelta(days=8))  # buyer silent past return_ship (7 d)
    view = await status(handle)
    assert view.open_case is None and view.cases[0].outcome == "not_shipped"
    assert view.stage is Stage.DELIVERED
    after = {d.name: d.due_at for d in view.deadlines}["inspection_window"]
    assert after > before + timedelta(days=10)  # the window was paused, not restarted or lost
    await handle.result()  # the resumed window expires: auto-confirm
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)
    assert view.stage is Stage.COMPLETED and view.released_to_seller == 95_000


async def test_seller_not_confirming_returned_goods_triggers_the_refund(client, task_queue, engine, env):
    handle = await delivered_order(client, task_queue)
    await request_return(handle, reason="not_as_specified")
    await respond(handle, "approve")
    await ship_back(handle)
    await handle.result()  # return_receive passes: refund goes out
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)
    assert view.stage is Stage.REFUNDED and view.refunded == PRICE
    assert any(e.kind == "return_auto_refund" for e in view.timeline)


async def test_partial_refund_offer_accepted_refunds_part_and_settles_the_rest(client, task_queue, engine):
    handle = await delivered_order(client, task_queue)
    await request_return(handle, reason="damaged_in_transit")
    await respond(handle, "offer_partial", amount=20_000)
    await handle.execute_update(OrderWorkflow.answer_offer, OfferAnswerInput(actor=BUYER, accept=True))
    await handle.result()
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)
    assert view.stage is Stage.REFUNDED and view.refunded == 20_000
    assert view.released_to_seller + view.platform_fee == 80_000


async def test_unanswered_offer_lapses_and_the_buyer_keeps_the_goods(client, task_queue, engine, env):
    handle = await delivered_order(client, task_queue)
    await request_return(handle)
    await respond(handle, "offer_partial", amount=10_000)
    await env.sleep(timedelta(days=4))  # partial_offer_response is 3 d
    view = await status(handle)
    assert view.cases[0].outcome == "offer_lapsed" and view.stage is Stage.DELIVERED
    await confirm(handle)
    await handle.result()
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)
    assert view.stage is Stage.COMPLETED and view.refunded == 0


async def test_repair_round_trip_starts_a_new_inspection_window(client, task_queue, engine):
    handle = await delivered_order(client, task_queue)
    await request_return(handle, remedy="repair")
    await respond(handle, "approve")
    assert (await status(handle)).stage is Stage.REPAIR
    await ship_back(handle)
    await receive(handle, disposition="rework")
    await handle.execute_update(OrderWorkflow.reship, ShipInput(actor=SELLER, carrier="sf-express", tracking="RS1"))
    assert (await status(handle)).stage is Stage.SHIPPED
    await deliver(handle)
    view = await status(handle)
    assert view.stage is Stage.DELIVERED and view.repair_rounds == 1
    assert [d.name for d in view.deadlines] == ["inspection_window"]
    await confirm(handle)
    await handle.result()
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)
    assert view.stage is Stage.COMPLETED and view.cases[0].outcome == "repaired"


async def test_repair_offer_accepted_then_repair_limit_turns_the_next_request_into_a_refund(client, task_queue, engine):
    handle = await delivered_order(client, task_queue)
    for _ in range(2):  # the default policy allows two repair rounds
        await request_return(handle, remedy="refund")
        await respond(handle, "offer_repair")
        await handle.execute_update(OrderWorkflow.answer_offer, OfferAnswerInput(actor=BUYER, accept=True))
        await ship_back(handle)
        await receive(handle, disposition="rework")
        await handle.execute_update(OrderWorkflow.reship, ShipInput(actor=SELLER, carrier="sf-express", tracking="RS"))
        await deliver(handle)
    assert (await status(handle)).repair_rounds == 2
    await request_return(handle, remedy="repair")
    view = await status(handle)
    assert view.open_case.remedy == "refund"
    await rejected(respond(handle, "offer_repair"), "repair limit")
    await respond(handle, "approve")
    await ship_back(handle)
    await receive(handle)
    await handle.result()
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)
    assert view.stage is Stage.REFUNDED and view.refunded == PRICE


async def test_changed_mind_return_on_custom_goods_is_declined_by_the_policy(client, task_queue, engine):
    handle = await delivered_order(client, task_queue)
    result = await request_return(handle, reason="changed_mind")
    view = await status(handle)
    assert view.stage is Stage.DELIVERED and view.cases[0].outcome == "not_allowed"
    assert view.decisions[-1]["kind"] == "return_terms"
    assert result.stage is Stage.DELIVERED
    await confirm(handle)
    await handle.result()
    await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)


async def test_return_after_completion_is_charged_back_to_the_seller(client, task_queue, engine):
    handle = await completed_order(client, task_queue)
    view = await status(handle)
    assert view.stage is Stage.COMPLETED and [d.name for d in view.deadlines] == ["aftersales_window"]
    await request_return(handle)
    await respond(handle, "approve")
    await ship_back(handle)
    await receive(handle, disposition="scrap")
    await handle.result()
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)
    assert view.stage is Stage.REFUNDED and view.refunded == PRICE
    assert view.escrow == 0 and view.released_to_seller == 0 and view.platform_fee == 0


async def test_aftersales_window_closes_and_later_returns_are_rejected(client, task_queue, engine, env):
    handle = await completed_order(client, task_queue)
    await handle.result()  # the 15-day window passes
    view = await status(handle)
    assert any(e.kind == "aftersales_closed" for e in view.timeline)
    await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)


async def test_rejected_case_without_dispute_closes_after_the_escalation_window(client, task_queue, engine, env):
    handle = await delivered_order(client, task_queue)
    await request_return(handle)
    await respond(handle, "reject", reason="wear and tear")
    await env.sleep(timedelta(days=6))
    view = await status(handle)
    assert view.cases[0].outcome == "rejected" and view.stage is Stage.DELIVERED


async def test_dispute_decided_by_ops_with_evidence_on_the_timeline(client, task_queue, engine):
    handle = await delivered_order(client, task_queue)
    await request_return(handle)
    await respond(handle, "reject", reason="customer damage")
    await handle.execute_update(OrderWorkflow.dispute, DisputeInput(actor=BUYER, claim=50_000, statement="arrived cracked"))
    assert (await status(handle)).stage is Stage.DISPUTED
    await rejected(handle.execute_update(OrderWorkflow.arbitrate, ArbitrateInput(actor=SELLER, refund=0, note="x")),
                   "only the ops")
    await rejected(handle.execute_update(OrderWorkflow.evidence, EvidenceInput(actor=OPS, items=("x",))),
                   "only the buyer or seller")
    await rejected(handle.execute_update(OrderWorkflow.evidence,
                                         EvidenceInput(actor=Actor.parse("buyer:mallory"), items=("x",))),
                   "not this order's buyer")
    await handle.execute_update(OrderWorkflow.evidence, EvidenceInput(actor=BUYER, items=("unboxing.mp4",)))
    await handle.execute_update(OrderWorkflow.evidence, EvidenceInput(actor=BUYER, items=("carrier-report.pdf",), final=True))
    await handle.execute_update(OrderWorkflow.evidence, EvidenceInput(actor=SELLER, items=("qc-photos.zip",), final=True))
    await handle.execute_update(OrderWorkflow.arbitrate, ArbitrateInput(actor=OPS, refund=30_000, note="shared fault"))
    await handle.result()
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)
    assert view.stage is Stage.REFUNDED and view.refunded == 30_000
    case = view.cases[0]
    assert [e.item for e in case.evidence] == ["photo-1.jpg", "unboxing.mp4", "carrier-report.pdf", "qc-photos.zip"]
    kinds = [e.kind for e in view.timeline]
    assert kinds.index("dispute_opened") < kinds.index("arbitrated") < kinds.index("refunded")
    assert view.decisions[-1]["kind"] in ("refund", "settlement")


async def test_missing_seller_evidence_decides_the_dispute_for_the_buyer(client, task_queue, engine):
    handle = await delivered_order(client, task_queue)
    await request_return(handle)
    await respond(handle, "reject")
    await handle.execute_update(OrderWorkflow.dispute, DisputeInput(actor=BUYER, claim=40_000))
    await handle.execute_update(OrderWorkflow.evidence, EvidenceInput(actor=BUYER, items=("video",), final=True))
    await handle.result()  # evidence deadline passes with nothing from the seller
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)
    assert view.stage is Stage.REFUNDED and view.refunded == 40_000
    assert any(e.kind == "dispute_default" for e in view.timeline)


async def test_missing_buyer_evidence_decides_the_dispute_for_the_seller(client, task_queue, engine, env):
    handle = await delivered_order(client, task_queue)
    await request_return(handle)
    await respond(handle, "reject")
    await handle.execute_update(OrderWorkflow.dispute, DisputeInput(actor=SELLER, statement="buyer misuse"))
    await handle.execute_update(OrderWorkflow.evidence, EvidenceInput(actor=SELLER, items=("log",), final=True))
    await env.sleep(timedelta(days=8))
    view = await status(handle)
    assert view.cases[0].outcome == "seller_won" and view.stage is Stage.DELIVERED
    await confirm(handle)
    await handle.result()
    await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)


async def test_after_sales_actions_reject_wrong_actor_and_wrong_stage(client, task_queue, engine):
    handle = await create_order(client, task_queue, price=PRICE)
    await rejected(request_return(handle), "returns open from delivered or completed")
    await accept(handle)
    await pay(handle, PRICE)
    await produce(handle)
    await ship(handle)
    await deliver(handle)
    await rejected(handle.execute_update(OrderWorkflow.request_return,
                                         ReturnRequestInput(actor=SELLER, reason="defect")), "only the buyer")
    await rejected(respond(handle, "approve"), "there is no open case")
    await request_return(handle)
    await rejected(request_return(handle), "already open")
    await rejected(handle.execute_update(OrderWorkflow.respond_return,
                                         ReturnResponseInput(actor=BUYER, action="approve")), "only the seller")
    await rejected(respond(handle, "offer_partial", amount=PRICE), "must be less than")
    await rejected(confirm(handle), "not allowed in stage return_requested")
    await rejected(ship_back(handle), "allowed when approved")
    view = await status(handle)
    assert view.stage is Stage.RETURN_REQUESTED


async def test_cases_per_order_are_capped_so_history_stays_bounded(client, task_queue, engine):
    from bespoke.rules import find_policy

    limit = find_policy("default").limits.max_cases_per_order
    handle = await delivered_order(client, task_queue)
    for _ in range(limit):
        await request_return(handle)
        await respond(handle, "reject")
        await handle.execute_update(OrderWorkflow.dispute, DisputeInput(actor=BUYER, claim=1_000))
        await handle.execute_update(OrderWorkflow.evidence, EvidenceInput(actor=BUYER, items=("a",), final=True))
        await handle.execute_update(OrderWorkflow.evidence, EvidenceInput(actor=SELLER, items=("b",), final=True))
        await handle.execute_update(OrderWorkflow.arbitrate, ArbitrateInput(actor=OPS, refund=0, note="no fault"))
    await rejected(request_return(handle), f"maximum of {limit} cases")
    history = await handle.fetch_history()
    # Every case is a fixed number of events, and the cap fixes the number of
    # cases, so an order's history has a hard ceiling well under Temporal's
    # 50k-event limit; this is why there is no continue-as-new.
    assert len(history.events) < 1_500, len(history.events)
    print(f"history events after {limit} full dispute cases: {len(history.events)}")
    await confirm(handle)
    await handle.result()
    await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)


async def test_refund_on_unrepaid_credit_cancels_the_debt_instead_of_paying_out(client, task_queue, engine):
    from tests.helpers_accounts import buyer_account, set_credit_limit

    set_credit_limit(engine, "alice", 500_000)
    handle = await create_order(client, task_queue, plan="credit", price=PRICE)
    await accept(handle)
    await produce(handle)
    await ship(handle)
    await deliver(handle)
    await request_return(handle)
    await respond(handle, "approve")
    await ship_back(handle)
    await receive(handle, disposition="scrap")
    await handle.result()
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)
    assert view.stage is Stage.REFUNDED and view.credit_outstanding == 0
    assert view.paid == 0 and view.refunded == 0  # the buyer never paid, so nothing is paid out
    assert not buyer_account(engine, "alice").frozen
    from sqlmodel import Session

    from bespoke.activities.credit import outstanding_credit

    with Session(engine) as session:
        assert outstanding_credit(session, "alice") == 0  # the credit line is free again


def deadlines_variant(**durations: timedelta):
    from bespoke.rules import find_policy

    policy = find_policy("default")
    return policy.model_copy(update={"deadlines": policy.deadlines.model_copy(update=durations)})


async def test_the_escalation_wait_has_its_own_policy_duration(client, task_queue, engine, env):
    """A rejected case closes when the policy's `escalation` deadline passes (it
    used to borrow return_response's 5 days)."""
    handle = await delivered_order(client, task_queue, policy=deadlines_variant(escalation=timedelta(days=1)))
    await request_return(handle)
    await respond(handle, "reject", reason="works as designed")
    view = await status(handle)
    escalation = next(d for d in view.deadlines if d.name == "escalation")
    rejected_at = view.updated_at
    assert escalation.due_at - rejected_at == timedelta(days=1)
    await env.sleep(timedelta(days=1, hours=1))
    view = await status(handle)
    assert view.stage is Stage.DELIVERED and view.cases[0].outcome == "rejected"
    closed = next(e for e in view.timeline if e.kind == "case_closed")
    assert timedelta(0) <= closed.at - escalation.due_at < timedelta(seconds=1)


async def test_the_repair_reship_wait_has_its_own_policy_duration(client, task_queue, engine, env):
    handle = await delivered_order(client, task_queue, policy=deadlines_variant(repair_reship=timedelta(days=2)))
    await request_return(handle, remedy="repair")
    await respond(handle, "approve")
    await ship_back(handle)
    await receive(handle, disposition="rework")
    view = await status(handle)
    assert next(d for d in view.deadlines if d.name == "repair").due_at - view.updated_at == timedelta(days=2)
    await env.sleep(timedelta(days=2, hours=1))  # the seller never reships: refund
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)
    assert view.stage is Stage.REFUNDED and view.refunded == PRICE


async def test_a_refund_after_completion_on_credit_does_not_count_the_repayment_as_overdue(client, task_queue, engine):
    """The buyer returns credit-bought goods within the after-sales window, before
    the settlement period ends: the refund cancels the debt, and the buyer's credit
    must not be frozen as if the repayment were overdue."""
    from tests.helpers_accounts import buyer_account, set_credit_limit

    set_credit_limit(engine, "alice", 500_000)
    handle = await create_order(client, task_queue, plan="credit", price=PRICE)
    await accept(handle)
    await produce(handle)
    await ship(handle)
    await deliver(handle)
    await confirm(handle)
    assert (await status(handle)).stage is Stage.COMPLETED
    await request_return(handle)
    await respond(handle, "approve")
    await ship_back(handle)
    await receive(handle, disposition="scrap")
    await handle.result()
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)
    assert view.stage is Stage.REFUNDED and view.credit_outstanding == 0
    assert not any(e.kind == "credit_overdue" for e in view.timeline)
    assert not buyer_account(engine, "alice").frozen


async def test_a_partial_refund_on_credit_leaves_the_rest_due_at_the_end_of_the_settlement_period(
        client, task_queue, engine, env):
    """A partial refund cancels part of the credit debt; the rest is still due when
    the settlement period ends, not overdue at once."""
    from tests.helpers_accounts import buyer_account, set_credit_limit

    set_credit_limit(engine, "alice", 500_000)
    handle = await create_order(client, task_queue, plan="credit", price=PRICE)
    await accept(handle)
    await produce(handle)
    await ship(handle)
    await deliver(handle)
    await confirm(handle)
    await request_return(handle)
    await respond(handle, "offer_partial", amount=30_000)
    await handle.execute_update(OrderWorkflow.answer_offer, OfferAnswerInput(actor=BUYER, accept=True))
    view = await status(handle)
    assert view.stage is Stage.REFUNDED and view.credit_outstanding == 70_000
    assert not any(e.kind == "credit_overdue" for e in view.timeline)
    assert not buyer_account(engine, "alice").frozen
    settlement_due = next(d.due_at for d in view.deadlines if d.name == "credit_settlement")
    await pay(handle, 70_000, "REPAY-1")
    await handle.result()
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)
    assert view.credit_outstanding == 0 and view.paid == 70_000
    assert not buyer_account(engine, "alice").frozen and settlement_due > view.updated_at


async def test_a_partial_refund_on_credit_before_completion_starts_the_settlement_period_for_the_rest(
        client, task_queue, engine, env):
    """Refunded in part during the inspection window: the rest of the credit is due
    when the settlement period (counted from the refund) ends; missing it freezes
    the buyer, and repaying afterwards releases the line and ends the order."""
    from tests.helpers_accounts import buyer_account, set_credit_limit

    set_credit_limit(engine, "alice", 500_000)
    handle = await create_order(client, task_queue, plan="credit", price=PRICE)
    await accept(handle)
    await produce(handle)
    await ship(handle)
    await deliver(handle)
    await request_return(handle)
    await respond(handle, "offer_partial", amount=40_000)
    await handle.execute_update(OrderWorkflow.answer_offer, OfferAnswerInput(actor=BUYER, accept=True))
    view = await status(handle)
    assert view.stage is Stage.REFUNDED and view.credit_outstanding == 60_000 and view.amount_due == 60_000
    assert view.next_step == "buyer repays the credit"
    assert [d.name for d in view.deadlines] == ["credit_settlement"]
    await env.sleep(timedelta(days=31))
    view = await status(handle)
    assert any(e.kind == "credit_overdue" for e in view.timeline) and buyer_account(engine, "alice").frozen
    await pay(handle, 60_000, "REPAY-LATE")
    result = await handle.result()
    assert result.stage is Stage.REFUNDED
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)
    assert view.credit_outstanding == 0 and view.paid == 60_000
    assert view.timeline[-1].kind == "credit_repaid"
