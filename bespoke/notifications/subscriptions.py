"""Webhook subscriptions: who wants which events, at which URL, and the fan-out
of each new event to the subscriptions that may see it.

A principal (bespoke/api/principals.py) subscribes an https URL with event type
patterns and gets the signing secret once. It receives only events about orders
it may see, by the rule the API's orders routes apply (a buyer or seller its own
orders, a carrier and an integration for it the orders shipped with it, ops
every order), checked against the names the event recorded.

`fan_out` runs inside the read-model projection's transaction (called by
`project_into` through the outbox), so a delivery row exists exactly when its
event does: a worker killed at any point loses none and delivery needs no
cursor over the events table.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from sqlalchemy import insert
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col, delete, select

from bespoke.domain.models import Role
from bespoke.notifications.catalogue import matches, parse_patterns
from bespoke.notifications.outbox import NewEvent
from bespoke.store.tables import ApiPrincipal, WebhookDelivery, WebhookSubscription

MAX_URL = 2000
MAX_PER_PRINCIPAL = 10
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
PENDING, DELIVERED, GIVEN_UP = "pending", "delivered", "given_up"


class SubscriptionError(ValueError):
    """A subscription request refused; the message is safe to show."""


class NoSuchSubscription(LookupError):
    """No subscription with that id (for this principal)."""


def _now() -> datetime:
    return datetime.now(UTC)


def new_subscription_id() -> str:
    return "wh_" + secrets.token_urlsafe(12)


def new_secret() -> str:
    # The same kind of secret an integration's inbound callbacks are signed with.
    from bespoke.api.principals import new_webhook_secret

    return new_webhook_secret()


def check_url(url: str, *, allow_loopback_http: bool) -> str:
    """An https URL with a host (plain http only to a loopback host, and only where
    BESPOKE_WEBHOOK_ALLOW_HTTP_LOOPBACK allows it: tests and development). An
    address literal in a private, link-local or reserved range is refused, and a
    loopback one unless that setting is on: a webhook must not reach into the
    service's own network. (A host *name* is not resolved here; see README.)"""
    url = (url or "").strip()
    if not url or len(url) > MAX_URL:
        raise SubscriptionError(f"url: give an https URL of at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise SubscriptionError("url: not a valid URL") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise SubscriptionError("url: must be https://HOST/…")
    if parts.username or parts.password:
        raise SubscriptionError("url: must not carry a user name or password")
    if parts.fragment:
        raise SubscriptionError("url: must not have a #fragment")
    loopback = host in LOOPBACK_HOSTS
    if parts.scheme == "http":
        if not (loopback and allow_loopback_http):
            raise SubscriptionError("url: must be https (plain http only to a loopback host where "
                                    "BESPOKE_WEBHOOK_ALLOW_HTTP_LOOPBACK is on)")
        return url
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
        # No DNS name ends in a numeric label: `127.1`, `2130706433`, `0x7f000001`,
        # `0177.0.0.1` are address literals in forms ipaddress does not parse, and
        # the resolver (inet_aton) turns each into an address.
        last = host.rstrip(".").rsplit(".", 1)[-1]
        if last.isdigit() or last.startswith("0x"):
            raise SubscriptionError("url: an address must be written as four decimal numbers (a.b.c.d) or a host name")
    loopback = loopback or (address is not None and address.is_loopback)
    internal = address is not None and (address.is_private or address.is_link_local or address.is_unspecified
                                        or address.is_multicast or address.is_reserved)
    if (loopback and not allow_loopback_http) or (internal and not loopback):
        raise SubscriptionError("url: must not be an internal address")
    return url


def _sees(role: str, name: str, scopes: str, event: NewEvent) -> bool:
    from bespoke.workflows.core import same_name

    if role == Role.OPS.value:
        return True
    if role == Role.BUYER.value:
        return same_name(event.buyer, name)
    if role == Role.SELLER.value:
        return same_name(event.seller, name)
    if event.carrier is None:
        return False
    if role == Role.CARRIER.value:
        return same_name(event.carrier, name)
    if role == Role.INTEGRATION.value:
        carriers = [s.removeprefix("carrier:") for s in scopes.split() if s.startswith("carrier:")]
        return any(same_name(event.carrier, c) for c in carriers)
    return False


_SUBSCRIPTIONS = WebhookSubscription.__table__
_PRINCIPALS = ApiPrincipal.__table__
_DELIVERIES = WebhookDelivery.__table__
# Built once (fan_out runs on every sync that records an event).
_LIVE_SUBSCRIPTIONS = (
    select(_SUBSCRIPTIONS.c.id, _SUBSCRIPTIONS.c.event_types, _PRINCIPALS.c.role, _PRINCIPALS.c.name,
           _PRINCIPALS.c.scopes)
    .join(_PRINCIPALS, _PRINCIPALS.c.principal == _SUBSCRIPTIONS.c.principal)
    .where(_SUBSCRIPTIONS.c.enabled.is_(True), _PRINCIPALS.c.revoked.is_(False))
)
_INSERT_DELIVERIES = insert(_DELIVERIES)


def fan_out(conn: Connection, events: Sequence[NewEvent]) -> int:
    """A pending delivery for each new event to each enabled subscription whose
    patterns match it and whose (unrevoked) principal may see it."""
    if not events:
        return 0
    subs = conn.execute(_LIVE_SUBSCRIPTIONS).all()
    if not subs:
        return 0
    now = _now()
    rows = []
    for sub in subs:
        patterns = sub.event_types.split()
        for event in events:
            if matches(patterns, event.type) and _sees(sub.role, sub.name, sub.scopes, event):
                rows.append({"subscription_id": sub.id, "event_pk": event.id, "event_id": event.event_id,
                             "order_id": event.order_id, "event_type": event.type, "status": PENDING,
                             "pending_since": now, "next_attempt_at": now})
    if rows:
        conn.execute(_INSERT_DELIVERIES, rows)
    return len(rows)


# ------------------------------------------------------------------ store functions


@dataclass(frozen=True)
class Created:
    subscription: WebhookSubscription
    secret: str


def create(engine: Engine, *, principal: str, role: Role, url: str, event_types: Sequence[str],
           allow_loopback_http: bool) -> Created:
    """Subscribe `principal`; the secret is returned here, once."""
    if role not in (Role.BUYER, Role.SELLER, Role.CARRIER, Role.OPS, Role.INTEGRATION):
        raise SubscriptionError(f"a {role.value} principal cannot subscribe to webhooks")
    url = check_url(url, allow_loopback_http=allow_loopback_http)
    try:
        patterns = parse_patterns(list(event_types))
    except ValueError as err:
        raise SubscriptionError(f"event_types: {err}") from None
    secret = new_secret()
    with Session(engine) as s:
        have = len(s.exec(select(WebhookSubscription.id).where(WebhookSubscription.principal == principal)).all())
        if have >= MAX_PER_PRINCIPAL:
            raise SubscriptionError(f"at most {MAX_PER_PRINCIPAL} webhooks per principal (delete one first)")
        row = WebhookSubscription(id=new_subscription_id(), principal=principal, url=url,
                                  event_types=" ".join(patterns), secret=secret, enabled=True, created_at=_now())
        s.add(row)
        s.commit()
        s.refresh(row)
        s.expunge(row)
    return Created(row, secret)


def get(engine: Engine, sub_id: str, *, principal: str | None = None) -> WebhookSubscription:
    """The subscription (`principal`: only if it is that principal's)."""
    with Session(engine) as s:
        row = s.get(WebhookSubscription, sub_id[:40])
        if row is None or (principal is not None and row.principal != principal):
            raise NoSuchSubscription(f"no webhook {sub_id[:40]}")
        s.expunge(row)
        return row


def list_for(engine: Engine, principal: str | None = None) -> list[WebhookSubscription]:
    """A principal's subscriptions (None: everyone's), oldest first."""
    q = select(WebhookSubscription).order_by(col(WebhookSubscription.created_at), col(WebhookSubscription.id))
    if principal is not None:
        q = q.where(WebhookSubscription.principal == principal)
    with Session(engine) as s:
        rows = list(s.exec(q))
        for r in rows:
            s.expunge(r)
        return rows


def remove(engine: Engine, sub_id: str, *, principal: str | None = None) -> None:
    """Delete a subscription and its delivery log."""
    get(engine, sub_id, principal=principal)
    with Session(engine) as s:
        s.exec(delete(WebhookDelivery).where(WebhookDelivery.subscription_id == sub_id))
        s.exec(delete(WebhookSubscription).where(WebhookSubscription.id == sub_id))
        s.commit()


MAX_PAGE = 200


def deliveries(engine: Engine, sub_id: str, *, principal: str | None = None, status: str | None = None,
               limit: int = 50, before: int | None = None) -> tuple[list[WebhookDelivery], int | None]:
    """A page of the subscription's delivery log, newest first, and the `before`
    value for the next page (None on the last)."""
    get(engine, sub_id, principal=principal)
    limit = max(1, min(limit, MAX_PAGE))
    q = select(WebhookDelivery).where(WebhookDelivery.subscription_id == sub_id)
    if status is not None:
        q = q.where(WebhookDelivery.status == status)
    if before is not None:
        q = q.where(col(WebhookDelivery.id) < before)
    q = q.order_by(col(WebhookDelivery.id).desc()).limit(limit + 1)
    with Session(engine) as s:
        rows = list(s.exec(q))
        for r in rows:
            s.expunge(r)
    page = rows[:limit]
    return page, (page[-1].id if len(rows) > limit and page else None)


def redeliver(engine: Engine, sub_id: str, *, principal: str | None = None, event_id: str | None = None) -> int:
    """Send again: one event (any status), or every delivery that was given up.
    The subscription is enabled again. Returns how many deliveries are pending now
    because of this call."""
    get(engine, sub_id, principal=principal)
    now = _now()
    with Session(engine) as s:
        q = select(WebhookDelivery).where(WebhookDelivery.subscription_id == sub_id)
        if event_id is not None:
            q = q.where(WebhookDelivery.event_id == event_id[:200])
        else:
            q = q.where(WebhookDelivery.status == GIVEN_UP)
        rows = list(s.exec(q))
        if event_id is not None and not rows:
            raise NoSuchSubscription(f"webhook {sub_id} has no delivery of event {event_id[:200]}")
        for row in rows:
            row.status, row.pending_since, row.next_attempt_at, row.delivered_at = PENDING, now, now, None
            s.add(row)
        sub = s.get(WebhookSubscription, sub_id)
        if sub is not None and not sub.enabled:
            sub.enabled, sub.disabled_reason, sub.disabled_at, sub.failing_since = True, "", None, None
            s.add(sub)
        s.commit()
    return len(rows)
