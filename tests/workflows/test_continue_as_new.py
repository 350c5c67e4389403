"""No limit on an order's number of actions: before a run nears Temporal's limits
the order continues as new with its whole state, and deadlines keep their times."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus

from sqlmodel import Session, select

from bespoke.domain.models import ActorInput, MilestoneInput, OrderInput, QcInput, Stage
from bespoke.store.tables import TimelineRow
from bespoke.workflows.order import OrderWorkflow
from tests.helpers import (
    SELLER,
    accept,
    assert_view_matches_ledger,
    confirm,
    create_order,
    deliver,
    pay,
    policy_variant,
    ship,
    status,
)

pytestmark = [pytest.mark.usefixtures("worker"), pytest.mark.timeout(900)]


def oid(handle) -> str:
    return handle.id.removeprefix("order-")


async def runs_of(client, handle) -> int:
    """Workflow runs in the order's chain, walked back from the latest run."""
    count, run_id = 0, None
    while True:
        count += 1
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        run_id = history.events[0].workflow_execution_started_event_attributes.continued_execution_run_id
        if not run_id:
            return count


async def test_an_order_takes_2500_actions_across_runs_and_a_deadline_keeps_its_time(client, task_queue, engine, env):
    # Caps raised by a test policy, so one order can take more actions than the
    # 2,000 updates Temporal allows a single run.
    policy = policy_variant(max_payments=3000, max_milestones=2000)
    price = 1_000_000
    handle = await create_order(client, task_queue, plan="staged:30/60/10", price=price, policy=policy)
    actions = 0

    async def act(coro):
        nonlocal actions
        result = await coro
        actions += 1
        return result

    await act(accept(handle))
    for i in range(600):  # the 300,000 deposit in 600 payments
        await act(pay(handle, 500, f"DEP-{i}"))
    assert (await status(handle)).stage is Stage.IN_PRODUCTION
    for i in range(1000):
        await act(handle.execute_update(OrderWorkflow.milestone, MilestoneInput(
            actor=SELLER, milestone=("materials", "fabrication", "finishing")[i % 3], cost=1)))
    await act(handle.execute_update(OrderWorkflow.finish_production, ActorInput(actor=SELLER)))
    await act(handle.execute_update(OrderWorkflow.quality_check, QcInput(actor=SELLER, passed=True)))
    for i in range(600):  # the 600,000 balance
        await act(pay(handle, 1_000, f"BAL-{i}"))
    await act(ship(handle))
    await act(deliver(handle))
    await act(confirm(handle))
    view = await status(handle)
    assert view.stage is Stage.AWAITING_BALANCE and view.amount_due == 100_000
    retention_due = next(d.due_at for d in view.deadlines if d.name == "retention")
    for i in range(300):  # 90,000 of the 100,000 retention; the rest stays unpaid
        await act(pay(handle, 300, f"RET-{i}"))
    assert actions == 2506

    view = await status(handle)
    assert view.runs >= 5  # at most 500 updates per run (the policy's default)
    assert view.runs == await runs_of(client, handle)
    # The retention deadline was started in an earlier run and is still due when it was.
    assert [d.due_at for d in view.deadlines if d.name == "retention"] == [retention_due]
    assert len(view.payments) == 1500 and sum(p.amount for p in view.payments) == 990_000
    assert len(view.milestones) == 1000 and view.costs_incurred == 1000

    await env.sleep(timedelta(days=8))  # past the retention deadline
    view = await status(handle)
    overdue = [e for e in view.timeline if e.kind == "retention_overdue"]
    assert len(overdue) == 1 and retention_due <= overdue[0].at < retention_due + timedelta(seconds=1)
    result = await handle.result()  # the after-sales window closes in virtual time
    assert result.stage is Stage.COMPLETED
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=True)
    assert view.paid == 990_000 and view.refunded == 0
    assert view.released_to_seller + view.platform_fee == 990_000
    # Nothing lost or doubled across runs: the workflow keeps the newest entries
    # (bounded), the read model every one.
    seqs = [e.seq for e in view.timeline]
    assert seqs == list(range(view.timeline_total - len(seqs) + 1, view.timeline_total + 1))
    with Session(engine) as session:
        stored = session.exec(select(TimelineRow.seq).where(TimelineRow.order_id == oid(handle))
                              .order_by(TimelineRow.seq)).all()
    assert list(stored) == list(range(1, view.timeline_total + 1))


async def test_an_update_in_flight_when_the_run_hands_over_is_answered_by_the_new_run(client, task_queue, engine):
    """With a hand-over after every update, each action still returns the stage
    the order moved to, and the read model and ledger stay exact."""
    policy = policy_variant(max_updates_per_run=1)
    handle = await create_order(client, task_queue, plan="staged:30/70", price=100_000, policy=policy)
    assert (await accept(handle)).stage is Stage.AWAITING_DEPOSIT
    assert (await pay(handle, 10_000)).stage is Stage.AWAITING_DEPOSIT
    assert (await pay(handle, 20_000)).stage is Stage.IN_PRODUCTION
    view = await status(handle)
    assert view.runs == 4 == await runs_of(client, handle)
    assert [d.name for d in view.deadlines] == ["promised_delivery"]
    await assert_view_matches_ledger(handle, engine, oid(handle), closed=False)


async def test_the_first_run_starts_from_the_input_and_each_later_run_from_the_carried_state(client, task_queue):
    policy = policy_variant(max_updates_per_run=1)
    handle = await create_order(client, task_queue, price=50_000, policy=policy)
    await accept(handle)
    await pay(handle, 50_000)

    async def start_input(run_id):
        events = (await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()).events
        started = events[0].workflow_execution_started_event_attributes
        (inp,) = await client.data_converter.decode(started.input.payloads, [OrderInput])
        return started.continued_execution_run_id, inp, events[-1].event_type

    previous, latest, _ = await start_input(None)
    assert latest.state is not None and latest.state.runs == 3 and latest.state.paid == 50_000
    while previous:
        run_id = previous
        previous, inp, last = await start_input(run_id)
        assert last == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    assert inp.state is None and run_id == handle.first_execution_run_id
    first = client.get_workflow_handle(handle.id, run_id=run_id)
    assert (await first.describe()).status == WorkflowExecutionStatus.CONTINUED_AS_NEW
