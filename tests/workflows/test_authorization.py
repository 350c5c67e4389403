"""Who may act, checked by the workflow itself: operators acting for a party (as
the policy allows, recorded as such), integrations for their carrier, only the
carrier the goods shipped with, and no buyer money committed on an order the buyer
never agreed to."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from bespoke.domain.models import Actor, ActorInput, DeliverInput, ReasonInput, Stage
from bespoke.rules import find_policy
from bespoke.store.tables import CreditReservation
from bespoke.workflows.order import OrderWorkflow
from tests.helpers import (
    BUYER,
    CARRIER,
    OPS,
    SELLER,
    accept,
    assert_view_matches_ledger,
    create_order,
    pay,
    produce,
    rejected,
    ship,
    status,
)
from tests.helpers_accounts import set_credit_limit

pytestmark = pytest.mark.usefixtures("worker")


def acting(actor: Actor, party: Actor) -> Actor:
    return actor.model_copy(update={"for_party": party})


def oid(handle) -> str:
    return handle.id.removeprefix("order-")


async def shipped_order(client, task_queue, **kw):
    handle = await create_order(client, task_queue, price=100_000, **kw)
    await accept(handle)
    await pay(handle, 100_000)
    await produce(handle)
    await ship(handle)
    return handle


async def test_ops_acting_for_the_buyer_is_recorded_as_such(client, task_queue, engine):
    handle = await shipped_order(client, task_queue)
    await handle.execute_update(OrderWorkflow.deliver, DeliverInput(actor=CARRIER))
    result = await handle.execute_update(OrderWorkflow.confirm, ActorInput(actor=acting(OPS, BUYER)))
    assert result.stage is Stage.COMPLETED
    view = await status(handle)
    assert [e.actor for e in view.timeline if e.kind == "confirmed"] == ["ops:olga for buyer:alice"]
    await assert_view_matches_ledger(handle, engine, oid(handle), closed=False)


async def test_the_policy_says_which_actions_ops_may_take_for_whom(client, task_queue):
    policy = find_policy("default")
    strict = policy.model_copy(update={"on_behalf": policy.on_behalf.model_copy(update={"buyer": ["pay"]})})
    handle = await shipped_order(client, task_queue, policy=strict)
    await handle.execute_update(OrderWorkflow.deliver, DeliverInput(actor=CARRIER))
    await rejected(handle.execute_update(OrderWorkflow.confirm, ActorInput(actor=acting(OPS, BUYER))),
                   "does not let platform operations confirm for the buyer")
    assert (await status(handle)).stage is Stage.DELIVERED


async def test_only_ops_or_an_integration_acts_for_someone_else(client, task_queue):
    handle = await shipped_order(client, task_queue)
    await rejected(handle.execute_update(OrderWorkflow.deliver, DeliverInput(actor=acting(SELLER, CARRIER))),
                   "only platform operations or an integration may act for another party")
    feed = Actor.parse("integration:sf-feed")
    await rejected(handle.execute_update(OrderWorkflow.refuse, ReasonInput(actor=acting(feed, BUYER))),
                   "an integration acts only for a carrier or a payment system")
    result = await handle.execute_update(OrderWorkflow.deliver, DeliverInput(actor=acting(feed, CARRIER)))
    assert result.stage is Stage.DELIVERED
    view = await status(handle)
    assert [e.actor for e in view.timeline if e.kind == "delivered"] == ["integration:sf-feed for carrier:sf-express"]


async def test_only_the_carrier_the_goods_shipped_with_may_deliver(client, task_queue):
    handle = await shipped_order(client, task_queue)
    impostor = Actor.parse("carrier:totally-not-mallory")
    await rejected(handle.execute_update(OrderWorkflow.deliver, DeliverInput(actor=impostor)),
                   "is not the carrier this order was shipped with")
    await rejected(handle.execute_update(OrderWorkflow.deliver, DeliverInput(actor=Actor.parse("buyer:eve"))),
                   "only the carrier may do this")
    view = await status(handle)
    assert view.stage is Stage.SHIPPED and "sf-express" not in str(view.timeline[-1].message).replace(
        "shipped by sf-express", "")


async def test_a_seller_proposed_credit_order_commits_nothing_until_the_buyer_agrees(client, task_queue, engine, env):
    set_credit_limit(engine, "dave", 1_000_000)
    proposed = await create_order(client, task_queue, plan="credit", price=47_500, buyer="dave",
                                  created_by=SELLER)
    result = await accept(proposed)
    assert result.stage is Stage.AWAITING_ACCEPTANCE
    view = await status(proposed)
    assert not view.buyer_consented and view.next_step == "buyer agrees to the order"
    await rejected(ship(proposed), "not allowed in stage awaiting_acceptance")
    with Session(engine) as session:
        assert session.exec(select(CreditReservation).where(CreditReservation.buyer == "dave")).all() == []
    await env.sleep(timedelta(days=2, minutes=1))  # nobody agrees: the order lapses, at no cost
    view = await status(proposed)
    assert view.stage is Stage.CANCELLED and "buyer did not agree to the order in time" in view.timeline[-2].message
    assert view.paid == 0 and view.escrow == 0

    # The same proposal, agreed to by dave: now his credit line is reserved.
    agreed = await create_order(client, task_queue, plan="credit", price=47_500, buyer="dave", created_by=SELLER)
    await accept(agreed)
    dave = Actor.parse("buyer:dave")
    await rejected(agreed.execute_update(OrderWorkflow.consent, ActorInput(actor=BUYER)), "not this order's buyer")
    result = await agreed.execute_update(OrderWorkflow.consent, ActorInput(actor=dave))
    assert result.stage is Stage.IN_PRODUCTION
    with Session(engine) as session:
        reserved = session.exec(select(CreditReservation).where(CreditReservation.buyer == "dave")).all()
    assert [r.amount for r in reserved] == [47_500]


async def test_a_buyer_refusing_cod_at_the_door_is_the_buyers_cancellation(client, task_queue, engine):
    handle = await create_order(client, task_queue, plan="cash_on_delivery", price=100_000)
    await accept(handle)
    await produce(handle)
    await ship(handle)
    result = await handle.execute_update(OrderWorkflow.refuse, ReasonInput(actor=BUYER, reason="wrong colour"))
    assert result.stage is Stage.CANCELLED
    view = await status(handle)
    cancelled = next(e for e in view.timeline if e.kind == "cancelled")
    assert cancelled.actor == "buyer:alice"
    decision = view.decisions[-1]["explanation"]
    assert decision["facts"]["cancelled_by"] == "buyer" and decision["matched"][0]["rule_id"] == "R17"
