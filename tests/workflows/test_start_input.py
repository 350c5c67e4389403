"""The workflow checks its own start input: a client that reaches Temporal directly
(a real temporalio client, not the CLI) cannot start an order the CLI would refuse,
nor run an order on policy content other than the pinned one."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlmodel import Session
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from bespoke.domain.models import Actor, OrderInput, PaymentPlan
from bespoke.domain.names import ORDER_WORKFLOW, workflow_id_for
from bespoke.rules import find_policy, pin_policy
from bespoke.service import build_order_input, start_order
from bespoke.store.tables import OrderRow
from tests.helpers import POLICY_STORE, accept, confirm, deliver, pay, produce, ship, status

pytestmark = pytest.mark.usefixtures("worker")


def genuine(**changes) -> OrderInput:
    inp = build_order_input(
        order_id=f"RAW{uuid.uuid4().hex[:10]}", buyer="alice", seller="acme", price=100_000, currency="CNY",
        plan=PaymentPlan.parse("staged:30/70"), production_days=14, policy=find_policy("default"),
        created_by=Actor.parse("ops:olga"), store=POLICY_STORE["engine"],
    )
    return inp.model_copy(update=changes)


async def refused(client, task_queue, engine, inp: OrderInput, *fields: str) -> str:
    handle = await client.start_workflow(ORDER_WORKFLOW, inp, id=workflow_id_for(inp.order_id),
                                         task_queue=task_queue)
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidOrderInput" and cause.non_retryable
    for field in fields:
        assert f"{field}: " in cause.message, cause.message
    with Session(engine) as session:
        assert session.get(OrderRow, inp.order_id) is None  # the read model never shows it
    return cause.message


async def test_a_direct_client_cannot_start_an_order_the_cli_would_refuse(client, task_queue, engine):
    message = await refused(client, task_queue, engine, genuine(price=10**13), "price")
    assert "exceeds the policy's maximum order amount" in message
    await refused(client, task_queue, engine, genuine(plan=PaymentPlan(kind="staged", ratios=(1, 99))), "plan")
    message = await refused(client, task_queue, engine, genuine(plan=PaymentPlan(kind="staged", ratios=(90, 10)),
                                                                earnest_deposit=True), "plan", "earnest_deposit")
    assert "at most 20%" in message
    await refused(client, task_queue, engine, genuine(buyer="alice\x1b[2J"), "buyer")
    await refused(client, task_queue, engine, genuine(seller="acme\u202e"), "seller")
    await refused(client, task_queue, engine, genuine(buyer="alice", seller="alice"), "seller")
    await refused(client, task_queue, engine, genuine(virtual_account="VA0000000000000001"), "virtual_account")


async def test_policy_content_that_does_not_hash_to_its_pin_is_refused_and_poisons_nothing(client, task_queue, engine):
    policy = find_policy("default")
    doctored = policy.model_copy(update={
        "fees": policy.fees.model_copy(update={"platform_fee_bps": 0}),
        "deadlines": policy.deadlines.model_copy(update={"inspection_window": timedelta(seconds=5)}),
    })
    attack = genuine(policy=doctored.model_dump(mode="json"))  # the genuine pin, other content
    message = await refused(client, task_queue, engine, attack, "pin")
    assert pin_policy(policy).sha256 in message
    # The next genuine order on the same worker runs on the genuine policy.
    inp = genuine()
    handle = await start_order(client, inp, task_queue=task_queue)
    view = await status(handle)
    assert view.policy.sha256 == pin_policy(policy).sha256
    await accept(handle)
    await pay(handle, 30_000)
    await produce(handle)
    await pay(handle, 70_000)
    await ship(handle)
    await deliver(handle)
    window = next(d for d in (await status(handle)).deadlines if d.name == "inspection_window")
    assert window.due_at - (await status(handle)).updated_at >= policy.deadlines.inspection_window
    await confirm(handle)
    view = await status(handle)
    assert view.platform_fee == 5_000  # 5% of 100,000, not 0


async def test_a_policy_that_fails_policy_check_is_refused_by_the_worker_too(client, task_queue, engine):
    """Past the client's own check (a direct client pins what it likes): the
    worker runs `policy check` on the pinned policy before the order starts."""
    from tests.rules.test_policy_gate import overlapping_text

    from bespoke.rules import load_policy_text

    overlap = load_policy_text(overlapping_text(), "overlap.toml")
    inp = genuine(policy=overlap.model_dump(mode="json"),
                  pin=pin_policy(overlap).model_dump(mode="json"))
    message = await refused(client, task_queue, engine, inp, "policy")
    assert "fails `bespoke policy check`" in message and "R07b" in message
