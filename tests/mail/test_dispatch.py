"""Email end to end on the time-skipping server: an order's reminders and decisions
reach a real SMTP server on loopback (aiosmtpd) from the events outbox, each once,
to the party concerned; SMTP down then up still gets each message exactly once; a
second dispatcher (a restart, a replay) sends nothing again."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from bespoke.api import principals
from bespoke.domain.mail import EmailDispatchInput
from bespoke.mail.outbox import MailConfig
from bespoke.mail.smtp import parse_smtp_url
from bespoke.store.tables import DecisionRow, EmailMessageRow
from bespoke.worker import build_worker
from bespoke.workflows.email import EmailDispatchWorkflow
from tests.conftest import terminate_started
from tests.helpers import assert_view_matches_ledger, delivered_order, status
from tests.helpers_smtp import SmtpSink

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
ALICE, ACME = "alice@example.com", "orders@acme.example"


@pytest.fixture
def sink():
    server = SmtpSink()  # started by each test when it wants the server up
    yield server
    server.stop()


@pytest.fixture
async def mail_worker(client, task_queue, engine, sink):
    config = MailConfig(smtp=parse_smtp_url(sink.url + "?timeout=5"), sender="Bespoke <orders@example.com>",
                        public_url="https://orders.example.com", first_retry=timedelta(milliseconds=200),
                        max_retry=timedelta(seconds=1), gap_wait=timedelta(seconds=1), lease=timedelta(seconds=5))
    principals.add(engine, "buyer:alice", scopes=[], created_by="ops:test", email=ALICE)
    principals.add(engine, "seller:acme", scopes=[], created_by="ops:test", email=ACME)
    with ThreadPoolExecutor(max_workers=8) as executor:
        async with build_worker(client, task_queue=task_queue, engine=engine, executor=executor,
                                strict_sandbox=True, mail=config):
            try:
                yield config
            finally:
                await terminate_started()


async def _dispatch(client, task_queue, **kw):
    return await client.start_workflow(EmailDispatchWorkflow.run, EmailDispatchInput(poll_seconds=0.2, **kw),
                                       id=f"email-{uuid.uuid4().hex[:8]}", task_queue=task_queue)


def _log(engine) -> list[EmailMessageRow]:
    with Session(engine) as s:
        return list(s.exec(select(EmailMessageRow).order_by(EmailMessageRow.id)).all())


async def _until(check, timeout: float = 30.0):
    for _ in range(int(timeout / 0.1)):
        got = check()
        if got:
            return got
        await asyncio.sleep(0.1)
    raise AssertionError("timed out")


async def _order_past_its_inspection_window(client, task_queue, env):
    """A prepaid order left alone: two reminders to the buyer, then auto-confirmed
    (a settlement decision, for both parties)."""
    handle = await delivered_order(client, task_queue)
    view = await status(handle)
    window = next(d for d in view.deadlines if d.name == "inspection_window")
    await env.sleep(window.due_at - view.updated_at + HOUR)
    return handle, window


@pytest.mark.usefixtures("mail_worker")
async def test_each_party_gets_its_reminders_and_decisions_by_email_once(client, task_queue, env, engine, sink):
    sink.start()
    handle, window = await _order_past_its_inspection_window(client, task_queue, env)
    order_id = handle.id.removeprefix("order-")
    await _dispatch(client, task_queue)
    log = await _until(lambda: (rows := _log(engine)) and all(r.status == "sent" for r in rows) and rows)
    got = sink.wait_for(len(log))
    assert len(got) == len(log) and len({m.message["Message-ID"] for m in got}) == len(log)

    to_alice = [m for m in got if m.rcpt_tos == [ALICE]]
    reminders = [m for m in to_alice if m.message["Subject"].startswith("Reminder")]
    assert [m.message["Subject"] for m in reminders] == [
        f"Reminder: order {order_id}, inspection window due {window.due_at:%Y-%m-%d %H:%M} UTC"] * 2
    reminders.sort(key=lambda m: "(in 3 days)" not in m.body)  # sent side by side: any order
    assert ["(in 3 days)" in m.body for m in reminders] == [True, False] and "(in 1 day)" in reminders[1].body
    first = reminders[0].body
    assert f"Due:       {window.due_at:%Y-%m-%d %H:%M} UTC (in 3 days)" in first
    assert f"If nothing is done by then: {window.default_action}" in first
    assert "Price:                  1,000.00 CNY" in first
    assert f"Open the order: https://orders.example.com/orders/{order_id}" in first
    assert reminders[0].message.get_content_charset() == "utf-8"

    with Session(engine) as s:
        decisions = s.exec(select(DecisionRow).where(DecisionRow.order_id == order_id)).all()
    assert decisions
    for decision in decisions:
        explanation = decision.explanation
        for address in (ALICE, ACME):  # a decision concerns both parties
            mail, = [m for m in got if m.rcpt_tos == [address] and decision.decision_id in m.body]
            assert mail.message["Subject"] == f"Decision on order {order_id}: {explanation['kind'].replace('_', ' ')}"
            for rule in explanation["matched"]:
                assert rule["because"] in mail.body
            for value in filter(None, explanation["amounts"].values()):  # zero amounts are left out
                assert f"{value // 100:,}.{value % 100:02d} CNY" in mail.body
    assert {m.rcpt_tos[0] for m in got} == {ALICE, ACME}  # the carrier has no address: none for it

    # A second dispatcher (a restart, a replayed run) reads the same outbox: nothing new.
    await _dispatch(client, task_queue)
    await asyncio.sleep(1.5)
    assert len(sink.received) == len(log) and len(_log(engine)) == len(log)
    await assert_view_matches_ledger(handle, engine, order_id, closed=False)


@pytest.mark.usefixtures("mail_worker")
async def test_smtp_down_then_up_delivers_each_message_exactly_once(client, task_queue, env, engine, sink):
    handle, _ = await _order_past_its_inspection_window(client, task_queue, env)
    # The SMTP server is down; the dispatcher continues as new every 3 rounds meanwhile.
    dispatcher = await _dispatch(client, task_queue, rounds_per_run=3)
    await _until(lambda: (rows := _log(engine)) and all(r.attempts >= 2 for r in rows))
    rows = _log(engine)
    assert all(r.status == "pending" and "Connection" in r.last_error for r in rows)
    assert sink.received == []
    sink.start()
    log = await _until(lambda: (rows := _log(engine)) and all(r.status == "sent" for r in rows) and rows)
    await asyncio.sleep(1.0)  # a few more rounds: nothing goes out twice
    assert len(sink.received) == len(log) == len(rows)
    assert (await dispatcher.describe()).run_id != dispatcher.result_run_id  # it did continue as new
    assert sorted((m.rcpt_tos[0], m.message["Message-ID"]) for m in sink.received) == sorted(
        {(m.rcpt_tos[0], m.message["Message-ID"]) for m in sink.received})
    await assert_view_matches_ledger(handle, engine, handle.id.removeprefix("order-"), closed=False)
