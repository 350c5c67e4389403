"""A read-model sync never sends an unbounded payload: after the database was down
while actions kept coming, the pending timeline goes to the read model in chunks."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlmodel import Session, select
from temporalio import activity
from temporalio.client import WorkflowUpdateStage
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, Worker

from bespoke.activities import build_activities
from bespoke.activities.sync import sync_read_model
from bespoke.domain.models import MilestoneInput, ReadModelSync
from bespoke.store.tables import TimelineRow
from bespoke.workflows import WORKFLOWS
from bespoke.workflows.core import PATCHES_BUNDLED_PATCH, SYNC_CHUNK_EVENTS
from bespoke.workflows.order import OrderWorkflow
from tests.conftest import terminate_started
from tests.helpers import SELLER, accept, assert_view_matches_ledger, create_order, pay, policy_variant, status

pytestmark = pytest.mark.timeout(600)


async def test_entries_piled_up_while_the_database_was_down_reach_it_in_chunks(client, task_queue, engine):
    down = asyncio.Event()
    sizes: list[int] = []

    kinds: set[bool] = set()

    @activity.defn(name="sync_read_model")
    def flaky_sync_read_model(data: ReadModelSync) -> ReadModelSync | None:
        if down.is_set():
            raise RuntimeError("database unavailable")
        sizes.append(len(data.project.timeline))
        kinds.add(activity.info().is_local)
        sync_read_model(engine=engine, data=data)
        return data if activity.info().is_local else None

    activities = [a for a in build_activities(engine) if getattr(a, "__name__", "") != "sync_read_model"]
    with ThreadPoolExecutor(max_workers=8) as executor:
        async with Worker(client, task_queue=task_queue, workflows=WORKFLOWS,
                          activities=[*activities, flaky_sync_read_model], activity_executor=executor):
            try:
                count = SYNC_CHUNK_EVENTS + 50
                handle = await create_order(client, task_queue, price=100_000,
                                            policy=policy_variant(max_milestones=count + 10))
                await accept(handle)
                await pay(handle, 100_000)
                down.set()
                pending = [await handle.start_update(
                    OrderWorkflow.milestone, MilestoneInput(actor=SELLER, milestone="materials", cost=1),
                    wait_for_stage=WorkflowUpdateStage.ACCEPTED) for _ in range(count)]
                sizes.clear()
                down.clear()
                await asyncio.gather(*(u.result() for u in pending))
                view = await status(handle)
                assert len(view.milestones) == count
                assert max(sizes) == SYNC_CHUNK_EVENTS  # the pile went in chunks, none larger
                with Session(engine) as session:
                    seqs = session.exec(select(TimelineRow.seq).where(
                        TimelineRow.order_id == handle.id.removeprefix("order-")).order_by(TimelineRow.seq)).all()
                assert list(seqs) == list(range(1, view.timeline_total + 1))
                await assert_view_matches_ledger(handle, engine, handle.id.removeprefix("order-"), closed=False)
                # Local writes first; with the database down past their few attempts the
                # write went to the server as a regular activity, then local again.
                assert kinds == {True, False}, kinds
                # The chunked local path (patch sync-local-v1, which a new order takes
                # behind order-patches-bundled-v1) replays deterministically.
                history = await handle.fetch_history()
                assert any(e.marker_recorded_event_attributes.marker_name == "core_patch" and
                           PATCHES_BUNDLED_PATCH.encode() in b"".join(p.data for p in e.marker_recorded_event_attributes
                                                        .details["patch-data"].payloads)
                           for e in history.events if e.HasField("marker_recorded_event_attributes"))
                replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
                assert (await replayer.replay_workflow(history)).replay_failure is None
            finally:
                await terminate_started()
