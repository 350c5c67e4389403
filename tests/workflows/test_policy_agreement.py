"""Behaviour that agrees with its own policy and docs (issue 10, item 10): cancelling
while shipped, one after-sales window, amounts in rejections as the CLI prints
them, the real reason when a cancellation is in progress, and the retention and
COD-remittance default actions."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from bespoke.domain.models import (
    Account,
    CancelInput,
    OverrideDeadlineInput,
    RemitInput,
    ReturnRequestInput,
    Role,
    Stage,
)
from bespoke.rules import BUILTIN_POLICY_DIR, CancellationFacts, decide_cancellation, find_policy, load_policy_text
from bespoke.rules.describe import describe_policy
from bespoke.workflows.order import OrderWorkflow
from tests.helpers import (
    order_policy,
    BUYER,
    CARRIER,
    OPS,
    SELLER,
    accept,
    assert_view_matches_ledger,
    confirm,
    create_order,
    deliver,
    ledger_balances,
    pay,
    produce,
    rejected,
    ship,
    status,
)
from tests.helpers_accounts import set_credit_limit

pytestmark = pytest.mark.usefixtures("worker")
PRICE = 100_000
POLICY = find_policy("default")


def oid(handle) -> str:
    return handle.id.removeprefix("order-")


async def shipped_order(client, task_queue, **kw):
    handle = await create_order(client, task_queue, price=PRICE, **kw)
    await accept(handle)
    if kw.get("plan", "full_prepayment") == "full_prepayment":
        await pay(handle, PRICE)
    await produce(handle, costs=(30_000, 20_000, 10_000))
    await ship(handle)
    return handle


async def quote(handle, by: Role):
    facts = await handle.query(OrderWorkflow.quote_facts, args=[by, None], result_type=CancellationFacts)
    policy = await order_policy(handle)
    return decide_cancellation(policy, facts, decision_id="quote")


# ------------------------------------------------------------ cancelling while shipped


async def test_the_buyer_cancels_while_shipped_by_rule_r10_and_the_goods_come_back(client, task_queue, engine):
    handle = await shipped_order(client, task_queue)
    predicted = await quote(handle, Role.BUYER)
    assert [m.rule_id for m in predicted.explanation.matched] == ["R10"]
    result = await handle.execute_update(OrderWorkflow.cancel, CancelInput(actor=BUYER, reason="no longer needed"))
    assert result.stage is Stage.CANCELLED
    await handle.result()
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)
    # Costs 60,000 and no salvage recorded: the buyer pays them, the rest comes back.
    assert view.refunded == predicted.refund_to_buyer == 40_000
    assert view.released_to_seller == predicted.to_seller and view.platform_fee == predicted.platform_fee
    (decision,) = [d for d in view.decisions if d["kind"] == "cancellation"]
    assert [m["rule_id"] for m in decision["explanation"]["matched"]] == ["R10"]
    back = next(e for e in view.timeline if e.kind == "goods_returning")
    assert "return to the seller" in back.message and "paid by the buyer" in back.message
    assert "SF123456789" in back.message


async def test_the_seller_cancels_while_shipped_by_rule_r14_and_pays_the_return(client, task_queue, engine):
    handle = await shipped_order(client, task_queue)
    predicted = await quote(handle, Role.SELLER)
    await handle.execute_update(OrderWorkflow.cancel, CancelInput(actor=SELLER, reason="cannot deliver"))
    await handle.result()
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)
    assert [m["rule_id"] for m in view.decisions[-1]["explanation"]["matched"]] == ["R14"]
    assert view.refunded == PRICE == predicted.refund_to_buyer and view.released_to_seller == 0
    assert "paid by the seller" in next(e for e in view.timeline if e.kind == "goods_returning").message


async def test_a_credit_order_cancelled_while_shipped_gives_the_credit_back(client, task_queue, engine):
    set_credit_limit(engine, "alice", 500_000)
    handle = await shipped_order(client, task_queue, plan="credit")
    await handle.execute_update(OrderWorkflow.cancel, CancelInput(actor=SELLER))
    await handle.result()
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)
    balances = ledger_balances(engine, oid(handle))
    # Escrow was funded from the credit line at shipment; all of it went back there.
    assert balances.get(Account.CREDIT_LINE, 0) == 0 and balances.get(Account.BUYER, 0) == 0
    assert view.credit_outstanding == 0


async def test_cancelling_after_delivery_is_still_refused(client, task_queue, engine):
    handle = await shipped_order(client, task_queue)
    await deliver(handle)
    await rejected(handle.execute_update(OrderWorkflow.cancel, CancelInput(actor=BUYER)),
                   "not allowed in stage delivered")
    await confirm(handle)
    await assert_view_matches_ledger(handle, engine, oid(handle), closed=False)


# ------------------------------------------------------------ one after-sales window


async def test_the_aftersales_window_counts_from_delivery_in_status_policy_and_rules(client, task_queue, engine, env):
    window = POLICY.deadlines.aftersales_window
    assert f"within {window.days} days of delivery" in describe_policy(POLICY).model_dump_json()
    handle = await shipped_order(client, task_queue)
    await deliver(handle)
    delivered_at = next(e.at for e in (await status(handle)).timeline if e.kind == "delivered")
    await env.sleep(timedelta(days=4))
    await confirm(handle)
    view = await status(handle)
    (due,) = [d.due_at for d in view.deadlines if d.name == "aftersales_window"]
    assert due == delivered_at + window  # from delivery, not from completion 4 days later
    # The last hours of the window: status shows it open, and the rules let the return in.
    await env.sleep(due - (await status(handle)).updated_at - timedelta(hours=2))
    assert [d.name for d in (await status(handle)).deadlines] == ["aftersales_window"]
    await handle.execute_update(OrderWorkflow.request_return, ReturnRequestInput(actor=BUYER, reason="defect"))
    view = await status(handle)
    terms = next(d for d in view.decisions if d["kind"] == "return_terms")
    assert [m["rule_id"] for m in terms["explanation"]["matched"]][0] == "RT02"
    assert terms["explanation"]["facts"]["days_since_delivery"] == window.days
    assert view.stage is Stage.RETURN_REQUESTED
    await assert_view_matches_ledger(handle, engine, oid(handle), closed=False)


# ------------------------------------------------------------ rejections say it as the CLI does


async def test_rejections_quote_amounts_in_major_units(client, task_queue, engine):
    handle = await create_order(client, task_queue, plan="staged:30/70", price=200_000)
    await accept(handle)
    # Was: "amount 70000 is more than the deposit due (60000)" for 700.00 typed.
    await rejected(pay(handle, 70_000), "amount 700.00 CNY is more than the deposit due (600.00 CNY)")
    await pay(handle, 60_000)
    await assert_view_matches_ledger(handle, engine, oid(handle), closed=False)


FLAKY = "BESPOKE_EXAMPLE_PLUGIN_BROKEN"


def flaky_policy():
    text = (BUILTIN_POLICY_DIR / "default.toml").read_text()
    text = re.sub(r'(?m)^name = "default"$', 'name = "flaky"', text, count=1)
    text += '\n[[plugins.hooks]]\ntable = "cancellation"\nplugin = "example.broken_while_flagged"\n'
    return load_policy_text(text, "flaky")


async def test_while_a_cancellation_is_in_progress_actions_say_so_not_the_stage(
        client, task_queue, engine, env, monkeypatch):
    handle = await create_order(client, task_queue, plan="staged:30/70", price=PRICE, policy=flaky_policy())
    await accept(handle)
    await pay(handle, 10_000)
    monkeypatch.setenv(FLAKY, "1")
    await env.sleep(timedelta(days=3, minutes=5))  # the deposit deadline's cancellation keeps failing
    assert (await status(handle)).blocked
    for action in (pay(handle, 5_000),
                   handle.execute_update(OrderWorkflow.cancel, CancelInput(actor=BUYER)),
                   handle.execute_update(OrderWorkflow.override_deadline, OverrideDeadlineInput(
                       actor=OPS, deadline="deposit", now=True, reason="try"))):
        with pytest.raises(Exception) as info:
            await action
        message = str(info.value.cause)
        assert "being cancelled" in message and "allowed in" not in message, message
    monkeypatch.delenv(FLAKY)
    await env.sleep(timedelta(hours=2))
    await handle.result()
    await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)


# ------------------------------------------------------------ default actions


async def test_unpaid_retention_completes_the_order_and_is_recorded_as_the_buyers_debt(client, task_queue, engine, env):
    handle = await create_order(client, task_queue, plan="staged:30/60/10", price=PRICE)
    await accept(handle)
    await pay(handle, 30_000)
    await produce(handle)
    await pay(handle, 60_000)
    await ship(handle)
    await deliver(handle)
    await confirm(handle)
    view = await status(handle)
    assert view.stage is Stage.AWAITING_BALANCE and view.amount_due == 10_000
    (due,) = [d.due_at for d in view.deadlines if d.name == "retention"]
    await env.sleep(timedelta(days=7, minutes=1))
    view = await status(handle)
    overdue = next(e for e in view.timeline if e.kind == "retention_overdue")
    assert due <= overdue.at and "100.00 CNY" in overdue.message
    assert "debt" in overdue.message and view.stage is Stage.COMPLETED
    # Escrow (the 90,000 paid) was released at settlement; nothing of the retention was paid.
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=False)
    assert view.escrow == 0 and view.paid == 90_000 and view.released_to_seller + view.platform_fee == 90_000


async def test_cod_remittance_overdue_escalates_and_the_carrier_still_owes_the_cash(client, task_queue, engine, env):
    handle = await create_order(client, task_queue, plan="cod", price=PRICE)
    await accept(handle)
    await produce(handle)
    await ship(handle)
    await deliver(handle, collected=PRICE)
    await env.sleep(timedelta(days=3, minutes=1))
    view = await status(handle)
    assert view.stage is Stage.DELIVERED
    assert any(e.kind == "cod_remittance_overdue" and "escalated to ops" in e.message for e in view.timeline)
    assert "cod_remittance" not in [d.name for d in view.deadlines]
    balances = ledger_balances(engine, oid(handle))
    assert balances[Account.CARRIER_COD] == PRICE and balances.get(Account.ESCROW, 0) == 0
    # The carrier remits late; the order settles as usual.
    await handle.execute_update(OrderWorkflow.remit, RemitInput(actor=CARRIER, amount=PRICE, reference="LATE-1"))
    view = await status(handle)
    assert view.stage is Stage.COMPLETED
    await assert_view_matches_ledger(handle, engine, oid(handle), closed=False)
