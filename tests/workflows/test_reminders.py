"""Reminders before a deadline's default action ([reminders] in the policy): each
goes to the party who must act, at the right virtual time, once; moved deadlines
move them; a window resumed after a case catches up with one reminder, not a
burst; a policy without the section sends none."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from bespoke.domain.models import DisputeInput, EvidenceInput, OverrideDeadlineInput, Stage
from bespoke.rules import find_policy
from bespoke.workflows.order import OrderWorkflow
from tests.helpers import (
    BUYER,
    OPS,
    SELLER,
    accept,
    assert_view_matches_ledger,
    create_order,
    delivered_order,
    pay,
    produce,
    status,
)

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
POLICY = find_policy("default")


def reminders(view, deadline: str | None = None) -> list:
    return [e for e in view.timeline if e.kind == "deadline_reminder"
            and (deadline is None or e.data["deadline"] == deadline)]


def due(view, name: str):
    return {d.name: d.due_at for d in view.deadlines}[name]


# A timer fires at its virtual time, but the entry is stamped with the start of the
# workflow task that handles it, which a loaded machine delays by real processing
# time (the test server does not skip time while the worker is busy).
LAG = timedelta(seconds=10)


def sent_on_time(entries, expected) -> bool:
    """Each entry was recorded at its expected time: never before it, and no
    later than the time a loaded worker takes to handle the timer."""
    lags = [e.at - when for e, when in zip(entries, expected)]
    assert len(entries) == len(expected) and all(timedelta(0) <= lag < LAG for lag in lags), (
        [e.at for e in entries], expected)
    return True


def oid(handle) -> str:
    return handle.id.removeprefix("order-")


@pytest.mark.usefixtures("worker")
async def test_default_policy_names_a_reminder_for_every_deadline_it_waits_on():
    from bespoke.rules.notices import REMINDABLE_DEADLINES

    missing = [n for n in REMINDABLE_DEADLINES if not POLICY.reminders.leads(n)]
    assert missing == []


@pytest.mark.usefixtures("worker")
async def test_buyer_is_reminded_three_days_and_one_day_before_auto_confirm(client, task_queue, env, engine):
    handle = await delivered_order(client, task_queue)
    view = await status(handle)
    window_due = due(view, "inspection_window")
    await env.sleep(window_due - view.updated_at - 3 * DAY - HOUR)
    assert reminders(await status(handle)) == []

    await env.sleep(2 * HOUR)
    first, = reminders(await status(handle))
    assert first.data == {"deadline": "inspection_window", "due_at": window_due.isoformat(), "before": "P3D",
                          "to": "buyer:alice", "default_action": "receipt auto-confirmed, escrow released to the seller",
                          "late": False}
    assert sent_on_time([first], [window_due - 3 * DAY])
    assert first.actor == "system:timer"
    assert "reminder to buyer:alice" in first.message and "receipt auto-confirmed" in first.message
    assert "in 3 days" in first.message

    await env.sleep(2 * DAY)
    view = await status(handle)
    assert [e.data["before"] for e in reminders(view)] == ["P3D", "P1D"]
    assert sent_on_time(reminders(view), [window_due - 3 * DAY, window_due - DAY])
    assert view.stage is Stage.DELIVERED

    await env.sleep(DAY)
    view = await assert_view_matches_ledger(handle, engine, oid(handle), closed=False)
    assert view.stage is Stage.COMPLETED
    assert len(reminders(view, "inspection_window")) == 2  # none after the window ended


@pytest.mark.usefixtures("worker")
async def test_an_override_moves_the_reminders_with_the_deadline(client, task_queue, env):
    handle = await delivered_order(client, task_queue)
    view = await status(handle)
    original = due(view, "inspection_window")
    await env.sleep(original - view.updated_at - 2 * DAY)  # the P3D reminder went out
    assert [e.data["before"] for e in reminders(await status(handle))] == ["P3D"]

    await handle.execute_update(OrderWorkflow.override_deadline, OverrideDeadlineInput(
        actor=OPS, deadline="inspection_window", extend_seconds=int((5 * DAY).total_seconds()),
        reason="buyer abroad"))
    moved = original + 5 * DAY
    await env.sleep(2 * DAY)  # past the original P1D time: nothing for the old due time
    view = await status(handle)
    assert [e.data["due_at"] for e in reminders(view)] == [original.isoformat()]
    await env.sleep(2 * DAY)  # past moved - 3 days
    await env.sleep(3 * DAY)  # past moved - 1 day
    sent = reminders(await status(handle))
    assert [(e.data["due_at"], e.data["before"]) for e in sent] == [
        (original.isoformat(), "P3D"), (moved.isoformat(), "P3D"), (moved.isoformat(), "P1D")]
    assert sent_on_time(sent, [original - 3 * DAY, moved - 3 * DAY, moved - DAY])


@pytest.mark.usefixtures("worker")
async def test_the_seller_is_reminded_before_acceptance_lapses_and_the_buyer_before_the_deposit(
        client, task_queue, env):
    handle = await create_order(client, task_queue)
    view = await status(handle)
    acceptance_due = due(view, "seller_acceptance")
    await env.sleep(acceptance_due - view.updated_at - DAY + HOUR)
    sent, = reminders(await status(handle))
    assert (sent.data["deadline"], sent.data["to"]) == ("seller_acceptance", "seller:acme")
    assert sent_on_time([sent], [acceptance_due - DAY])
    await accept(handle)
    view = await status(handle)
    deposit_due = due(view, "deposit")
    await env.sleep(deposit_due - view.updated_at - DAY + HOUR)
    sent = reminders(await status(handle), "deposit")
    assert [e.data["to"] for e in sent] == ["buyer:alice"] and sent_on_time(sent, [deposit_due - DAY])


@pytest.mark.usefixtures("worker")
async def test_the_seller_is_reminded_before_silence_approves_a_return(client, task_queue, env):
    from bespoke.domain.models import ReturnRequestInput

    handle = await delivered_order(client, task_queue)
    await handle.execute_update(OrderWorkflow.request_return, ReturnRequestInput(
        actor=BUYER, reason="defect", remedy="refund", description="hinge cracked", evidence=("p.jpg",)))
    view = await status(handle)
    response_due = due(view, "return_response")
    await env.sleep(response_due - view.updated_at + HOUR)  # the response deadline passed: approved
    view = await status(handle)
    sent = reminders(view, "return_response")
    assert [(e.data["to"], e.data["before"]) for e in sent] == [("seller:acme", "P2D"), ("seller:acme", "P1D")]
    assert sent_on_time(sent, [response_due - 2 * DAY, response_due - DAY])
    assert any(e.kind == "return_auto_approved" for e in view.timeline)


@pytest.mark.usefixtures("worker")
async def test_each_dispute_party_without_final_evidence_is_reminded(client, task_queue, env):
    from bespoke.domain.models import ReturnRequestInput, ReturnResponseInput

    handle = await delivered_order(client, task_queue)
    await handle.execute_update(OrderWorkflow.request_return, ReturnRequestInput(
        actor=BUYER, reason="defect", remedy="refund", description="hinge cracked", evidence=("p.jpg",)))
    await handle.execute_update(OrderWorkflow.respond_return,
                                ReturnResponseInput(actor=SELLER, action="reject", reason="customer damage"))
    await handle.execute_update(OrderWorkflow.dispute, DisputeInput(actor=BUYER, claim=50_000, statement="cracked"))
    view = await status(handle)
    evidence_due = due(view, "dispute_evidence")
    await env.sleep(evidence_due - view.updated_at - 2 * DAY + HOUR)
    first = reminders(await status(handle), "dispute_evidence")
    assert sorted(e.data["to"] for e in first) == ["buyer:alice", "seller:acme"]
    await handle.execute_update(OrderWorkflow.evidence, EvidenceInput(actor=BUYER, items=("video",), final=True))
    await env.sleep(DAY)
    second = reminders(await status(handle), "dispute_evidence")[len(first):]
    assert [(e.data["to"], e.data["before"]) for e in second] == [("seller:acme", "P1D")]


@pytest.mark.usefixtures("worker")
async def test_a_window_resumed_after_a_case_sends_one_catch_up_reminder_not_a_burst(client, task_queue, env):
    from bespoke.domain.models import ReturnRequestInput, ReturnResponseInput

    handle = await delivered_order(client, task_queue)
    view = await status(handle)
    await env.sleep(due(view, "inspection_window") - view.updated_at - 2 * DAY)  # 2 days left; P3D sent
    await handle.execute_update(OrderWorkflow.request_return, ReturnRequestInput(
        actor=BUYER, reason="defect", remedy="refund", description="hinge cracked", evidence=("p.jpg",)))
    await env.sleep(DAY)
    # The seller rejects; the buyer lets the escalation deadline pass: the case closes
    # and the window resumes with the 2 days it had left.
    await handle.execute_update(OrderWorkflow.respond_return,
                                ReturnResponseInput(actor=SELLER, action="reject", reason="no fault"))
    await env.sleep(POLICY.deadlines.effective("escalation") + HOUR)
    view = await status(handle)
    resumed_due = due(view, "inspection_window")
    window = reminders(view, "inspection_window")
    assert [e.data["due_at"] for e in window][1:] == [resumed_due.isoformat()]  # one, not P3D and P1D
    catch_up = window[-1]
    assert catch_up.data["before"] == "P3D" and catch_up.data["late"] is True
    assert catch_up.message.startswith("late reminder to buyer:alice")
    await env.sleep(resumed_due - view.updated_at - DAY + HOUR)
    window = reminders(await status(handle), "inspection_window")
    assert [(e.data["before"], e.data["late"]) for e in window[2:]] == [("P1D", False)]


@pytest.mark.usefixtures("worker")
async def test_a_policy_without_reminders_sends_none(client, task_queue, env):
    quiet = POLICY.model_copy(update={"reminders": None})
    handle = await delivered_order(client, task_queue, policy=quiet)
    view = await status(handle)
    await env.sleep(due(view, "inspection_window") - view.updated_at + HOUR)
    view = await status(handle)
    assert view.stage is Stage.COMPLETED and reminders(view) == []


async def test_reminders_are_sent_once_across_a_worker_restart(client, task_queue, env, engine):
    """The first worker goes away after the P3D reminder (no cache kept); a new one
    replays the history and sends only the P1D reminder, once."""
    from concurrent.futures import ThreadPoolExecutor

    from bespoke.worker import build_worker

    with ThreadPoolExecutor(max_workers=4) as pool:
        async with build_worker(client, task_queue=task_queue, engine=engine, executor=pool, max_cached_workflows=0):
            handle = await delivered_order(client, task_queue)
            view = await status(handle)
            window_due = due(view, "inspection_window")
            await env.sleep(window_due - view.updated_at - 2 * DAY)
            assert [e.data["before"] for e in reminders(await status(handle))] == ["P3D"]
    with ThreadPoolExecutor(max_workers=4) as pool:
        async with build_worker(client, task_queue=task_queue, engine=engine, executor=pool):
            await env.sleep(DAY + HOUR)
            view = await status(handle)
            assert [e.data["before"] for e in reminders(view)] == ["P3D", "P1D"]
            assert sent_on_time(reminders(view), [window_due - 3 * DAY, window_due - DAY])
            await handle.result()


async def _check_reminders(handle, env, engine, name: str, *parties: str):
    """Let `name` run out: each of the policy's leads reminded each of `parties` once,
    on time, saying what happens; then its default action ran and the ledger balances.
    Returns the order's view after it."""
    from bespoke.domain.models import TERMINAL_STAGES
    from bespoke.rules.durations import format_duration

    view = await status(handle)
    deadline = next(d for d in view.deadlines if d.name == name)
    await env.sleep(deadline.due_at - view.updated_at + HOUR)
    sent = reminders(await status(handle), name)
    leads = POLICY.reminders.leads(name)
    assert leads, f"the default policy has no reminder for {name}"
    assert [(e.data["to"], e.data["before"]) for e in sent] == [
        (party, format_duration(lead)) for lead in leads for party in parties]
    assert sent_on_time(sent, [deadline.due_at - lead for lead in leads for _ in parties])
    assert {(e.data["due_at"], e.data["default_action"], e.data["late"]) for e in sent} == {
        (deadline.due_at.isoformat(), deadline.default_action, False)}
    view = await status(handle)
    return await assert_view_matches_ledger(handle, engine, oid(handle), closed=view.stage in TERMINAL_STAGES)


@pytest.mark.usefixtures("worker")
async def test_the_buyer_is_reminded_before_an_unpaid_balance_cancels_the_order(client, task_queue, env, engine):
    handle = await create_order(client, task_queue, plan="staged:30/70")
    await accept(handle)
    await pay(handle, 30_000)
    await produce(handle)
    await _check_reminders(handle, env, engine, "balance", "buyer:alice")


@pytest.mark.usefixtures("worker")
async def test_the_carrier_is_reminded_before_a_cod_remittance_is_escalated(client, task_queue, env, engine):
    from tests.helpers import deliver, ship

    handle = await create_order(client, task_queue, plan="cod", price=80_000)
    await accept(handle)
    await produce(handle)
    await ship(handle)
    await deliver(handle, collected=80_000)
    await _check_reminders(handle, env, engine, "cod_remittance", "carrier:sf-express")


@pytest.mark.usefixtures("worker")
async def test_the_buyer_is_reminded_before_the_aftersales_window_closes(client, task_queue, env, engine):
    from tests.helpers import confirm

    handle = await delivered_order(client, task_queue)
    await confirm(handle)
    await _check_reminders(handle, env, engine, "aftersales_window", "buyer:alice")


@pytest.mark.usefixtures("worker")
async def test_the_buyer_is_reminded_before_an_unshipped_return_closes(client, task_queue, env, engine):
    from bespoke.domain.models import ReturnRequestInput, ReturnResponseInput

    handle = await delivered_order(client, task_queue)
    await handle.execute_update(OrderWorkflow.request_return, ReturnRequestInput(
        actor=BUYER, reason="defect", remedy="refund", description="hinge cracked", evidence=("p.jpg",)))
    await handle.execute_update(OrderWorkflow.respond_return, ReturnResponseInput(actor=SELLER, action="approve"))
    await _check_reminders(handle, env, engine, "return_ship", "buyer:alice")


@pytest.mark.usefixtures("worker")
async def test_the_buyer_is_reminded_before_credit_repayment_falls_overdue(client, task_queue, env, engine):
    from tests.helpers import confirm, deliver, ship
    from tests.helpers_accounts import set_credit_limit

    set_credit_limit(engine, "alice", 500_000)
    handle = await create_order(client, task_queue, plan="credit", price=120_000)
    await accept(handle)
    await produce(handle)
    await ship(handle)
    await deliver(handle)
    await confirm(handle)
    await _check_reminders(handle, env, engine, "credit_settlement", "buyer:alice")


# The deadlines of an after-sales case, each reached the shortest way from a
# delivered order: (deadline, who must act, the steps that start it, the stage
# its default action leaves the order in).
async def _returned(handle, *, remedy: str = "refund") -> None:
    from bespoke.domain.models import ReturnRequestInput

    await handle.execute_update(OrderWorkflow.request_return, ReturnRequestInput(
        actor=BUYER, reason="defect", remedy=remedy, description="hinge cracked", evidence=("p.jpg",)))


async def _respond(handle, action: str, **kw) -> None:
    from bespoke.domain.models import ReturnResponseInput

    await handle.execute_update(OrderWorkflow.respond_return, ReturnResponseInput(actor=SELLER, action=action, **kw))


async def _shipped_back(handle) -> None:
    from bespoke.domain.models import ShipReturnInput

    await handle.execute_update(OrderWorkflow.ship_return,
                                ShipReturnInput(actor=BUYER, carrier="sf-express", tracking="RT1"))


async def _offer_made(handle) -> None:
    await _returned(handle)
    await _respond(handle, "offer_partial", amount=20_000)


async def _rejected(handle) -> None:
    await _returned(handle)
    await _respond(handle, "reject", reason="customer damage")


async def _return_in_transit(handle) -> None:
    await _returned(handle)
    await _respond(handle, "approve")
    await _shipped_back(handle)


async def _back_for_repair(handle) -> None:
    from bespoke.domain.models import ReceiveReturnInput

    await _returned(handle, remedy="repair")
    await _respond(handle, "approve")
    await _shipped_back(handle)
    await handle.execute_update(OrderWorkflow.receive_return, ReceiveReturnInput(actor=SELLER, disposition="rework"))


async def _disputed(handle) -> None:
    await _rejected(handle)
    await handle.execute_update(OrderWorkflow.dispute, DisputeInput(actor=BUYER, claim=50_000, statement="cracked"))


CASE_DEADLINES = [
    ("offer_response", ("buyer:alice",), _offer_made, Stage.DELIVERED),
    ("escalation", ("buyer:alice",), _rejected, Stage.DELIVERED),
    ("return_receive", ("seller:acme",), _return_in_transit, Stage.REFUNDED),
    ("repair", ("seller:acme",), _back_for_repair, Stage.REFUNDED),
    ("dispute_evidence", ("buyer:alice", "seller:acme"), _disputed, Stage.DELIVERED),  # no evidence: DD04
]


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize(("name", "parties", "steps", "after"), CASE_DEADLINES, ids=[c[0] for c in CASE_DEADLINES])
async def test_the_party_who_must_act_in_a_case_is_reminded_on_time(
        client, task_queue, env, engine, name, parties, steps, after):
    handle = await delivered_order(client, task_queue)
    await steps(handle)
    view = await _check_reminders(handle, env, engine, name, *parties)
    assert view.stage is after


@pytest.mark.usefixtures("worker")
async def test_the_buyer_is_reminded_before_an_unpaid_retention_becomes_a_debt(client, task_queue, env, engine):
    from tests.helpers import confirm, deliver, ship

    handle = await create_order(client, task_queue, plan="staged:30/60/10")
    await accept(handle)
    await pay(handle, 30_000)
    await produce(handle)
    await pay(handle, 60_000)
    await ship(handle)
    await deliver(handle)
    await confirm(handle)
    view = await _check_reminders(handle, env, engine, "retention", "buyer:alice")
    assert view.stage is Stage.COMPLETED


def test_every_deadline_with_a_default_reminder_has_a_timing_test():
    """The deadlines the tests above let run out, against the default policy's list."""
    import inspect
    import sys

    source = inspect.getsource(sys.modules[__name__])
    covered = set(re.findall(r'_check_reminders\(handle, env, engine, "(\w+)"', source))
    covered |= {c[0] for c in CASE_DEADLINES}
    covered |= {"inspection_window", "seller_acceptance", "deposit", "return_response"}  # their own tests above
    from bespoke.rules.notices import REMINDABLE_DEADLINES

    listed = {name for name in REMINDABLE_DEADLINES if POLICY.reminders.leads(name)}
    assert listed - covered == set()
