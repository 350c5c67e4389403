"""Signed inbound callbacks: bank transfers to collection accounts, and carrier
events (picked up, in transit, delivered).

A callback comes from an integration principal: its bearer token says which one,
and the body is signed with that principal's secret by the Standard Webhooks
scheme (https://www.standardwebhooks.com: headers `webhook-id`,
`webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of
"id.timestamp.body">`), checked by the `standardwebhooks` library, which also
refuses timestamps more than 5 minutes away. An event id is accepted once per
principal (replays are 409). An event that cannot be applied (unknown account or
tracking number, an order that refuses it) is *held for ops* and answered 202,
never dropped: bank transfers in `bespoke bank held`, carrier events in the
`api_callback_events` table with status `held`.

A signed `delivered` event sets the order delivered, which starts the buyer's
inspection window, as JD and 1688 count from carrier sign-off.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from bespoke.api.auth import Caller, engine_for
from bespoke.api.principals import ApiCaller, webhook_secret
from bespoke.api.problems import Problem, from_cli_error, responses
from bespoke.cli.errors import CliError
from bespoke.domain import models as m
from bespoke.store.tables import ApiCallbackEvent

router = APIRouter(prefix="/api/callbacks", tags=["callbacks"])
MAX_BODY = 64 * 1024
ERRORS = ("unauthenticated", "forbidden", "invalid-input", "too-many-requests", "unavailable", "replayed")


class BankTransferEvent(BaseModel):
    """Money arrived on a buyer's dedicated collection account."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    account: str = Field(min_length=1, max_length=34)
    amount: int = Field(gt=0, le=m.MAX_AMOUNT, description="Minor units.")
    currency: str = Field(min_length=3, max_length=3)
    reference: str = Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")


class CarrierEvent(BaseModel):
    """A shipment's progress from the carrier's feed."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    tracking: str = Field(min_length=1, max_length=100)
    event: Literal["picked_up", "in_transit", "delivered"]
    collected: int | None = Field(default=None, gt=0, le=m.MAX_AMOUNT,
                                  description="Cash on delivery: what the courier collected, minor units.")


class CallbackResult(BaseModel):
    event_id: str
    status: Literal["applied", "held", "noted"]
    order_id: str | None = None
    detail: str


async def _verified(request: Request, caller: ApiCaller, scope: str, model: type[BaseModel]) -> tuple[str, Any]:
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    if caller.role is not m.Role.INTEGRATION or not any(s == scope or s.startswith(scope) for s in caller.scopes):
        raise Problem("forbidden", f"only an integration principal with scope {scope}… sends these callbacks")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise Problem("invalid-input", f"the body is larger than {MAX_BODY} bytes")
    secret = await run_in_threadpool(webhook_secret, engine_for(request), caller)
    if not secret:
        raise Problem("forbidden", "this principal has no callback secret (`bespoke principal rotate --secret`)")
    headers = {k: v for k, v in request.headers.items() if k.startswith("webhook-")}
    try:
        Webhook(secret).verify(body, headers, json_parse=False)
    except WebhookVerificationError as err:
        raise Problem("unauthenticated", f"signature: {str(err).lower()}") from None
    except Exception:  # noqa: BLE001 - a malformed header (bad base64, no comma) is a bad signature
        raise Problem("unauthenticated", "signature: malformed webhook headers") from None
    event_id = headers["webhook-id"]
    if len(event_id) > 200:
        raise Problem("invalid-input", "webhook-id: at most 200 characters")
    try:
        return event_id, model.model_validate_json(body)
    except ValidationError as err:
        from bespoke.service import pydantic_message

        raise Problem("invalid-input", pydantic_message(err)) from None


def _record(engine: Any, caller: ApiCaller, event_id: str, kind: str, event: BaseModel) -> None:
    """Claim the event id (refused if seen before), before acting on it."""
    with Session(engine) as s:
        s.add(ApiCallbackEvent(principal=caller.ref, event_id=event_id, kind=kind, status="received",
                               payload=event.model_dump_json(), received_at=datetime.now(UTC)))
        try:
            s.commit()
        except IntegrityError:
            raise Problem("replayed", f"event {event_id} was already received") from None


def _finish(engine: Any, caller: ApiCaller, event_id: str, status: str, detail: str) -> None:
    with Session(engine) as s:
        row = s.get(ApiCallbackEvent, (caller.ref, event_id))
        if row is not None:
            row.status, row.detail = status, detail[:1000]
            s.add(row)
            s.commit()


def _result(engine: Any, caller: ApiCaller, event_id: str, status: str, detail: str,
            order_id: str | None = None) -> CallbackResult:
    _finish(engine, caller, event_id, status, detail)
    return CallbackResult(event_id=event_id, status=status, order_id=order_id, detail=detail)  # type: ignore[arg-type]


@router.post("/bank-transfers", summary="A bank transfer arrived (signed, Standard Webhooks)",
             response_model=CallbackResult, responses={202: {"model": CallbackResult}, **responses(*ERRORS)})
async def bank_transfer(request: Request, caller: Caller) -> Any:
    from fastapi.responses import JSONResponse

    from bespoke.api.routes.orders import order_client
    from bespoke.cli.bank import held_reason
    from bespoke.store.tables import BankTransfer

    event_id, event = await _verified(request, caller, "bank", BankTransferEvent)
    engine = engine_for(request)
    await run_in_threadpool(_record, engine, caller, event_id, "bank_transfer", event)
    with Session(engine) as s:
        if s.get(BankTransfer, event.reference) is not None:
            result = _result(engine, caller, event_id, "noted", f"transfer {event.reference} was already processed")
            return result
        order, reason = held_reason(s, event.account, event.currency)
    if order is not None:
        actor = m.Actor(role=m.Role.INTEGRATION, name=caller.name, for_party=m.Actor(role=m.Role.SYSTEM, name="bank"))
        payload = m.PayInput(actor=actor, amount=event.amount, currency=event.currency, reference=event.reference,
                             method="bank_transfer")
        try:
            await (await order_client(request)).update(order.order_id, "pay", payload)
        except CliError as err:
            problem = from_cli_error(err)
            if problem.slug == "unavailable":
                _forget(engine, caller, event_id)  # the sender retries with the same id
                raise problem from None
            order, reason = None, f"order {order.order_id} did not take it: {problem.detail.removeprefix('rejected: ')}"
    status = "matched" if order is not None else "held"
    with Session(engine) as s:
        s.add(BankTransfer(reference=event.reference, virtual_account=event.account, amount=event.amount,
                           currency=event.currency, matched_order_id=order.order_id if order else None, status=status,
                           received_at=datetime.now(UTC), held_reason=reason))
        s.commit()
    if order is None:
        result = _result(engine, caller, event_id, "held", f"held for ops (`bespoke bank held`): {reason}")
        return JSONResponse(result.model_dump(mode="json"), status_code=202)
    return _result(engine, caller, event_id, "applied", "paid to the order", order.order_id)


def _forget(engine: Any, caller: ApiCaller, event_id: str) -> None:
    with Session(engine) as s:
        row = s.get(ApiCallbackEvent, (caller.ref, event_id))
        if row is not None:
            s.delete(row)
            s.commit()


def _shipped_with(engine: Any, carriers: tuple[str, ...], tracking: str) -> list[str]:
    """Orders whose shipment timeline entry names this tracking number (the read
    model has no tracking column; the caller checks the live shipment exactly)."""
    from sqlmodel import col, select

    from bespoke.store.tables import TimelineRow

    with Session(engine) as s:
        rows = s.exec(select(TimelineRow.order_id).where(
            col(TimelineRow.kind).in_(["shipped", "reshipped"]),
            col(TimelineRow.message).contains(f"tracking {tracking}")).limit(20)).all()
    return list(dict.fromkeys(rows))


@router.post("/carrier-events", summary="A shipment event from a carrier (signed, Standard Webhooks)",
             response_model=CallbackResult, responses={202: {"model": CallbackResult}, **responses(*ERRORS)})
async def carrier_event(request: Request, caller: Caller) -> Any:
    from fastapi.responses import JSONResponse

    from bespoke.api.routes.orders import order_client

    event_id, event = await _verified(request, caller, "carrier:", CarrierEvent)
    engine = engine_for(request)
    await run_in_threadpool(_record, engine, caller, event_id, f"carrier_{event.event}", event)
    oc = await order_client(request)
    match = None
    for oid in await run_in_threadpool(_shipped_with, engine, caller.carriers, event.tracking):
        try:
            view = await oc.view(oid, timeline_limit=0)
        except CliError:
            continue
        shipment = view.shipment or {}
        if shipment.get("tracking") == event.tracking and shipment.get("carrier") in caller.carriers:
            match = view
            break
    if match is None:
        result = _result(engine, caller, event_id, "held", "held for ops: no order shipped with this carrier "
                                                           "has this tracking number")
        return JSONResponse(result.model_dump(mode="json"), status_code=202)
    if event.event != "delivered":
        return _result(engine, caller, event_id, "noted", f"{event.event.replace('_', ' ')} noted", match.order_id)
    actor = m.Actor(role=m.Role.INTEGRATION, name=caller.name,
                    for_party=m.Actor(role=m.Role.CARRIER, name=match.shipment["carrier"]))  # type: ignore[index]
    try:
        await oc.update(match.order_id, "deliver", m.DeliverInput(actor=actor, collected=event.collected))
    except CliError as err:
        problem = from_cli_error(err)
        if problem.slug == "unavailable":
            _forget(engine, caller, event_id)
            raise problem from None
        result = _result(engine, caller, event_id, "held", f"held for ops: the order refused it: {problem.detail}",
                         match.order_id)
        return JSONResponse(result.model_dump(mode="json"), status_code=202)
    return _result(engine, caller, event_id, "applied", "delivered; the inspection window is running",
                   match.order_id)
