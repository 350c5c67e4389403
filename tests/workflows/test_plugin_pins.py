"""Plugin pins are enforced: an order that pins plugins has its decisions made only
by a worker with exactly those plugin versions installed (the decisions go to the
rules task queue of the order's plugin set, which only such a worker polls). With
none running, the decision waits, and `status` shows the order blocked and why;
it is never made with another version. Real workers on the time-skipping server
with the example plugin distribution (tests/plugins/bespoke-rules-example);
a worker "without" it is one told to poll no plugin set (`plugins=[]`)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlmodel import Session
from temporalio.client import Client, WorkflowUpdateFailedError

from bespoke.domain.models import Actor, ActorInput, CancelInput, PaymentPlan, Stage
from bespoke.domain.names import ORDER_WORKFLOW, workflow_id_for
from bespoke.rules import BUILTIN_POLICY_DIR, load_policy_text, pin_policy
from bespoke.rules.plugins import rules_task_queue
from bespoke.service import build_order_input, start_order
from bespoke.store.tables import OrderRow
from bespoke.worker import build_worker
from bespoke.workflows.order import OrderWorkflow
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from bespoke.runtime.client import ensure_search_attributes
from tests.conftest import terminate_started
from tests.conftest import test_server_binary as server_binary
from tests.helpers import BUYER, assert_view_matches_ledger, pay, produce, status

EXAMPLE = ("bespoke-rules-example", "0.1.0")


def plugin_policy():
    """The default policy with one of the example distribution's plugins hooked on
    (it changes no outcome unless flagged broken)."""
    text = (BUILTIN_POLICY_DIR / "default.toml").read_text()
    text = re.sub(r'(?m)^name = "default"$', 'name = "routed"', text, count=1)
    text += '\n[[plugins.hooks]]\ntable = "cancellation"\nplugin = "example.broken_while_flagged"\n'
    return load_policy_text(text, "routed")


def order_input(engine, **changes):
    inp = build_order_input(
        order_id=f"PP{uuid.uuid4().hex[:10]}", buyer="alice", seller="acme", price=100_000, currency="CNY",
        plan=PaymentPlan.parse("full_prepayment"), production_days=14, policy=plugin_policy(),
        created_by=Actor.parse("ops:olga"), store=engine,
    )
    return inp.model_copy(update=changes)


async def until(handle, check, timeout: float = 60.0):
    """Poll the order's status until `check(view)` holds (real time: a routed
    decision waits ROUTED_WAIT_FIRST for a worker before it shows as blocked)."""
    deadline = time.monotonic() + timeout
    while True:
        view = await status(handle)
        if check(view):
            return view
        assert time.monotonic() < deadline, view
        await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
async def env():
    """A test server of this module's own: an order left waiting for a worker that
    never comes keeps a scheduled activity, and the time-skipping server then stops
    skipping time for every later test on it. These tests wait in real time."""
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=server_binary(), data_converter=pydantic_data_converter)
    await ensure_search_attributes(environment.client)
    async with environment:
        yield environment


@pytest.fixture
async def other(env):
    """A second connection, as a second worker process has (one process may run
    only one worker per task queue and connection)."""
    config = env.client.config()
    return await Client.connect(env.client.service_client.config.target_host,
                                namespace=config["namespace"], data_converter=config["data_converter"])


@pytest.fixture
def executor():
    with ThreadPoolExecutor(max_workers=8) as pool:
        yield pool


def rules_queues(handle_history) -> set[str]:
    return {e.activity_task_scheduled_event_attributes.task_queue.name for e in handle_history.events
            if e.HasField("activity_task_scheduled_event_attributes")
            and e.activity_task_scheduled_event_attributes.activity_type.name.startswith(("decide_", "check_"))}


async def test_decisions_wait_for_a_worker_with_the_pinned_plugins_and_show_as_blocked(
        client, other, task_queue, engine, executor):
    assert pin_policy(plugin_policy()).plugins[0].version == EXAMPLE[1]  # what the test env has installed
    inp = order_input(engine)
    queue = rules_task_queue(task_queue, [EXAMPLE])
    try:
        async with build_worker(client, task_queue=task_queue, engine=engine, executor=executor, plugins=[]):
            # Only a worker without the plugin: the start check waits for one that has it.
            handle = await start_order(client, inp, task_queue=task_queue)
            view = await until(handle, lambda v: v.blocked is not None)
            assert "bespoke-rules-example 0.1.0" in view.blocked and queue in view.blocked
            assert view.stage is Stage.AWAITING_ACCEPTANCE and view.timeline == []
            with Session(engine) as session:
                assert session.get(OrderRow, inp.order_id) is None  # not created before it is checked
            with pytest.raises(WorkflowUpdateFailedError) as info:
                await handle.execute_update(OrderWorkflow.accept, ActorInput(actor=Actor.parse("seller:acme")))
            assert "has not started yet" in str(info.value.cause)

            async with build_worker(other, task_queue=task_queue, engine=engine, executor=executor):
                # A worker with it arrives: checked, created, and on its way.
                view = await until(handle, lambda v: v.blocked is None and v.timeline)
                await handle.execute_update(OrderWorkflow.accept, ActorInput(actor=Actor.parse("seller:acme")))
                await pay(handle, 100_000)
                await produce(handle)
            # It leaves again; the buyer cancels: the decision cannot be had now.
            with pytest.raises(WorkflowUpdateFailedError) as info:
                await handle.execute_update(OrderWorkflow.cancel, CancelInput(actor=BUYER, reason="changed plans"))
            assert "waits for a worker with bespoke-rules-example 0.1.0" in str(info.value.cause)
            assert "nothing was changed" in str(info.value.cause)
            view = await status(handle)
            assert view.stage is Stage.QUALITY_CHECK and view.escrow == 100_000 and view.decisions == []

            async with build_worker(other, task_queue=task_queue, engine=engine, executor=executor):
                result = await handle.execute_update(OrderWorkflow.cancel, CancelInput(actor=BUYER))
                assert result.stage is Stage.CANCELLED
                await handle.result()
            view = await assert_view_matches_ledger(handle, engine, inp.order_id, closed=True)
            (decision,) = view.decisions
            assert decision["explanation"]["pin"]["plugins"] == inp.pin["plugins"]
            assert rules_queues(await handle.fetch_history()) == {queue}  # every decision made there
    finally:
        await terminate_started()


async def test_a_pinned_plugin_version_no_worker_has_is_never_decided_with_another(
        client, other, task_queue, engine, executor):
    inp = order_input(engine)
    pin = {**inp.pin, "plugins": [{**inp.pin["plugins"][0], "version": "9.9.9"}]}
    try:
        # Workers with the installed 0.1.0, and one that (wrongly) polls 9.9.9's queue
        # with 0.1.0 installed: it refuses to check or decide with its own version.
        async with build_worker(client, task_queue=task_queue, engine=engine, executor=executor), \
                build_worker(other, task_queue=task_queue, engine=engine, executor=executor,
                             plugins=[(EXAMPLE[0], "9.9.9")]):
            handle = await client.start_workflow(ORDER_WORKFLOW, inp.model_copy(update={"pin": pin}),
                                                 id=workflow_id_for(inp.order_id), task_queue=task_queue)
            view = await until(handle, lambda v: v.blocked is not None)
            assert "pinned plugins example.broken_while_flagged=bespoke-rules-example 9.9.9" in view.blocked
            assert "this worker has example.broken_while_flagged=bespoke-rules-example 0.1.0" in view.blocked
            assert view.timeline == [] and view.decisions == []

        # Nobody polls 9.9.9's queue: the order waits, blocked, and says for what.
        async with build_worker(client, task_queue=task_queue, engine=engine, executor=executor):
            other = order_input(engine)
            pinned = {**other.pin, "plugins": [{**other.pin["plugins"][0], "version": "9.9.9"}]}
            handle = await client.start_workflow(ORDER_WORKFLOW, other.model_copy(update={"pin": pinned}),
                                                 id=workflow_id_for(other.order_id), task_queue=task_queue)
            view = await until(handle, lambda v: v.blocked is not None)
            assert "waits for a worker with bespoke-rules-example 9.9.9 installed" in view.blocked
            assert rules_task_queue(task_queue, [(EXAMPLE[0], "9.9.9")]) in view.blocked
    finally:
        await terminate_started()
