"""Webhooks: a principal's subscriptions, their delivery log, and redelivery.

`POST /api/webhooks` subscribes the calling principal (never another: there is no
principal field) and answers the signing secret once. A principal sees and
changes only its own subscriptions; another's is 404, as an order is. What a
subscription receives follows the orders rule (bespoke/api/routes/orders.py), see
bespoke/notifications/subscriptions.py. (No `from __future__ import annotations`:
FastAPI reads the annotations at runtime.)
"""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from bespoke.api.auth import Caller, engine_for, settings_for
from bespoke.api.idempotency import idempotent
from bespoke.api.problems import Problem, responses
from bespoke.api.routes.orders import IdemKey
from bespoke.notifications import subscriptions as subs
from bespoke.notifications.catalogue import MAX_PATTERNS

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])
ERRORS = ("unauthenticated", "forbidden", "not-found", "invalid-input", "too-many-requests")
SubId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^wh_[A-Za-z0-9_-]{1,37}$")]


class NewWebhook(BaseModel):
    """A subscription: where to POST, and which event types (`*`, `GROUP.*`, or a type)."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=subs.MAX_URL, examples=["https://example.com/bespoke-hook"])
    event_types: list[Annotated[str, Field(max_length=64)]] = Field(min_length=1, max_length=MAX_PATTERNS,
                                                                   examples=[["order.*", "deadline.reminder"]])


class Webhook(BaseModel):
    id: str
    url: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str
    failing_since: datetime | None
    last_success_at: datetime | None
    created_at: datetime


class CreatedWebhook(Webhook):
    secret: str | None = Field(description="The Standard Webhooks signing secret (whsec_…). Shown once: null in a "
                                           "replay of this response for a retried Idempotency-Key (it is not kept).")


class WebhookList(BaseModel):
    webhooks: list[Webhook]


class Delivery(BaseModel):
    id: int
    event_id: str
    order_id: str
    event_type: str
    status: Literal["pending", "delivered", "given_up"]
    attempts: int
    pending_since: datetime
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str
    delivered_at: datetime | None


class DeliveryPage(BaseModel):
    """A page of the delivery log, newest first."""

    deliveries: list[Delivery]
    next_before: int | None = Field(description="Pass as `before` for the next page; null on the last page.")


class Redeliver(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_id: str | None = Field(default=None, min_length=1, max_length=200,
                                 description="One event to send again; omitted: every delivery given up.")


class Redelivered(BaseModel):
    redelivered: int
    enabled: bool


def view(row) -> Webhook:
    return Webhook(id=row.id, url=row.url, event_types=row.event_types.split(), enabled=row.enabled,
                   disabled_reason=row.disabled_reason, failing_since=row.failing_since,
                   last_success_at=row.last_success_at, created_at=row.created_at)


def delivery_view(row) -> Delivery:
    return Delivery.model_validate(row.model_dump())


def _mine(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except subs.NoSuchSubscription as err:
        raise Problem("not-found", str(err)) from None
    except subs.SubscriptionError as err:
        raise Problem("invalid-input", str(err)) from None


@router.post("", status_code=201, summary="Subscribe an endpoint to events of the orders this principal may see",
             responses=responses(*ERRORS), response_model=CreatedWebhook)
async def create_webhook(request: Request, caller: Caller, body: NewWebhook,
                         idempotency_key: IdemKey = None) -> Response:
    engine, settings = engine_for(request), settings_for(request)

    async def work():
        created = await run_in_threadpool(
            _mine, subs.create, engine, principal=caller.ref, role=caller.role, url=body.url,
            event_types=body.event_types, allow_loopback_http=settings.webhook_allow_http_loopback)
        out = CreatedWebhook(**view(created.subscription).model_dump(), secret=created.secret)
        return 201, out.model_dump(mode="json")

    return await idempotent(request, caller, idempotency_key, engine, work, stored=lambda body: {**body, "secret": None})


@router.get("", summary="This principal's webhooks", responses=responses(*ERRORS))
async def list_webhooks(request: Request, caller: Caller) -> WebhookList:
    rows = await run_in_threadpool(subs.list_for, engine_for(request), caller.ref)
    return WebhookList(webhooks=[view(r) for r in rows])


@router.delete("/{webhook_id}", status_code=204, summary="Delete a webhook and its delivery log",
               responses=responses(*ERRORS))
async def delete_webhook(request: Request, caller: Caller, webhook_id: SubId) -> Response:
    await run_in_threadpool(_mine, subs.remove, engine_for(request), webhook_id, principal=caller.ref)
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", summary="The webhook's delivery log, newest first",
            responses=responses(*ERRORS))
async def list_deliveries(request: Request, caller: Caller, webhook_id: SubId,
                          status: Literal["pending", "delivered", "given_up"] | None = None,
                          limit: Annotated[int, Query(ge=1, le=subs.MAX_PAGE)] = 50,
                          before: Annotated[int | None, Query(ge=1)] = None) -> DeliveryPage:
    rows, next_before = await run_in_threadpool(_mine, subs.deliveries, engine_for(request), webhook_id,
                                                principal=caller.ref, status=status, limit=limit, before=before)
    return DeliveryPage(deliveries=[delivery_view(r) for r in rows], next_before=next_before)


@router.post("/{webhook_id}/redeliver", summary="Send an event again, or every delivery given up; re-enables",
             responses=responses(*ERRORS), response_model=Redelivered)
async def redeliver(request: Request, caller: Caller, webhook_id: SubId,
                    body: Annotated[Redeliver | None, Body()] = None, idempotency_key: IdemKey = None) -> Response:
    engine = engine_for(request)

    async def work():
        n = await run_in_threadpool(_mine, subs.redeliver, engine, webhook_id, principal=caller.ref,
                                    event_id=body.event_id if body else None)
        return 200, Redelivered(redelivered=n, enabled=True).model_dump()

    return await idempotent(request, caller, idempotency_key, engine, work)
