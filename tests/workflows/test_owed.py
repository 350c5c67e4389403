"""Money owed is visible and can be acted on (issue 10, item 11): a buyer on a
deferred plan who cancels owes the maker's losses as a recorded claim; status,
the read model and reconcile show what each party owes; status names who must
act next and by when; decisions name the right actor."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from bespoke.activities.reconcile import ReconcileBatch, reconcile_batch
from bespoke.domain.models import (
    ActorInput,
    CancelInput,
    DisputeInput,
    EvidenceInput,
    MilestoneInput,
    QcInput,
    ReturnRequestInput,
    ReturnResponseInput,
    Stage,
)
from bespoke.store.tables import DebtRow
from bespoke.workflows.order import OrderWorkflow
from tests.helpers import (
    BUYER,
    SELLER,
    accept,
    assert_view_matches_ledger,
    confirm,
    create_order,
    deliver,
    delivered_order,
    ledger_balances,
    pay,
    produce,
    ship,
    status,
)
from tests.helpers_accounts import set_credit_limit

pytestmark = pytest.mark.usefixtures("worker")
PRICE = 100_000


def oid(handle) -> str:
    return handle.id.removeprefix("order-")


def stored_debts(engine, order_id: str) -> list[tuple[str, str, int]]:
    with Session(engine) as session:
        rows = session.exec(select(DebtRow).where(DebtRow.order_id == order_id)).all()
    return [(r.debtor, r.creditor, r.amount) for r in rows]


async def materials(handle, cost: int) -> None:
    await handle.execute_update(OrderWorkflow.milestone, MilestoneInput(actor=SELLER, milestone="materials",
                                                                         cost=cost))


# ------------------------------------------------------------ the shortfall is a claim


async def test_a_credit_buyer_cancelling_mid_production_owes_the_materials_as_a_claim(client, task_queue, engine):
    # The report: 300.00 of materials, credit plan, buyer cancels: nothing owed, no claim.
    set_credit_limit(engine, "alice", 500_000)
    handle = await create_order(client, task_queue, plan="credit", price=PRICE)
    await accept(handle)
    await materials(handle, 30_000)
    await handle.execute_update(OrderWorkflow.cancel, CancelInput(actor=BUYER, reason="project cancelled"))
    await handle.result()
    view = await status(handle)
    # No money moved (nothing was advanced on credit before shipping): the claim is all there is.
    assert ledger_balances(engine, oid(handle)) == {} and view.escrow == 0 and view.credit_outstanding == 0
    (decision,) = [d for d in view.decisions if d["kind"] == "cancellation"]
    assert [m["rule_id"] for m in decision["explanation"]["matched"]] == ["R07"]
    assert decision["amounts"]["buyer_owes_seller"] == 30_000
    assert decision["explanation"]["facts"]["unpaid_commitment"] == PRICE
    (owed,) = view.owes
    assert (owed.debtor, owed.creditor, owed.amount) == ("buyer:alice", "seller:acme", 30_000)
    assert stored_debts(engine, oid(handle)) == [("buyer:alice", "seller:acme", 30_000)]
    # Reconcile's books pass counts it (the whole `bespoke ops reconcile`, which also
    # lists workflows, runs against a real server in tests/cli/test_accounts.py).
    report = reconcile_batch(engine=engine, batch=ReconcileBatch(settle_seconds=0))
    assert not report.discrepancies and report.debts == 1 and report.debt_orders == 1


async def test_a_cod_buyer_cancelling_after_costs_owes_them(client, task_queue, engine):
    handle = await create_order(client, task_queue, plan="cod", price=PRICE)
    await accept(handle)
    await materials(handle, 45_000)
    await handle.execute_update(OrderWorkflow.cancel, CancelInput(actor=BUYER))
    await handle.result()
    view = await status(handle)
    assert [(d.debtor, d.amount) for d in view.owes] == [("buyer:alice", 45_000)]
    assert ledger_balances(engine, oid(handle)) == {} and view.escrow == 0
    assert stored_debts(engine, oid(handle)) == [("buyer:alice", "seller:acme", 45_000)]


async def test_an_unpaid_balance_counts_toward_what_a_cancelling_buyer_owes(client, task_queue, engine):
    handle = await create_order(client, task_queue, plan="staged:30/70", price=PRICE)
    await accept(handle)
    await pay(handle, 30_000)
    await produce(handle, costs=(40_000, 10_000, 0))  # 50,000 of costs, 30,000 paid, 70,000 due now
    await handle.execute_update(OrderWorkflow.cancel, CancelInput(actor=BUYER))
    await handle.result()
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)
    assert view.refunded == 0 and view.released_to_seller + view.platform_fee == 30_000
    assert [(d.debtor, d.creditor, d.amount) for d in view.owes] == [("buyer:alice", "seller:acme", 20_000)]


async def test_a_fully_paid_cancellation_records_no_claim(client, task_queue, engine):
    handle = await create_order(client, task_queue, price=PRICE)
    await accept(handle)
    await pay(handle, PRICE)
    await materials(handle, 30_000)
    await handle.execute_update(OrderWorkflow.cancel, CancelInput(actor=BUYER))
    await handle.result()
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)
    assert view.owes == [] and stored_debts(engine, oid(handle)) == []


async def test_unpaid_retention_and_unremitted_cash_show_as_owed(client, task_queue, engine, env):
    retention = await create_order(client, task_queue, plan="staged:30/60/10", price=PRICE)
    await accept(retention)
    await pay(retention, 30_000)
    await produce(retention)
    await pay(retention, 60_000)
    await ship(retention)
    await deliver(retention)
    await confirm(retention)
    cod = await create_order(client, task_queue, plan="cod", price=PRICE)
    await accept(cod)
    await produce(cod)
    await ship(cod)
    await deliver(cod, collected=PRICE)
    view = await status(cod)
    (owed,) = view.owes
    assert (owed.debtor, owed.creditor, owed.amount) == ("carrier:sf-express", "platform", PRICE)
    assert owed.due_at == next(d.due_at for d in view.deadlines if d.name == "cod_remittance")
    await env.sleep(timedelta(days=8))
    view = await status(retention)
    assert [(d.debtor, d.creditor, d.amount) for d in view.owes] == [("buyer:alice", "seller:acme", 10_000)]
    assert "overdue" in (await status(cod)).owes[0].why
    await assert_view_matches_ledger(retention, engine, oid(retention), closed=False)
    await assert_view_matches_ledger(cod, engine, oid(cod), closed=False)


# ------------------------------------------------------------ who acts next, by when


async def test_next_step_names_who_must_act_and_by_when(client, task_queue, engine, env):
    handle = await delivered_order(client, task_queue)
    view = await status(handle)
    assert view.next_step == "buyer inspects and confirms receipt"
    assert view.next_step_due == next(d.due_at for d in view.deadlines if d.name == "inspection_window")
    await handle.execute_update(OrderWorkflow.request_return, ReturnRequestInput(actor=BUYER, reason="defect"))
    view = await status(handle)  # was: next_step "none"
    assert view.next_step == "seller responds to the return (case 1)"
    assert view.next_step_due == next(d.due_at for d in view.deadlines if d.name == "return_response")
    await handle.execute_update(OrderWorkflow.respond_return, ReturnResponseInput(actor=SELLER, action="reject"))
    await handle.execute_update(OrderWorkflow.dispute, DisputeInput(actor=BUYER, claim=50_000))
    view = await status(handle)
    assert view.next_step == "buyer and seller submit their evidence (case 1)" and view.next_step_due
    await handle.execute_update(OrderWorkflow.evidence, EvidenceInput(actor=BUYER, items=("a.jpg",), final=True))
    await handle.execute_update(OrderWorkflow.evidence, EvidenceInput(actor=SELLER, items=("b.jpg",), final=True))
    await env.sleep(timedelta(days=1))
    view = await status(handle)
    assert view.next_step == "platform operations decide the dispute (case 1)"
    # No deadline runs on ops: nothing pretends to be due (it used to show a due_at in the past).
    assert view.next_step_due is None and "arbitration" not in [d.name for d in view.deadlines]
    await assert_view_matches_ledger(handle, engine, oid(handle), closed=False)


# ------------------------------------------------------------ the right actor, the right words


async def test_a_seller_cancelling_after_the_rework_limit_is_the_seller_not_the_platform(client, task_queue, engine):
    handle = await create_order(client, task_queue, price=PRICE)
    await accept(handle)
    await pay(handle, PRICE)
    await produce(handle, qc=False)
    for _ in range(3):  # the policy allows 2 reworks
        await handle.execute_update(OrderWorkflow.quality_check, QcInput(actor=SELLER, passed=False))
        if (await status(handle)).stage is Stage.IN_PRODUCTION:
            await handle.execute_update(OrderWorkflow.finish_production, ActorInput(actor=SELLER))
    await handle.execute_update(OrderWorkflow.cancel, CancelInput(actor=SELLER))
    await handle.result()
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)
    (decision,) = [d for d in view.decisions if d["kind"] == "cancellation"]
    assert [m["rule_id"] for m in decision["explanation"]["matched"]] == ["R15"]
    assert decision["summary"].startswith("The seller cancelled at quality check because the goods failed")
    assert "The platform" not in decision["summary"]


async def test_a_full_prepayment_is_paid_toward_the_price(client, task_queue, engine):
    handle = await create_order(client, task_queue, price=PRICE)
    await accept(handle)
    assert (await status(handle)).next_step == "buyer pays the price"
    result = await pay(handle, 40_000, "P-1")
    assert "toward the price (P-1)" in result.message and "deposit" not in result.message
    staged = await create_order(client, task_queue, plan="staged:30/70", price=PRICE)
    await accept(staged)
    assert "toward the deposit" in (await pay(staged, 30_000)).message
    await assert_view_matches_ledger(handle, engine, oid(handle), closed=False)


async def test_a_credit_refusal_is_the_platforms_credit_rule_not_a_timer(client, task_queue, engine):
    set_credit_limit(engine, "dave", 50_000)
    handle = await create_order(client, task_queue, plan="credit", price=60_000, buyer="dave")
    await accept(handle)
    assert (await handle.result()).stage is Stage.CANCELLED
    cancelled = next(e for e in (await status(handle)).timeline if e.kind == "cancelled")
    assert cancelled.actor == "system:rules" and "credit limit exceeded" in cancelled.message


async def test_credit_that_paid_the_sellers_costs_of_a_shipped_cancellation_is_owed(client, task_queue, engine):
    set_credit_limit(engine, "alice", 500_000)
    handle = await create_order(client, task_queue, plan="credit", price=PRICE)
    await accept(handle)
    await produce(handle, costs=(30_000, 20_000, 10_000))
    await ship(handle)  # the credit line funds escrow
    await handle.execute_update(OrderWorkflow.cancel, CancelInput(actor=BUYER))
    await handle.result()
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)
    assert view.released_to_seller + view.platform_fee == 60_000  # R10: the costs, from credit-funded escrow
    assert ledger_balances(engine, oid(handle))["credit_line"] == -60_000
    assert [(d.debtor, d.creditor, d.amount) for d in view.owes] == [("buyer:alice", "platform", 60_000)]
