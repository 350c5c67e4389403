"""The delivery queue without Temporal or HTTP: what a dispatcher round takes
(the head of each webhook×order queue, when due), and what an outcome does."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

from bespoke.activities.store import project_order
from bespoke.api import principals
from bespoke.domain.models import OrderProjection, ProjectInput, Role, Stage, TimelineEntry
from bespoke.notifications import subscriptions
from bespoke.notifications.delivery import Outcome, RetryRule, due, record

AT = datetime(2026, 12, 2, 12, tzinfo=UTC)


def project(engine, order_id: str, seqs: range, buyer: str = "alice") -> None:
    projection = OrderProjection(
        order_id=order_id, stage=Stage.AWAITING_ACCEPTANCE, title="t", buyer=buyer, seller="acme",
        payment_plan="full_prepayment", price=100, currency="CNY", policy_name="default", policy_version="1",
        paid=0, refunded=0, released_to_seller=0, created_at=AT, updated_at=AT)
    entries = [TimelineEntry(seq=n, at=AT, kind="milestone", actor="seller:acme", message=f"m{n}") for n in seqs]
    project_order(engine=engine, data=ProjectInput(projection=projection, timeline=entries))


def test_a_round_takes_each_orders_oldest_pending_event_and_backs_off_failures(engine):
    principals.add(engine, "seller:acme", scopes=[], created_by="ops:test")
    sub = subscriptions.create(engine, principal="seller:acme", role=Role.SELLER, url="https://h.example.com/x",
                               event_types=["production.*"], allow_loopback_http=False).subscription
    project(engine, "A", range(1, 4))
    project(engine, "B", range(1, 3))
    now = datetime.now(UTC)
    heads = due(engine, now=now, limit=100)
    assert sorted(a.event_id for a in heads) == ["A:1", "B:1"]  # one per order: A:2 waits for A:1
    a1 = next(a for a in heads if a.event_id == "A:1")
    b1 = next(a for a in heads if a.event_id == "B:1")
    rule = RetryRule(base=timedelta(seconds=10))
    record(engine, [Outcome(a1.delivery_id, sub.id, False, 500, "HTTP 500"),
                    Outcome(b1.delivery_id, sub.id, True, 204, "")], rule=rule, now=now)
    assert [a.event_id for a in due(engine, now=now, limit=100)] == ["B:2"]  # A:1 retries in 10 s; A:2 still waits
    later = [a.event_id for a in due(engine, now=now + timedelta(seconds=11), limit=100)]
    assert sorted(later) == ["A:1", "B:2"]
    assert rule.delay(1) == timedelta(seconds=10) and rule.delay(3) == timedelta(seconds=40)
    assert rule.delay(30) == rule.maximum

    principals.revoke(engine, "seller:acme")  # a revoked principal's deliveries wait
    assert due(engine, now=now + timedelta(seconds=11), limit=100) == []
    principals.rotate(engine, "seller:acme")
    assert len(due(engine, now=now + timedelta(seconds=11), limit=100)) == 2


def test_a_given_up_delivery_lets_the_orders_next_event_go(engine):
    principals.add(engine, "buyer:alice", scopes=[], created_by="ops:test")
    sub = subscriptions.create(engine, principal="buyer:alice", role=Role.BUYER, url="https://h.example.com/x",
                               event_types=["*"], allow_loopback_http=False).subscription
    project(engine, "C", range(1, 3))
    project(engine, "D", range(1, 2), buyer="bob")  # not alice's: no delivery at all
    head, = due(engine, now=datetime.now(UTC), limit=100)
    past_give_up = datetime.now(UTC) + timedelta(days=3, seconds=1)
    done = record(engine, [Outcome(head.delivery_id, sub.id, False, None, "ConnectError")], rule=RetryRule(),
                  now=past_give_up)
    assert (done.given_up, done.disabled) == (1, 0)  # failing for under a second: not disabled
    assert [a.event_id for a in due(engine, now=past_give_up, limit=100)] == ["C:2"]


@contextlib.asynccontextmanager
async def slow_seller_and_fast_buyer(engine, delay: float):
    """Two real receivers on loopback: seller:acme's answers each POST after
    `delay` s, buyer:alice's at once; each subscribed to everything."""
    from tests.processes import free_port

    from .receiver import Receiver

    slow, fast = Receiver(free_port(), delay=delay).start(), Receiver(free_port()).start()
    try:
        for who, hook in (("seller:acme", slow), ("buyer:alice", fast)):
            principals.add(engine, who, scopes=[], created_by="ops:test")
            made = subscriptions.create(engine, principal=who, role=Role(who.split(":")[0]), url=hook.url,
                                        event_types=["*"], allow_loopback_http=True)
            hook.secret = made.secret
        yield slow, fast
    finally:
        slow.stop()
        fast.stop()


async def dispatch_for(engine, seconds: float):
    """One run of the dispatcher's activity, outside Temporal's workflow."""
    from temporalio.testing import ActivityEnvironment

    from bespoke.activities.webhooks import DispatchInput, WebhookActivities
    from bespoke.settings import Settings

    settings = Settings(_environ={}, webhook_allow_http_loopback=True, webhook_poll=0.05)
    return await ActivityEnvironment().run(WebhookActivities(engine, settings).deliver_webhooks,
                                           DispatchInput(run_seconds=seconds))


async def test_a_slow_endpoint_holds_up_only_its_own_deliveries(engine):
    async with slow_seller_and_fast_buyer(engine, delay=1.5) as (slow, fast):
        project(engine, "E", range(1, 6))
        result = await dispatch_for(engine, 1.0)
        assert fast.accepted() == [f"E:{n}" for n in range(1, 6)]  # all of them while the slow one answered once
        assert slow.accepted() == ["E:1"]
        assert result.delivered == 6 and fast.bad_signatures == slow.bad_signatures == 0


def test_a_round_takes_webhooks_in_turn(engine):
    made = {}
    for who in ("seller:acme", "buyer:alice"):
        principals.add(engine, who, scopes=[], created_by="ops:test")
        made[who] = subscriptions.create(engine, principal=who, role=Role(who.split(":")[0]),
                                         url="https://h.example.com/x", event_types=["*"],
                                         allow_loopback_http=False).subscription.id
    for n in range(6):
        project(engine, f"S{n}", range(1, 2), buyer="carol")  # the seller's only
    project(engine, "A", range(1, 2))  # alice's (and the seller's)
    heads = due(engine, now=datetime.now(UTC), limit=3)
    # alice's one due head is in the round though the seller's seven were due first
    assert [(a.subscription_id, a.event_id) for a in heads] == [
        (made["seller:acme"], "S0:1"), (made["buyer:alice"], "A:1"), (made["seller:acme"], "S1:1")]


async def test_a_busy_subscriber_takes_a_few_slots_and_the_others_go_on(engine):
    from bespoke.activities.webhooks import PER_WEBHOOK

    async with slow_seller_and_fast_buyer(engine, delay=2.0) as (slow, fast):
        for n in range(40):  # 40 orders of the seller's, each a queue of its own, all due at once
            project(engine, f"S{n:02d}", range(1, 2), buyer="carol")
        project(engine, "F", range(1, 6))
        await dispatch_for(engine, 1.0)
        assert fast.accepted() == [f"F:{n}" for n in range(1, 6)]
        assert len(slow.accepted()) <= PER_WEBHOOK < 40


async def test_an_endpoint_that_trickles_its_answer_fails_within_the_timeout():
    import asyncio
    import time

    import httpx

    from bespoke.notifications.delivery import Attempt, post

    handlers: list[asyncio.Task] = []

    async def trickle(reader, writer):
        handlers.append(asyncio.current_task())
        try:
            await reader.read(65536)
            writer.write(b"HTTP/1.1 500 Slow\r\ncontent-length: 100000000\r\n\r\n")
            while True:  # a byte at a time: each read is quick, the answer never ends
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.1)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        attempt = Attempt(1, "wh_x", f"http://127.0.0.1:{port}/hook", "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
                          "A:1", "{}")
        async with httpx.AsyncClient(timeout=5.0) as http:
            started = time.monotonic()
            outcome = await post(http, attempt, timeout=1.0)
            took = time.monotonic() - started
        assert not outcome.ok and outcome.error == "no complete answer within 1 s" and 1.0 <= took < 3.0
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()
