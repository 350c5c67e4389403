"""Webhook delivery end to end, real parts only: the dev server, the real worker
and dispatcher workflow, a real loopback HTTP receiver verifying our signatures
with `standardwebhooks`. A receiver failing three times gets each event once, in
order; a receiver that is down while the worker is SIGKILLed still gets every
event once both are back; another buyer's subscription sees nothing."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from sqlmodel import Session, select

from bespoke.api import principals
from bespoke.domain.models import Role
from bespoke.notifications import subscriptions
from bespoke.runtime.client import connect
from bespoke.store.db import get_engine
from bespoke.store.tables import EventRow, WebhookDelivery
from bespoke.worker import build_worker
from bespoke.workflows.webhooks import dispatcher_id, ensure_webhook_dispatcher
from tests.helpers import accept, assert_ledger, confirm, create_order, deliver, pay, produce, ship
from tests.processes import free_port
from tests.resilience.harness import WorkerProcess, worker_env

from .receiver import Receiver


def outbox(engine, order_id: str) -> list[str]:
    with Session(engine) as s:
        return list(s.exec(select(EventRow.event_id).where(EventRow.order_id == order_id).order_by(EventRow.seq)))


def log(engine, sub_id: str) -> list[WebhookDelivery]:
    with Session(engine) as s:
        return list(s.exec(select(WebhookDelivery).where(WebhookDelivery.subscription_id == sub_id)
                           .order_by(WebhookDelivery.event_pk)))


async def until(check, timeout: float = 60.0, what: str = "condition"):
    stop = time.monotonic() + timeout
    while time.monotonic() < stop:
        if value := await asyncio.to_thread(check):
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def subscribe(engine, who: str, url: str, types=("*",)) -> subscriptions.Created:
    principals.add(engine, who, scopes=[], created_by="ops:test")
    role = Role(who.split(":")[0])
    return subscriptions.create(engine, principal=who, role=role, url=url, event_types=list(types),
                                allow_loopback_http=True)


def all_delivered(engine, sub_id: str, order_id: str) -> list[str] | None:
    """The order's event ids once it has settled and the subscription got them all."""
    rows = log(engine, sub_id)
    events = outbox(engine, order_id)
    settled = any(e.endswith(":settlement:1") for e in events)
    done = settled and len(rows) == len(events) and all(r.status == "delivered" for r in rows)
    return events if done else None


async def test_a_receiver_failing_three_times_gets_each_event_exactly_once_in_order(dev_server, fast_webhooks):
    settings = fast_webhooks
    engine = get_engine(settings.effective_database_url)
    alice_hook = Receiver(free_port(), script=[500, 500, 500]).start()
    bob_hook = Receiver(free_port()).start()
    try:
        alice = subscribe(engine, "buyer:alice", alice_hook.url)
        alice_hook.secret = alice.secret
        bob = subscribe(engine, "buyer:bob", bob_hook.url)
        client = await connect(settings)
        with ThreadPoolExecutor(max_workers=8) as executor:
            async with build_worker(await connect(settings, worker=True), task_queue=settings.task_queue,
                                    engine=engine, executor=executor, settings=settings):
                await ensure_webhook_dispatcher(client, settings)
                await ensure_webhook_dispatcher(client, settings)  # a second start is a no-op
                handle = await create_order(client, settings.task_queue, engine=engine)
                oid = handle.id.removeprefix("order-")
                await accept(handle)
                await pay(handle, 100_000)
                await produce(handle)
                await ship(handle)
                await deliver(handle)
                await confirm(handle)
                events = await until(lambda: all_delivered(engine, alice.subscription.id, oid),
                                     what="every event delivered")
                await client.get_workflow_handle(dispatcher_id(settings.task_queue)).terminate("test done")
        assert_ledger(engine, oid, closed=False)
        assert len(events) > 15
        assert alice_hook.accepted() == events  # each once, in the order they were recorded
        assert [r.status for r in alice_hook.requests] == [500, 500, 500] + [200] * len(events)
        assert {r.event_id for r in alice_hook.requests[:4]} == {events[0]}  # the first was retried; the rest waited
        assert alice_hook.bad_signatures == 0
        rows = log(engine, alice.subscription.id)
        assert rows[0].attempts == 4 and rows[0].last_status_code == 200 and rows[0].last_error == ""
        assert all(r.attempts == 1 for r in rows[1:])
        assert bob_hook.requests == [] and log(engine, bob.subscription.id) == []  # not bob's order
        handles = {r.body["type"] for r in alice_hook.requests}
        assert {"order.created", "order.stage_changed", "payment.received", "decision.made"} <= handles
    finally:
        alice_hook.stop()
        bob_hook.stop()


async def test_a_receiver_down_while_the_worker_is_sigkilled_still_gets_every_event(dev_server, fast_webhooks,
                                                                                      tmp_path):
    settings = fast_webhooks
    engine = get_engine(settings.effective_database_url)
    hook = Receiver(free_port())  # not listening yet: the receiver is down
    sub = subscribe(engine, "seller:acme", hook.url)
    hook.secret = sub.secret
    env = worker_env(address=dev_server.address, home=settings.home, database_url=settings.effective_database_url,
                     BESPOKE_TASK_QUEUE=settings.task_queue, BESPOKE_WEBHOOK_ALLOW_HTTP_LOOPBACK="1",
                     BESPOKE_WEBHOOK_POLL="0.05", BESPOKE_WEBHOOK_RETRY_BASE="0.1", BESPOKE_WEBHOOK_RETRY_MAX="0.5",
                     BESPOKE_WEBHOOK_HEARTBEAT="2")
    worker = WorkerProcess("webhooks", env, tmp_path)
    worker.start()
    try:
        client = await connect(settings)
        handle = await create_order(client, settings.task_queue, engine=engine)
        oid = handle.id.removeprefix("order-")
        await accept(handle)
        await pay(handle, 100_000)
        await produce(handle)

        def failing_for_a_while():
            rows = log(engine, sub.subscription.id)
            return rows and rows[0].attempts >= 3 and rows[0].status == "pending"

        await until(failing_for_a_while, what="deliveries failing while the receiver is down")
        worker.kill()  # SIGKILL, mid-round: no drain, no goodbye
        hook.start()
        worker.start()
        await ship(handle)
        await deliver(handle)
        await confirm(handle)
        events = await until(lambda: all_delivered(engine, sub.subscription.id, oid), timeout=90,
                             what="every event delivered")
        assert_ledger(engine, oid, closed=False)
        first_seen = list(dict.fromkeys(hook.accepted()))
        assert first_seen == events  # every event, in order; a resend could only repeat an id
        assert hook.bad_signatures == 0
        assert worker.kills == 1
        await client.get_workflow_handle(dispatcher_id(settings.task_queue)).terminate("test done")
    finally:
        worker.stop()
        hook.stop()
