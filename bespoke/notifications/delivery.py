"""Delivering webhooks: which deliveries are due, the signed POST, and what its
outcome does to the delivery log and the subscription.

Run by the dispatcher activity (bespoke/activities/webhooks.py) in rounds: each
round takes, per (subscription, order), only the oldest pending delivery, and
only if it is due, so an order's later event waits until the earlier one is
delivered or given up while other orders go on. Everything a round decides is
written to the database before the next round, so an activity killed at any
point resumes from the table; a POST whose outcome was not recorded is sent
again with the same `webhook-id` (receivers dedupe by it).

Signed by the Standard Webhooks scheme, as the inbound callbacks are checked:
`webhook-id` (the event id), `webhook-timestamp` (Unix seconds of this attempt),
`webhook-signature: v1,BASE64(HMAC-SHA256(secret, "id.timestamp.body"))`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select, update

from bespoke.notifications.subscriptions import DELIVERED, GIVEN_UP, PENDING
from bespoke.store.tables import ApiPrincipal, EventRow, WebhookDelivery, WebhookSubscription

log = logging.getLogger("bespoke.webhooks")
USER_AGENT = "bespoke-webhooks/1"
MAX_ERROR = 500


@dataclass(frozen=True)
class RetryRule:
    """When a failed delivery is tried again, and when it and its subscription give up."""

    base: timedelta = timedelta(seconds=5)
    maximum: timedelta = timedelta(hours=1)
    give_up_after: timedelta = timedelta(days=3)
    disable_after: timedelta = timedelta(days=3)

    def delay(self, attempts: int) -> timedelta:
        """Before attempt `attempts + 1` (`attempts` >= 1 have failed): base, 2×, 4× …, capped."""
        return min(self.base * (2 ** min(attempts - 1, 40)), self.maximum)

    @classmethod
    def from_settings(cls, settings: Any) -> RetryRule:
        return cls(base=timedelta(seconds=settings.webhook_retry_base),
                   maximum=timedelta(seconds=settings.webhook_retry_max),
                   give_up_after=timedelta(seconds=settings.webhook_give_up_after),
                   disable_after=timedelta(seconds=settings.webhook_disable_after))


@dataclass(frozen=True)
class Attempt:
    delivery_id: int
    subscription_id: str
    url: str
    secret: str
    event_id: str
    body: str


@dataclass(frozen=True)
class Outcome:
    delivery_id: int
    subscription_id: str
    ok: bool
    status_code: int | None
    error: str


def _aware(at: datetime | None) -> datetime | None:
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def body_of(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=False)


def due(engine: Engine, *, now: datetime, limit: int) -> list[Attempt]:
    """The deliveries to try now: the head of each (subscription, order) queue, if
    due, of enabled webhooks whose principal is not revoked (a revoked principal's
    deliveries wait: `principal rotate` lets them go on)."""
    heads = (
        select(WebhookDelivery.subscription_id, WebhookDelivery.order_id,
               func.min(WebhookDelivery.event_pk).label("head"))
        .where(WebhookDelivery.status == PENDING)
        .group_by(WebhookDelivery.subscription_id, WebhookDelivery.order_id)
        .subquery()
    )
    q = (
        select(WebhookDelivery.id, WebhookDelivery.subscription_id, WebhookSubscription.url,
               WebhookSubscription.secret, WebhookDelivery.event_id, EventRow.payload)
        .join(heads, and_(WebhookDelivery.subscription_id == heads.c.subscription_id,
                          WebhookDelivery.order_id == heads.c.order_id,
                          WebhookDelivery.event_pk == heads.c.head))
        .join(WebhookSubscription, col(WebhookSubscription.id) == col(WebhookDelivery.subscription_id))
        .join(EventRow, col(EventRow.id) == col(WebhookDelivery.event_pk))
        .join(ApiPrincipal, col(ApiPrincipal.principal) == col(WebhookSubscription.principal))
        .where(WebhookDelivery.status == PENDING, col(WebhookDelivery.next_attempt_at) <= now,
               col(WebhookSubscription.enabled).is_(True), col(ApiPrincipal.revoked).is_(False))
        .add_columns(func.row_number().over(
            partition_by=WebhookDelivery.subscription_id,
            order_by=(col(WebhookDelivery.next_attempt_at), col(WebhookDelivery.id))).label("turn"))
        .subquery()
    )
    # Subscriptions take turns: every webhook's first due head, then every second
    # one, ..., so one subscriber with many due orders cannot fill the round.
    fair = select(q.c.id, q.c.subscription_id, q.c.url, q.c.secret, q.c.event_id, q.c.payload) \
        .order_by(q.c.turn, q.c.id).limit(limit)
    with Session(engine) as s:
        rows = s.exec(fair).all()
    return [Attempt(r[0], r[1], r[2], r[3], r[4], body_of(r[5])) for r in rows]


def signed_headers(attempt: Attempt, at: datetime) -> dict[str, str]:
    from standardwebhooks.webhooks import Webhook

    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": attempt.event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(attempt.secret).sign(attempt.event_id, at, attempt.body),
    }


MAX_RESPONSE_READ = 4096  # bytes of an endpoint's answer read at most (the log keeps 200 characters)


async def post(http: Any, attempt: Attempt, *, timeout: float) -> Outcome:
    """One signed POST (an httpx.AsyncClient); any 2xx is delivered. `timeout` bounds
    the whole exchange, connect to the last byte read: httpx's own timeouts are per
    network operation, so an endpoint trickling a byte a second would hold the
    delivery (and the dispatcher's round) open for ever. At most MAX_RESPONSE_READ
    bytes of the answer are read."""
    import asyncio

    import httpx

    try:
        async with asyncio.timeout(timeout):
            async with http.stream("POST", attempt.url, content=attempt.body.encode(),
                                   headers=signed_headers(attempt, datetime.now(UTC))) as response:
                status = response.status_code
                head = b""
                if not 200 <= status < 300:
                    async for chunk in response.aiter_raw():
                        head += chunk
                        if len(head) >= MAX_RESPONSE_READ:
                            break
    except TimeoutError:
        return Outcome(attempt.delivery_id, attempt.subscription_id, False, None,
                       f"no complete answer within {timeout:g} s")
    except httpx.HTTPError as err:
        text = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        return Outcome(attempt.delivery_id, attempt.subscription_id, False, None, text[:MAX_ERROR])
    if 200 <= status < 300:
        return Outcome(attempt.delivery_id, attempt.subscription_id, True, status, "")
    snippet = head[:200].decode("utf-8", "replace").replace("\n", " ").replace("\r", " ")
    return Outcome(attempt.delivery_id, attempt.subscription_id, False, status,
                   f"HTTP {status}{': ' + snippet if snippet else ''}"[:MAX_ERROR])


@dataclass
class Recorded:
    delivered: int = 0
    failed: int = 0
    given_up: int = 0
    disabled: int = 0


def record(engine: Engine, outcomes: list[Outcome], *, rule: RetryRule, now: datetime) -> Recorded:
    """Write a round's outcomes: delivered, or retried later with backoff, or given
    up past `give_up_after`; a subscription that has not succeeded for
    `disable_after` is disabled when one of its deliveries gives up."""
    done = Recorded()
    with Session(engine) as s:
        subs: dict[str, WebhookSubscription] = {}
        for outcome in outcomes:
            row = s.get(WebhookDelivery, outcome.delivery_id)
            if row is None or row.status != PENDING:  # deleted or redelivered meanwhile
                continue
            sub = subs.get(outcome.subscription_id) or s.get(WebhookSubscription, outcome.subscription_id)
            if sub is None:
                continue
            subs[sub.id] = sub
            row.attempts += 1
            row.last_attempt_at, row.last_status_code, row.last_error = now, outcome.status_code, outcome.error
            if outcome.ok:
                row.status, row.delivered_at = DELIVERED, now
                sub.last_success_at, sub.failing_since = now, None
                done.delivered += 1
            else:
                sub.failing_since = _aware(sub.failing_since) or now
                row.next_attempt_at = now + rule.delay(row.attempts)
                done.failed += 1
                if now - _aware(row.pending_since) >= rule.give_up_after:
                    row.status = GIVEN_UP
                    done.given_up += 1
                    if sub.enabled and now - sub.failing_since >= rule.disable_after:
                        _disable(s, sub, now, outcome.error)
                        done.disabled += 1
            s.add(row)
        for sub in subs.values():
            s.add(sub)
        s.commit()
    return done


def _disable(s: Session, sub: WebhookSubscription, now: datetime, error: str) -> None:
    since = _aware(sub.failing_since) or now
    sub.enabled, sub.disabled_at = False, now
    sub.disabled_reason = (f"disabled {now:%Y-%m-%d %H:%M} UTC: no delivery succeeded since "
                           f"{since:%Y-%m-%d %H:%M} UTC; last error: {error}")[:500]
    # What was still waiting is given up with it (redeliver sends it again).
    s.exec(update(WebhookDelivery)
           .where(col(WebhookDelivery.subscription_id) == sub.id, col(WebhookDelivery.status) == PENDING)
           .values(status=GIVEN_UP, last_error="the webhook was disabled"))
    log.warning("webhook %s of %s disabled: %s", sub.id, sub.principal, sub.disabled_reason)
