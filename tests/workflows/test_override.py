"""Ops override a running deadline: extend it or bring it to now. Only ops may;
every move is on the timeline with who did it and why; the ledger stays right."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from bespoke.domain.models import Actor, OverrideDeadlineInput, ReturnRequestInput, Stage
from bespoke.workflows.order import OrderWorkflow
from tests.helpers import (
    started_status,
    BUYER,
    OPS,
    SELLER,
    accept,
    assert_view_matches_ledger,
    create_order,
    delivered_order,
    ledger_balances,
    pay,
    rejected,
    status,
)

pytestmark = pytest.mark.usefixtures("worker")
PRICE = 100_000
DAY = timedelta(days=1)


def oid(handle) -> str:
    return handle.id.removeprefix("order-")


def due(view, name: str):
    return {d.name: d.due_at for d in view.deadlines}[name]


async def override(handle, deadline: str, *, days: int = 0, now: bool = False, actor: Actor = OPS,
                   reason: str = "buyer travelling, asked support for more time"):
    return await handle.execute_update(
        OrderWorkflow.override_deadline,
        OverrideDeadlineInput(actor=actor, deadline=deadline, extend_seconds=int(days * DAY.total_seconds()),
                              now=now, reason=reason),
    )


async def test_extended_inspection_window_holds_escrow_until_the_new_due_time(client, task_queue, engine, env):
    handle = await delivered_order(client, task_queue)
    view = await status(handle)
    original = due(view, "inspection_window")
    window = original - view.updated_at

    result = await override(handle, "inspection_window", days=5)
    assert result.stage is Stage.DELIVERED and "extended by 5 days" in result.message
    view = await status(handle)
    assert due(view, "inspection_window") == original + 5 * DAY
    entry = view.timeline[-1]
    assert (entry.kind, entry.actor) == ("deadline_overridden", str(OPS))
    assert "buyer travelling" in entry.message

    await env.sleep(window + 2 * DAY)  # past the original due time, before the new one
    view = await status(handle)
    assert view.stage is Stage.DELIVERED and view.released_to_seller == 0
    assert not any(e.kind == "auto_confirmed" for e in view.timeline)

    await env.sleep(4 * DAY)
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=False)
    assert view.stage is Stage.COMPLETED
    confirmed = next(e for e in view.timeline if e.kind == "auto_confirmed")
    assert confirmed.at >= original + 5 * DAY
    assert view.released_to_seller == 95_000  # price minus the platform fee


async def test_bringing_seller_acceptance_to_now_cancels_at_once_at_no_cost(client, task_queue, engine):
    handle = await create_order(client, task_queue, price=PRICE)
    result = await override(handle, "seller_acceptance", now=True, reason="seller closed the shop")
    assert result.stage is Stage.CANCELLED
    assert "brought forward to now" in result.message
    view = await status(handle)
    assert ledger_balances(engine, oid(handle)) == {}  # nothing was paid, nothing posted
    kinds = [e.kind for e in view.timeline]
    assert kinds.index("deadline_overridden") < kinds.index("cancelled")
    assert any("acceptance_timeout" in e.message for e in view.timeline)
    assert view.paid == view.refunded == 0
    assert (await handle.result()).stage is Stage.CANCELLED


async def test_a_case_pauses_the_extended_window_and_resumes_it_with_the_extension(client, task_queue, engine, env):
    handle = await delivered_order(client, task_queue)
    await override(handle, "inspection_window", days=4)
    extended = due(await status(handle), "inspection_window")
    await env.sleep(DAY)
    await handle.execute_update(
        OrderWorkflow.request_return,
        ReturnRequestInput(actor=BUYER, reason="defect", remedy="refund", description="door warped"),
    )
    await env.sleep(13 * DAY)  # seller silent (5 d: approved), buyer never ships back (7 d): case closes
    view = await status(handle)
    case = view.cases[0]
    assert view.open_case is None and case.outcome == "not_shipped"
    left_at_pause = extended - case.opened_at
    assert abs(due(view, "inspection_window") - (case.closed_at + left_at_pause)) < timedelta(seconds=1)
    assert view.stage is Stage.DELIVERED
    await assert_view_matches_ledger(handle, engine, oid(handle), closed=False)


async def test_case_deadline_extended_delays_its_default_action(client, task_queue, engine, env):
    handle = await delivered_order(client, task_queue)
    await handle.execute_update(
        OrderWorkflow.request_return,
        ReturnRequestInput(actor=BUYER, reason="defect", remedy="refund", description="hinge cracked"),
    )
    response_due = due(await status(handle), "return_response")
    await override(handle, "return_response", days=3, reason="seller on a trade fair, support granted 3 days")
    assert due(await status(handle), "return_response") == response_due + 3 * DAY
    await env.sleep(6 * DAY)  # past the policy's 5 days, within the extension
    view = await status(handle)
    assert view.open_case.state == "requested"
    await env.sleep(3 * DAY)
    view = await status(handle)
    assert view.open_case.state == "approved"
    assert any(e.kind == "return_auto_approved" for e in view.timeline)
    await assert_view_matches_ledger(handle, engine, oid(handle), closed=False)


async def test_only_ops_may_override_and_only_a_running_deadline(client, task_queue, engine):
    handle = await create_order(client, task_queue, price=PRICE)
    before = await started_status(handle)
    await rejected(override(handle, "seller_acceptance", days=1, actor=BUYER), "only the ops may do this, not buyer")
    await rejected(override(handle, "seller_acceptance", days=1, actor=SELLER), "only the ops may do this, not seller")
    await rejected(override(handle, "inspection_window", days=1), "inspection_window is not running on this order "
                                                                  "(running: seller_acceptance)")
    await rejected(override(handle, "promised_delivery", days=1), "unknown or fixed deadline 'promised_delivery'")
    await rejected(override(handle, "nonsense", now=True), "unknown or fixed deadline 'nonsense'")
    assert await status(handle) == before  # nothing recorded

    await accept(handle)
    await pay(handle, PRICE)
    view = await status(handle)
    assert view.stage is Stage.IN_PRODUCTION
    await rejected(override(handle, "deposit", days=1), "no deadline is running")
    await assert_view_matches_ledger(handle, engine, oid(handle), closed=False)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"extend_seconds": 0, "now": False}, "either an extension"),
        ({"extend_seconds": 3600, "now": True}, "not both"),
        ({"extend_seconds": -5}, "greater than or equal to 0"),
        ({"extend_seconds": 366 * 86400}, "less than or equal to"),
        ({"extend_seconds": 60, "reason": "   "}, "a reason is required"),
        ({"extend_seconds": 60, "reason": ""}, "at least 1 character"),
    ],
)
def test_malformed_override_input_is_refused_before_it_is_sent(fields: dict, message: str) -> None:
    payload = {"actor": OPS, "deadline": "inspection_window", "reason": "why", **fields}
    with pytest.raises(ValidationError) as info:
        OverrideDeadlineInput(**payload)
    assert message in str(info.value)
