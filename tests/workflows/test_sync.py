"""The read model is current when an update returns, with one sync per update
(the "sync-batched-v1" path): the handler's changes and the run loop's reaction
to them go out together, in one local activity ("sync-local-v1")."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from bespoke.domain.models import ReadModelSync, ReturnRequestInput, Stage
from bespoke.rebuild import inputs_of_event
from bespoke.store.tables import OrderRow
from bespoke.rules import find_policy
from bespoke.workflows.order import OrderWorkflow
from tests.helpers import (
    BUYER,
    accept,
    assert_view_matches_ledger,
    confirm,
    create_order,
    deliver,
    pay,
    produce,
    ship,
    status,
)

pytestmark = pytest.mark.usefixtures("worker")


def _row(engine, order_id: str) -> OrderRow:
    with Session(engine) as session:
        row = session.get(OrderRow, order_id)
        assert row is not None
        return row


async def test_each_update_returns_with_the_read_model_showing_its_result(client, task_queue, engine):
    handle = await create_order(client, task_queue, plan="staged:30/70", price=100_000)
    oid = handle.id.removeprefix("order-")
    steps = [
        (accept(handle), Stage.AWAITING_DEPOSIT),  # stage set by the run loop's reaction
        (pay(handle, 30_000), Stage.IN_PRODUCTION),  # amount by the handler, stage by the loop
        (produce(handle), Stage.AWAITING_BALANCE),
        (pay(handle, 70_000), Stage.AWAITING_BALANCE),  # fully paid; waits for shipment
        (ship(handle), Stage.SHIPPED),
        (deliver(handle), Stage.DELIVERED),
        (confirm(handle), Stage.COMPLETED),  # settlement posted by the loop
    ]
    revisions = []
    for step, stage in steps:
        await step
        view = await status(handle)
        row = _row(engine, oid)
        assert view.stage is stage
        assert (row.stage, row.paid, row.refunded, row.released_to_seller) == (
            view.stage.value, view.paid, view.refunded, view.released_to_seller), stage
        revisions.append(row.revision)
    # Every update's sync moved the row's revision (the API's view cache relies on it).
    assert len(set(revisions)) == len(revisions) and 0 not in revisions, revisions
    assert _row(engine, oid).released_to_seller == 95_000
    # A handler that records nothing itself: the run loop opens the case (a rules
    # decision in a local activity first), and the update returns after that too.
    await handle.execute_update(OrderWorkflow.request_return, ReturnRequestInput(
        actor=BUYER, reason="defect", remedy="refund", description="glass cracked"))
    assert _row(engine, oid).stage == Stage.RETURN_REQUESTED.value
    await assert_view_matches_ledger(handle, engine, oid, closed=False)


async def test_a_happy_path_order_needs_about_one_sync_per_update(client, task_queue, engine):
    # The default policy itself, also when the suite runs with a continue-as-new
    # after every update: this counts the read-model writes of one run.
    handle = await create_order(client, task_queue, price=100_000, policy=find_policy("default"))
    await accept(handle)
    await pay(handle, 100_000)
    await produce(handle)  # three milestones, finish, qc
    await ship(handle)
    await deliver(handle)
    await confirm(handle)
    await handle.result()  # the after-sales window closes in virtual time
    history = await handle.fetch_history()
    scheduled = [e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events
                 if e.HasField("activity_task_scheduled_event_attributes")]
    updates = sum(e.HasField("workflow_execution_update_accepted_event_attributes") for e in history.events)
    assert updates == 10
    # "sync-local-v1": every sync is one local activity (postings and projection in
    # one write, recorded as a marker); no regular activity, so no server round trip.
    assert scheduled == []
    writes = [w for e in history.events for w in await inputs_of_event(client.data_converter, e)]
    assert writes and all(isinstance(w, ReadModelSync) for w in writes)
    # One write per update, one when created, one when the after-sales window closes,
    # one for each moment the policy's reminders were recorded (a reminder is news for
    # the party, so it reaches the read model when it is due); the ledger postings
    # (payment, settlement) ride along. Unbatched it was 17 + 2 regular activities.
    reminded_at = {e.at for e in (await status(handle)).timeline if e.kind == "deadline_reminder"}
    assert len(writes) <= updates + 2 + len(reminded_at), len(writes)
    assert [t.kind for w in writes for t in w.transactions] == ["payment", "settlement"]
    # An update costs one workflow task (its handler, the loop's reaction and the
    # write together), not one more per activity.
    tasks = sum(e.HasField("workflow_task_completed_event_attributes") for e in history.events)
    assert tasks <= updates + 2 + len(reminded_at) + 2, tasks
    # Every older order patch is behind one marker ("order-patches-bundled-v1"): each
    # marker costs the server a TemporalChangeVersion upsert too (it was 7 of each).
    patches = [e for e in history.events if e.HasField("marker_recorded_event_attributes")
               and e.marker_recorded_event_attributes.marker_name == "core_patch"]
    versions = [e for e in history.events if e.HasField("upsert_workflow_search_attributes_event_attributes")
                and "TemporalChangeVersion" in e.upsert_workflow_search_attributes_event_attributes
                .search_attributes.indexed_fields]
    assert (len(patches), len(versions)) == (1, 1), (len(patches), len(versions))
    await assert_view_matches_ledger(handle, engine, handle.id.removeprefix("order-"), closed=True)
