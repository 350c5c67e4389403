"""Pinned policies live in the content-addressed policy store: an order's input
carries the policy's terms and its pin; the rules activities load the policy from
the store by the pin and hash it again before use. A real temporalio client that
starts an order with terms or stored content that do not match the pin gets an
order that fails at start, non-retryably, and later genuine orders on the same
worker are not affected (nothing is cached under a claimed hash)."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlmodel import Session, select
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from bespoke.domain.models import Actor, OrderInput, PaymentPlan, Stage
from bespoke.domain.names import ORDER_WORKFLOW, workflow_id_for
from bespoke.rules import find_policy, pin_policy, policy_sha256
from bespoke.rules.pins import policy_terms
from bespoke.service import build_order_input, start_order
from bespoke.store.policies import PinnedPolicyError, load_by_pin, save_policy
from bespoke.store.tables import OrderRow, PolicyRow
from tests.helpers import (
    accept,
    assert_view_matches_ledger,
    confirm,
    deliver,
    pay,
    policy_variant,
    produce,
    ship,
    status,
)

pytestmark = pytest.mark.usefixtures("worker")


def order_input(policy, store=None, **changes) -> OrderInput:
    inp = build_order_input(
        order_id=f"PS{uuid.uuid4().hex[:10]}", buyer="alice", seller="acme", price=100_000, currency="CNY",
        plan=PaymentPlan.parse("full_prepayment"), production_days=14, policy=policy,
        created_by=Actor.parse("ops:olga"), store=store,
    )
    return inp.model_copy(update=changes)


async def refused_at_start(client, task_queue, engine, inp: OrderInput) -> str:
    """Start `inp` as a raw client would; the order must fail at once, non-retryably,
    with nothing in the read model and no activity or timer run."""
    handle = await client.start_workflow(ORDER_WORKFLOW, inp, id=workflow_id_for(inp.order_id),
                                         task_queue=task_queue)
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    cause = info.value.cause
    assert isinstance(cause, ApplicationError), cause
    assert cause.type == "InvalidOrderInput" and cause.non_retryable, cause
    with Session(engine) as session:
        assert session.get(OrderRow, inp.order_id) is None
    events = (await handle.fetch_history()).events
    scheduled = [e.activity_task_scheduled_event_attributes.activity_type.name for e in events
                 if e.HasField("activity_task_scheduled_event_attributes")]
    assert set(scheduled) <= {"check_pinned_policy"}, scheduled  # (routed: an order that pins plugins)
    assert not [e for e in events if e.HasField("timer_started_event_attributes")]
    return cause.message


async def test_the_workflow_input_carries_terms_and_the_pin_not_the_policy(client, task_queue, engine):
    policy = find_policy("default")
    inp = order_input(policy, engine)
    assert inp.policy is None and "tables" not in inp.terms and "cases" not in inp.terms
    assert inp.terms["fees"]["platform_fee_bps"] == policy.fees.platform_fee_bps
    with Session(engine) as session:
        row = session.get(PolicyRow, inp.pin["sha256"])
    assert row is not None and (row.name, row.version) == (policy.name, policy.version)
    handle = await start_order(client, inp, task_queue=task_queue)
    started = (await handle.fetch_history()).events[0]
    size = started.workflow_execution_started_event_attributes.input.ByteSize()
    assert size < len(json.dumps(policy.model_dump(mode="json"))) / 4, size
    view = await status(handle)
    assert view.policy.sha256 == policy_sha256(policy)


async def test_terms_that_are_not_the_pinned_policys_fail_at_start_and_poison_nothing(client, task_queue, engine):
    policy = find_policy("default")
    genuine = order_input(policy, engine)
    doctored = json.loads(json.dumps(genuine.terms))
    doctored["fees"]["platform_fee_bps"] = 0
    doctored["deadlines"]["inspection_window"] = "PT5S"
    doctored["deadlines"]["seller_acceptance"] = "PT30S"
    message = await refused_at_start(client, task_queue, engine, genuine.model_copy(update={"terms": doctored}))
    assert "terms:" in message and policy_sha256(policy)[:12] in message, message

    # A genuine order on the same worker runs on the genuine terms.
    handle = await start_order(client, order_input(policy, engine), task_queue=task_queue)
    view = await status(handle)
    acceptance = next(d for d in view.deadlines if d.name == "seller_acceptance")
    assert acceptance.due_at - view.created_at == policy.deadlines.seller_acceptance
    await accept(handle)
    await pay(handle, 100_000)
    await produce(handle)
    await ship(handle)
    await deliver(handle)
    view = await status(handle)
    window = next(d for d in view.deadlines if d.name == "inspection_window")
    assert window.due_at - view.updated_at >= policy.deadlines.inspection_window
    await confirm(handle)
    view = await assert_view_matches_ledger(handle, engine, view.order_id, closed=False)
    assert view.stage is Stage.COMPLETED and view.platform_fee == 5_000  # 5%, not 0


async def test_a_pin_whose_policy_is_not_in_the_store_fails_at_start(client, task_queue, engine):
    unstored = policy_variant(max_payments=47)  # content no test stored
    message = await refused_at_start(client, task_queue, engine, order_input(unstored, store=None))
    assert "not in the policy store" in message and policy_sha256(unstored)[:12] in message, message


async def test_stored_content_that_does_not_hash_to_its_key_is_never_used(client, task_queue, engine):
    genuine = policy_variant(max_payments=46)
    doctored = genuine.model_copy(update={"fees": genuine.fees.model_copy(update={"platform_fee_bps": 0})})
    sha = policy_sha256(genuine)
    with Session(engine) as session:  # someone with database access swaps the content under the key
        session.add(PolicyRow(sha256=sha, name=genuine.name, version=genuine.version,
                              content=json.dumps(doctored.model_dump(mode="json")), stored_at=genuine_time()))
        session.commit()
    inp = order_input(genuine, store=None)
    message = await refused_at_start(client, task_queue, engine, inp)
    assert "hashes to" in message and sha[:12] in message, message
    with pytest.raises(PinnedPolicyError, match="not to the pin"):
        load_by_pin(engine, inp.pin)


def genuine_time():
    from datetime import UTC, datetime

    return datetime(2026, 1, 1, tzinfo=UTC)


async def test_an_order_fails_at_start_when_its_pin_claims_other_plugins(client, task_queue, engine):
    policy = find_policy("default")
    inp = order_input(policy, engine)
    pin = {**inp.pin, "plugins": [{"name": "example.materials_reuse", "distribution": "bespoke-rules-example",
                                   "version": "0.1.0"}]}
    message = await refused_at_start(client, task_queue, engine, inp.model_copy(update={"pin": pin}))
    assert "pinned plugins" in message and "the policy uses none" in message, message


def test_the_store_keeps_each_policy_once_under_the_hash_it_computes(engine):
    policy = find_policy("default")
    first = save_policy(engine, policy)
    again = save_policy(engine, policy)
    assert first == again == policy_sha256(policy)
    with Session(engine) as session:
        rows = session.exec(select(PolicyRow).where(PolicyRow.sha256 == first)).all()
    assert len(rows) == 1
    loaded = load_by_pin(engine, pin_policy(policy).model_dump(mode="json"))
    assert loaded.model_dump(mode="json") == policy.model_dump(mode="json")
    assert policy_terms(policy.model_dump(mode="json"))["deadlines"] == policy.model_dump(mode="json")["deadlines"]
    with pytest.raises(PinnedPolicyError, match="is not in the policy store"):
        load_by_pin(engine, {"name": "default", "version": policy.version, "sha256": "0" * 64})
