"""Actions that must be rejected by the update validators: nothing is recorded."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from temporalio.client import WorkflowUpdateFailedError

from bespoke.domain.models import Actor, ActorInput, PayInput, ShipInput, Stage
from bespoke.workflows.order import OrderWorkflow
from tests.helpers import (
    started_status,
    BUYER,
    SELLER,
    accept,
    assert_ledger,
    create_order,
    ledger_balances,
    pay,
    status,
)

pytestmark = pytest.mark.usefixtures("worker")


async def _rejected(coro, match: str) -> None:
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await coro
    assert match in str(info.value.cause)


async def test_wrong_role_wrong_party_and_wrong_stage_are_rejected_without_a_trace(client, task_queue):
    handle = await create_order(client, task_queue)
    before = await started_status(handle)
    await _rejected(handle.execute_update(OrderWorkflow.accept, ActorInput(actor=BUYER)), "only the seller")
    await _rejected(handle.execute_update(OrderWorkflow.accept, ActorInput(actor=Actor.parse("seller:mallory"))),
                    "not this order's seller")
    await _rejected(pay(handle, 100_000), "nothing is due in stage awaiting_acceptance")
    await _rejected(handle.execute_update(OrderWorkflow.ship, ShipInput(actor=SELLER, carrier="x", tracking="y")),
                    "not allowed in stage awaiting_acceptance")
    after = await status(handle)
    assert after.timeline == before.timeline and after.stage is Stage.AWAITING_ACCEPTANCE
    # Nothing reached history either: only the start events and our queries' absence of changes.
    history = await handle.fetch_history()
    assert not any(e.HasField("workflow_execution_update_accepted_event_attributes") for e in history.events)


async def test_bad_amounts_and_currencies_are_rejected(client, task_queue, engine):
    handle = await create_order(client, task_queue, price=100_000)
    await accept(handle)
    with pytest.raises(ValidationError, match="amount must be positive"):
        PayInput(actor=BUYER, amount=0, currency="CNY", reference="r")
    with pytest.raises(ValidationError, match="larger than the maximum"):
        PayInput(actor=BUYER, amount=10**15, currency="CNY", reference="r")
    with pytest.raises(ValidationError, match="unknown currency"):
        PayInput(actor=BUYER, amount=5, currency="XYZ", reference="r")
    await _rejected(pay(handle, 100_001), "amount 1,000.01 CNY is more than the price due (1,000.00 CNY)")
    await _rejected(pay(handle, 100_000, currency="USD"), "does not match the order's CNY")
    await _rejected(pay(handle, 100_000, actor=Actor.parse("buyer:eve")), "not this order's buyer")
    assert ledger_balances(engine, handle.id.removeprefix("order-")) == {}


async def test_redelivered_payment_is_rejected_and_posted_once(client, task_queue, engine):
    handle = await create_order(client, task_queue, plan="staged:30/70", price=100_000)
    await accept(handle)
    await pay(handle, 10_000, "PAY-1")
    await _rejected(pay(handle, 10_000, "PAY-1"), "duplicate payment reference")
    view = await status(handle)
    assert view.paid == 10_000 and view.amount_due == 20_000
    balances = assert_ledger(engine, handle.id.removeprefix("order-"), closed=False)
    assert balances["escrow"] == 10_000


async def test_a_party_named_in_another_unicode_spelling_is_the_same_party(client, task_queue, engine):
    import unicodedata

    nfc = unicodedata.normalize("NFC", "Åsa Núñez")
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfd != nfc
    handle = await create_order(client, task_queue, buyer=nfc, price=10_000)
    await accept(handle)
    # An API caller may build the Actor directly, without the CLI's normalisation.
    await _rejected(pay(handle, 10_000, actor=Actor(role="buyer", name="Asa Nunez")), "not this order's buyer")
    result = await pay(handle, 10_000, actor=Actor(role="buyer", name=nfd))
    assert result.stage is Stage.IN_PRODUCTION
    assert_ledger(engine, handle.id.removeprefix("order-"), closed=False)
