"""No order can be wedged by a failing decision: a rules decision that fails
(here a real plugin with a bug switched on) changes nothing; asked for by a party
it is refused, due by a deadline it is retried until it goes through, and
`status` shows the order blocked meanwhile."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError

from bespoke.domain.models import CancelInput, MilestoneInput, Stage
from bespoke.rules import BUILTIN_POLICY_DIR, load_policy_text
from bespoke.workflows.order import OrderWorkflow
from tests.helpers import started_status, BUYER, SELLER, accept, assert_view_matches_ledger, create_order, pay, status

pytestmark = pytest.mark.usefixtures("worker")
BROKEN = "BESPOKE_EXAMPLE_PLUGIN_BROKEN"


def flaky_policy():
    """The default policy with the example plugin that fails while flagged hooked
    onto its cancellation table."""
    text = (BUILTIN_POLICY_DIR / "default.toml").read_text()
    text = re.sub(r'(?m)^name = "default"$', 'name = "flaky"', text, count=1)
    text += '\n[[plugins.hooks]]\ntable = "cancellation"\nplugin = "example.broken_while_flagged"\n'
    return load_policy_text(text, "flaky")


def oid(handle) -> str:
    return handle.id.removeprefix("order-")


async def test_a_cancel_whose_decision_fails_is_refused_and_leaves_the_order_as_it_was(
        client, task_queue, engine, monkeypatch):
    handle = await create_order(client, task_queue, price=100_000, policy=flaky_policy())
    await accept(handle)
    await pay(handle, 100_000)
    before = await started_status(handle)
    monkeypatch.setenv(BROKEN, "1")
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await handle.execute_update(OrderWorkflow.cancel, CancelInput(actor=BUYER, reason="changed plans"))
    assert "the cancellation decision failed" in str(info.value.cause)
    assert "nothing was changed" in str(info.value.cause)
    after = await status(handle)
    assert after.stage is Stage.IN_PRODUCTION and after.blocked is None and after.escrow == 100_000
    assert [e.kind for e in after.timeline] == [e.kind for e in before.timeline]
    # Every other action still works: the order is not wedged.
    await handle.execute_update(OrderWorkflow.milestone, MilestoneInput(actor=SELLER, milestone="materials",
                                                                         cost=10_000))
    monkeypatch.delenv(BROKEN)
    result = await handle.execute_update(OrderWorkflow.cancel, CancelInput(actor=BUYER))
    assert result.stage is Stage.CANCELLED
    await handle.result()
    await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)


async def test_a_deadline_whose_decision_fails_is_retried_and_shown_as_blocked(
        client, task_queue, engine, env, monkeypatch):
    handle = await create_order(client, task_queue, plan="staged:30/70", price=100_000, policy=flaky_policy())
    await accept(handle)
    await pay(handle, 10_000)  # part of the deposit; the rest never comes
    monkeypatch.setenv(BROKEN, "1")
    await env.sleep(timedelta(days=3, minutes=5))  # the deposit deadline passes
    view = await status(handle)
    assert view.stage is Stage.AWAITING_DEPOSIT and view.escrow == 10_000
    assert view.blocked and "the cancellation decision failed" in view.blocked and "retrying" in view.blocked
    assert [e.kind for e in view.timeline].count("decision_blocked") == 1
    monkeypatch.delenv(BROKEN)  # the operator fixes the plugin
    await env.sleep(timedelta(hours=2))
    view = await status(handle)
    assert view.stage is Stage.CANCELLED and view.blocked is None
    assert "decision_unblocked" in [e.kind for e in view.timeline]
    await handle.result()
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)
    assert view.refunded == 10_000
