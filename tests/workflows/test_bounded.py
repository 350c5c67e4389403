"""Bounded payloads (issue 10, 5b): the workflow keeps a bounded timeline (the read
model has every entry), `status` answers a page of it, one timeline message is
bounded, and a read-model sync with many entries pending goes in chunks."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select

from bespoke.domain.models import DisputeInput, EvidenceInput, ReturnRequestInput, ReturnResponseInput
from bespoke.store.tables import TimelineRow
from bespoke.workflows.core import TIMELINE_KEPT, TIMELINE_MESSAGE_MAX
from bespoke.workflows.order import OrderWorkflow
from tests.helpers import (
    BUYER,
    SELLER,
    accept,
    assert_view_matches_ledger,
    create_order,
    delivered_order,
    pay,
    policy_variant,
    status,
)

pytestmark = [pytest.mark.usefixtures("worker"), pytest.mark.timeout(600)]


def oid(handle) -> str:
    return handle.id.removeprefix("order-")


def read_model_seqs(engine, order_id: str) -> list[int]:
    with Session(engine) as session:
        return list(session.exec(select(TimelineRow.seq).where(TimelineRow.order_id == order_id)
                                 .order_by(TimelineRow.seq)).all())


async def test_the_workflow_keeps_the_newest_500_entries_and_the_read_model_has_them_all(client, task_queue, engine):
    # 560 partial payments: each one a timeline entry, more than the workflow keeps.
    payments = TIMELINE_KEPT + 60
    handle = await create_order(client, task_queue, price=payments * 100,
                                policy=policy_variant(max_payments=payments + 10))
    await accept(handle)
    for i in range(payments):
        await pay(handle, 100, f"P-{i}")
    view = await status(handle)
    total = view.timeline_total
    assert total > TIMELINE_KEPT + 60 and view.timeline_more
    seqs = [e.seq for e in view.timeline]
    assert len(seqs) == TIMELINE_KEPT and seqs == list(range(total - TIMELINE_KEPT + 1, total + 1))
    assert read_model_seqs(engine, oid(handle)) == list(range(1, total + 1))  # nothing lost

    # A page: the 10 entries before the first one the default page shows.
    page = await handle.query(OrderWorkflow.status, args=[10, seqs[0] + 10])
    assert [e.seq for e in page.timeline] == list(range(seqs[0], seqs[0] + 10)) and page.timeline_more
    newest = await handle.query(OrderWorkflow.status, args=[3, None])
    assert [e.seq for e in newest.timeline] == [total - 2, total - 1, total]
    # The whole answer stays small whatever the order's age.
    assert len(view.model_dump_json()) < 512 * 1024
    await assert_view_matches_ledger(handle, engine, oid(handle), closed=False)


async def test_a_timeline_message_is_bounded_and_the_evidence_stays_whole_on_the_case(client, task_queue, engine):
    handle = await delivered_order(client, task_queue)
    await handle.execute_update(OrderWorkflow.request_return, ReturnRequestInput(actor=BUYER, reason="defect"))
    await handle.execute_update(OrderWorkflow.respond_return, ReturnResponseInput(actor=SELLER, action="reject"))
    await handle.execute_update(OrderWorkflow.dispute, DisputeInput(actor=BUYER))
    items = tuple(f"{i:02d}" + "x" * 1998 for i in range(50))  # the policy's caps: 50 items of 2,000
    await handle.execute_update(OrderWorkflow.evidence, EvidenceInput(actor=BUYER, items=items))
    view = await status(handle)
    entry = next(e for e in view.timeline if e.kind == "evidence")
    assert len(entry.message) == TIMELINE_MESSAGE_MAX and entry.message.endswith("…")
    assert [e.item for e in view.open_case.evidence] == list(items)
    assert len(json.dumps(view.model_dump(mode="json"))) < 1024 * 1024
    await assert_view_matches_ledger(handle, engine, oid(handle), closed=False)
