"""Money moves only when money moved: a payment ops records by hand on a
collection-account order must give a reason and cannot exceed what is due, so it
can never book a refund of money that never arrived. Only the bank integration's
real transfers may exceed what is due (the excess is refunded)."""

from __future__ import annotations

import pytest

from bespoke.domain.models import Actor, PayInput, Stage
from bespoke.workflows.order import OrderWorkflow
from tests.helpers import started_status, BANK, OPS, accept, assert_ledger, create_order, ledger_balances, rejected, status

pytestmark = pytest.mark.usefixtures("worker")


def ops_pay(amount: int, reference: str, reason: str = "", actor: Actor = OPS) -> PayInput:
    return PayInput(actor=actor, amount=amount, currency="CNY", reference=reference, method="bank_transfer",
                    reason=reason)


async def test_ops_bank_transfer_beyond_what_is_due_is_refused_and_books_nothing(client, task_queue, engine):
    # The report: `order pay --as ops:x --method bank_transfer --amount 100000.00` on a
    # 500.00 order booked a 99,600.00 "over-payment refund" of money that never arrived.
    handle = await create_order(client, task_queue, plan="collection_account", price=50_000)
    order_id = handle.id.removeprefix("order-")
    await accept(handle)
    before = await started_status(handle)

    await rejected(handle.execute_update(OrderWorkflow.pay, ops_pay(10_000_000, "OPS-1", "seen on statement")),
                   "amount 100,000.00 CNY is more than the price due (500.00 CNY)")
    await rejected(handle.execute_update(OrderWorkflow.pay, ops_pay(50_000, "OPS-2")), "needs a reason")
    await rejected(handle.execute_update(OrderWorkflow.pay, ops_pay(50_000, "OPS-3", "  ")), "needs a reason")

    after = await status(handle)
    assert after.payments == [] and after.timeline == before.timeline and after.amount_due == 50_000
    assert ledger_balances(engine, order_id) == {}


async def test_ops_bank_transfer_with_a_reason_up_to_what_is_due_is_recorded_with_its_reason(
    client, task_queue, engine
):
    handle = await create_order(client, task_queue, plan="collection_account", price=50_000)
    order_id = handle.id.removeprefix("order-")
    await accept(handle)
    result = await handle.execute_update(
        OrderWorkflow.pay, ops_pay(20_000, "OPS-4", "transfer BANK-9 arrived on the old account"))
    assert "recorded by hand: transfer BANK-9 arrived on the old account" in result.message
    view = await status(handle)
    assert view.amount_due == 30_000 and view.refunded == 0
    (payment,) = view.payments
    assert (payment.actor, payment.reason, payment.amount) == ("ops:olga", "transfer BANK-9 arrived on the old account",
                                                               20_000)
    assert "recorded by hand" in view.timeline[-1].message
    # The bank's own transfer may still over-pay; the excess goes back.
    await handle.execute_update(OrderWorkflow.pay, PayInput(actor=BANK, amount=40_000, currency="CNY",
                                                           reference="BANK-10", method="bank_transfer"))
    view = await status(handle)
    assert view.stage is Stage.IN_PRODUCTION and view.refunded == 10_000 and view.escrow == 50_000
    assert_ledger(engine, order_id, closed=False)
