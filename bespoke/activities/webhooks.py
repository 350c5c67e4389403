"""The webhook dispatcher's activity: rounds of signed deliveries, for a while.

One long activity, not one per event (issue 14 measured ~25 ms of worker CPU per
activity): it heartbeats each round and reads everything it needs from the
database, so a killed worker's attempt is retried elsewhere from the table (the
heartbeat timeout says how soon). It returns after `run_seconds` so the workflow's
history grows by a few events an hour, not forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from datetime import UTC, datetime

from pydantic import Field
from sqlalchemy.engine import Engine
from temporalio import activity

from bespoke.domain.vocabulary import Frozen
from bespoke.notifications.delivery import Attempt, Outcome, Recorded, RetryRule, due, post, record

log = logging.getLogger("bespoke.webhooks")
ROUND_LIMIT = 200  # deliveries in flight at most (each the head of a different webhook×order queue)
CONCURRENCY = 32  # POSTs in flight at once
PER_WEBHOOK = 4  # POSTs in flight at once to one webhook: a slow endpoint holds at most these slots
# After the first POST of a round finishes, how long to let the others in flight come
# in before recording: each round costs two queries (what is due, what happened), and
# a round per finished POST spent them on one delivery each (webhook_bench.py, webhooks
# on/off 0.81 -> 0.86). A slow endpoint delays the others' record by this much at most.
GATHER_SECONDS = 0.05


class DispatchInput(Frozen):
    run_seconds: float = Field(default=300.0, gt=0, le=3600)


class DispatchResult(Frozen):
    rounds: int = 0
    delivered: int = 0
    failed: int = 0
    given_up: int = 0
    disabled: int = 0


class WebhookActivities:
    def __init__(self, engine: Engine, settings) -> None:
        self._engine, self._settings = engine, settings

    @activity.defn(name="deliver_webhooks")
    async def deliver_webhooks(self, inp: DispatchInput) -> DispatchResult:
        import httpx

        settings = self._settings
        rule = RetryRule.from_settings(settings)
        totals = Recorded()
        rounds = 0
        stop = time.monotonic() + inp.run_seconds
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def send(http, attempt):
            async with gate:
                return await post(http, attempt, timeout=settings.webhook_timeout)

        # POSTs in flight, by task. A round starts the due heads not already in flight
        # and records whatever has finished, so an endpoint that answers slowly holds
        # up only its own queues; its head stays pending (and in flight) meanwhile, so
        # no later event of those orders is taken.
        inflight: dict[asyncio.Task[Outcome], Attempt] = {}
        async with httpx.AsyncClient(timeout=settings.webhook_timeout, follow_redirects=False, limits=limits,
                                     trust_env=False) as http:
            try:
                while time.monotonic() < stop or inflight:
                    activity.heartbeat(rounds)
                    rounds += 1
                    if time.monotonic() < stop:
                        attempts = await asyncio.to_thread(due, self._engine, now=datetime.now(UTC),
                                                           limit=ROUND_LIMIT)
                        busy = {a.delivery_id for a in inflight.values()}
                        per_webhook = Counter(a.subscription_id for a in inflight.values())
                        for a in attempts:
                            if (a.delivery_id not in busy and len(inflight) < ROUND_LIMIT
                                    and per_webhook[a.subscription_id] < PER_WEBHOOK):
                                per_webhook[a.subscription_id] += 1
                                inflight[asyncio.create_task(send(http, a))] = a
                    if not inflight:
                        await asyncio.sleep(settings.webhook_poll)
                        continue
                    finished, _ = await asyncio.wait(inflight, timeout=settings.webhook_poll,
                                                     return_when=asyncio.FIRST_COMPLETED)
                    if not finished:
                        continue
                    if len(finished) < len(inflight):
                        more, _ = await asyncio.wait(inflight.keys() - finished, timeout=GATHER_SECONDS)
                        finished |= more
                    outcomes = [task.result() for task in finished]
                    for task in finished:
                        del inflight[task]
                    done = await asyncio.to_thread(record, self._engine, outcomes, rule=rule,
                                                   now=datetime.now(UTC))
                    for name in ("delivered", "failed", "given_up", "disabled"):
                        setattr(totals, name, getattr(totals, name) + getattr(done, name))
                    if not done.delivered and not inflight:
                        # Everything failed (a receiver down): do not spin on the next due retry.
                        await asyncio.sleep(settings.webhook_poll)
            finally:
                for task in inflight:
                    task.cancel()
        return DispatchResult(rounds=rounds, **vars(totals))
