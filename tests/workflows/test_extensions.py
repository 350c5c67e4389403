"""Party-requested extensions ([extensions] in the policy): the buyer extends the
inspection window once when little is left; the seller extends it for the buyer
within its cap; the seller asks for more production time and the buyer accepts
(the promised date and the late penalty follow it) or refuses. Each moves the
deadline's reminders; bad requests are refused with nothing recorded."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bespoke.domain.extensions import AnswerMoreTimeInput, AskMoreTimeInput, ExtendInspectionInput
from bespoke.domain.models import Stage
from bespoke.rules import find_policy
from bespoke.workflows.order import OrderWorkflow
from tests.helpers import (
    BUYER,
    SELLER,
    accept,
    assert_view_matches_ledger,
    create_order,
    delivered_order,
    pay,
    produce,
    rejected,
    status,
)

pytestmark = pytest.mark.usefixtures("worker")
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def due(view, name: str):
    return {d.name: d.due_at for d in view.deadlines}[name]


def t(when) -> int:
    return round(when.timestamp())


async def extend(handle, actor=BUYER, seconds: int = 0, reason: str = ""):
    return await handle.execute_update(OrderWorkflow.extend_inspection,
                                       ExtendInspectionInput(actor=actor, extend_seconds=seconds, reason=reason))


async def test_buyer_extends_the_inspection_window_once_and_its_reminders_move(client, task_queue, env, engine):
    handle = await delivered_order(client, task_queue)
    view = await status(handle)
    original = due(view, "inspection_window")
    await rejected(extend(handle), "3 days or less are left")
    await env.sleep(original - view.updated_at - 2 * DAY)  # 2 days left; the P3D reminder went out
    before = len((await status(handle)).timeline)

    result = await extend(handle, reason="still assembling it")
    moved = original + 3 * DAY
    assert "extended by 3 days" in result.message
    view = await status(handle)
    assert due(view, "inspection_window") == moved
    entry = next(e for e in view.timeline[before:] if e.kind == "deadline_extended")
    assert entry.actor == "buyer:alice" and entry.data["by"] == "P3D" and entry.data["party"] == "buyer"
    await rejected(extend(handle), "already used")
    assert len((await status(handle)).timeline) == len(view.timeline)  # nothing recorded

    await env.sleep(2 * DAY + HOUR)  # past the original due time: not confirmed
    view = await status(handle)
    assert view.stage is Stage.DELIVERED
    reminders = [e for e in view.timeline if e.kind == "deadline_reminder"]
    # P3D for the original due time; for the moved one (5 days off at the
    # extension) its own P3D, on time; P1D follows.
    assert [(e.data["due_at"], e.data["before"]) for e in reminders] == [
        (original.isoformat(), "P3D"), (moved.isoformat(), "P3D")]
    assert t(reminders[1].at) == t(moved - 3 * DAY)
    await env.sleep(3 * DAY)
    view = await assert_view_matches_ledger(handle, engine, handle.id.removeprefix("order-"), closed=False)
    assert view.stage is Stage.COMPLETED
    reminders = [e for e in view.timeline if e.kind == "deadline_reminder" and e.data["deadline"] == "inspection_window"]
    assert [(e.data["due_at"], e.data["before"]) for e in reminders][-1] == (moved.isoformat(), "P1D")
    confirmed = next(e for e in view.timeline if e.kind == "auto_confirmed")
    assert t(confirmed.at) >= t(moved)


async def test_seller_extends_the_window_for_the_buyer_within_the_cap(client, task_queue):
    handle = await delivered_order(client, task_queue)
    original = due(await status(handle), "inspection_window")
    await rejected(extend(handle, SELLER, seconds=11 * 86400), "at most 10 days")
    await extend(handle, SELLER, seconds=5 * 86400, reason="buyer asked by phone")
    assert due(await status(handle), "inspection_window") == original + 5 * DAY
    await rejected(extend(handle, SELLER, seconds=86400), "already used")


async def test_a_policy_without_extensions_refuses_them(client, task_queue):
    policy = find_policy("default").model_copy(update={"extensions": None})
    handle = await delivered_order(client, task_queue, policy=policy)
    await rejected(extend(handle, SELLER, seconds=86400), "allows no extensions")


async def in_production(client, task_queue):
    handle = await create_order(client, task_queue, plan="staged:30/70", production_days=10)
    await accept(handle)
    await pay(handle, 30_000)
    return handle


async def test_accepted_more_production_time_moves_the_promised_date_and_the_late_penalty(client, task_queue, env):
    handle = await in_production(client, task_queue)
    promised = (await status(handle)).promised_at
    await handle.execute_update(OrderWorkflow.ask_more_time,
                                AskMoreTimeInput(actor=SELLER, extend_seconds=5 * 86400, reason="glass supplier late"))
    await rejected(handle.execute_update(OrderWorkflow.ask_more_time, AskMoreTimeInput(
        actor=SELLER, extend_seconds=86400, reason="again")), "already waiting")
    await rejected(handle.execute_update(OrderWorkflow.answer_more_time, AnswerMoreTimeInput(
        actor=SELLER, accept=True)), "only the buyer")
    result = await handle.execute_update(OrderWorkflow.answer_more_time, AnswerMoreTimeInput(actor=BUYER, accept=True))
    assert "accepted 5 days" in result.message
    view = await status(handle)
    assert view.promised_at == promised + 5 * DAY
    assert due(view, "promised_delivery") == promised + 5 * DAY
    await env.sleep(promised - view.updated_at + 2 * DAY)  # past the old date, before the new one
    view = await status(handle)
    assert not any(e.kind == "promised_date_passed" for e in view.timeline)
    await env.sleep(4 * DAY)  # one day past the agreed date
    view = await status(handle)
    passed = next(e for e in view.timeline if e.kind == "promised_date_passed")
    assert t(passed.at) == t(promised + 5 * DAY)
    await rejected(handle.execute_update(OrderWorkflow.ask_more_time, AskMoreTimeInput(
        actor=SELLER, extend_seconds=86400, reason="more")), "promised date has passed")


async def test_refused_more_time_keeps_the_promised_date(client, task_queue):
    handle = await in_production(client, task_queue)
    promised = (await status(handle)).promised_at
    await rejected(handle.execute_update(OrderWorkflow.ask_more_time, AskMoreTimeInput(
        actor=SELLER, extend_seconds=31 * 86400, reason="too long")), "at most 30 days")
    await handle.execute_update(OrderWorkflow.ask_more_time,
                                AskMoreTimeInput(actor=SELLER, extend_seconds=86400, reason="short of walnut"))
    result = await handle.execute_update(OrderWorkflow.answer_more_time,
                                         AnswerMoreTimeInput(actor=BUYER, accept=False, note="no, as agreed"))
    assert "refused" in result.message
    view = await status(handle)
    assert view.promised_at == promised
    assert [e.kind for e in view.timeline][-2:] == ["more_time_asked", "more_time_answered"]
    assert view.timeline[-1].data["accepted"] is False
    await produce(handle)
    assert (await status(handle)).stage is Stage.AWAITING_BALANCE
