"""POST endpoints: create an order, and one endpoint per action
(`POST /api/orders/{id}/{action}`), each taking the workflow's own update model
without its `actor` (the actor is the authenticated principal). Every POST takes
an `Idempotency-Key`.

(No `from __future__ import annotations`: the action routes are built in a loop
and FastAPI reads their annotations at runtime.)
"""

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from bespoke.api.auth import Caller, engine_for, settings_for
from bespoke.api.idempotency import idempotent
from bespoke.api.problems import Problem, from_cli_error, responses
from bespoke.api.routes.orders import (
    WRITE_ERRORS,
    IdemKey,
    OrderId,
    acting_actor,
    action_parties,
    forget_view,
    order_client,
)
from bespoke.cli.errors import CliError, NotFound
from bespoke.domain import extensions as ext
from bespoke.domain import models as m
from bespoke.domain.names import ORDER_ID_PATTERN

router = APIRouter(prefix="/api/orders", tags=["actions"])

# action -> the update's input model. Every party action (PARTY_ACTIONS) and ops' own.
ACTION_MODELS: dict[str, type[m.ActorInput]] = {
    "consent": m.ActorInput, "accept": m.ActorInput, "pay": m.PayInput, "milestone": m.MilestoneInput,
    "salvage": m.SalvageInput, "finish_production": m.ActorInput, "quality_check": m.QcInput,
    "ship": m.ShipInput, "deliver": m.DeliverInput, "refuse": m.ReasonInput, "remit": m.RemitInput,
    "confirm": m.ActorInput, "cancel": m.CancelInput, "request_return": m.ReturnRequestInput,
    "respond_return": m.ReturnResponseInput, "answer_offer": m.OfferAnswerInput, "ship_return": m.ShipReturnInput,
    "receive_return": m.ReceiveReturnInput, "reship": m.ShipInput, "dispute": m.DisputeInput,
    "evidence": m.EvidenceInput, "arbitrate": m.ArbitrateInput, "override_deadline": m.OverrideDeadlineInput,
    # Party-requested extensions (policy [extensions]).
    "extend_inspection": ext.ExtendInspectionInput, "ask_more_time": ext.AskMoreTimeInput,
    "answer_more_time": ext.AnswerMoreTimeInput,
}


def body_model(action: str, model: type[BaseModel]) -> type[BaseModel]:
    """The request body: the update model's fields less the actor."""
    # Not taken: the actor (the token says who), and for `pay` the reason ops gives
    # for a bank transfer recorded by hand (transfers arrive as signed callbacks).
    hidden = {"actor", "reason"} if action == "pay" else {"actor"}
    fields: dict[str, Any] = {k: (f.annotation, f) for k, f in model.model_fields.items() if k not in hidden}
    if action == "pay":
        fields["method"] = (Literal["card", "wallet", "credit_repayment"], "card")
    name = "".join(p.title() for p in action.split("_")) + "Body"
    return create_model(name, __config__=ConfigDict(extra="forbid", frozen=True), __doc__=model.__doc__, **fields)


BODIES = {action: body_model(action, model) for action, model in ACTION_MODELS.items()}


def _payload(action: str, actor: m.Actor, body: BaseModel | None) -> m.ActorInput:
    data = body.model_dump() if body is not None else {}
    try:
        return ACTION_MODELS[action](actor=actor, **data)
    except ValidationError as err:
        from bespoke.service import pydantic_message

        raise Problem("invalid-input", pydantic_message(err)) from None


def _add_action_route(action: str) -> None:
    Model = BODIES[action]  # noqa: N806 - a class

    async def take(request: Request, caller: Caller, order_id: OrderId,
                   body: Annotated[Model | None, Body()] = None,  # type: ignore[valid-type]
                   on_behalf_of: Annotated[Literal["buyer", "seller", "carrier"] | None,
                                           Query(description="ops only: act for this party of the order")] = None,
                   idempotency_key: IdemKey = None) -> Any:
        acting_actor(caller, action, None, on_behalf_of)  # 403 before anything else

        async def work() -> tuple[int, Any]:
            parties, exists = await action_parties(request, caller, order_id, on_behalf_of)
            payload = _payload(action, acting_actor(caller, action, parties, on_behalf_of), body)
            oc = await order_client(request)
            try:
                result = await oc.update(order_id, action, payload)
            except NotFound:
                # Its row or its status query said it is there, or the server still
                # describes it: its run has closed (a closed order refuses updates).
                if not exists and not await _described(oc, order_id):
                    raise Problem("not-found", "no such order") from None
                raise Problem("rejected", "rejected: the order is closed") from None
            except CliError as err:
                raise from_cli_error(err) from None
            finally:
                # Taken, refused or timed out (it may still be applied): this
                # process's next read of the order asks Temporal.
                forget_view(request, order_id)
            return 200, result.model_dump(mode="json")

        return await idempotent(request, caller, idempotency_key, engine_for(request), work)

    take.__name__ = f"action_{action}"
    router.add_api_route(f"/{{order_id}}/{action}", take, methods=["POST"], response_model=m.ActionResult,
                         summary=f"{action.replace('_', ' ').capitalize()} ({_who(action)})",
                         description=(ACTION_MODELS[action].__doc__ or "").strip(),
                         responses=responses(*WRITE_ERRORS), operation_id=f"order_{action}")


async def _described(oc: Any, order_id: str) -> bool:
    try:
        await oc.revision(order_id)
    except NotFound:
        return False
    except CliError as err:
        raise from_cli_error(err) from None
    return True


def _who(action: str) -> str:
    from bespoke.domain.vocabulary import PARTY_ACTIONS

    roles = [r for r, acts in PARTY_ACTIONS.items() if action in acts and r != "system"]
    return ", ".join(roles) or "ops"


# ----------------------------------------------------------------- create


class OrderCreate(BaseModel):
    """A new order. The principal is one side: a buyer leaves `buyer` out, a seller
    leaves `seller` out. An order a seller proposes waits for the buyer's consent
    (`POST /api/orders/{id}/consent`) before any of the buyer's money moves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=ORDER_ID_PATTERN)
    buyer: str | None = Field(default=None, min_length=1, max_length=200)
    seller: str | None = Field(default=None, min_length=1, max_length=200)
    price: int = Field(gt=0, le=m.MAX_AMOUNT, description="Minor units (fen, cents).")
    currency: str = Field(default="CNY", min_length=3, max_length=3)
    plan: str = Field(default="full_prepayment", max_length=40,
                      description="full_prepayment, staged:30/70, credit[:DAYS], cash_on_delivery, collection_account")
    production_days: int = Field(default=14, ge=1, le=365)
    title: str = Field(default="", max_length=500)
    earnest_deposit: bool = False
    policy: str | None = Field(default=None, max_length=200, description="NAME[@VERSION]; the default policy if null")


class OrderCreated(BaseModel):
    """As `order create --json`."""

    order_id: str
    stage: m.Stage
    policy: m.PolicyRef
    buyer_consented: bool


def _order_input(request: Request, caller: Any, body: OrderCreate) -> m.OrderInput:
    from bespoke.cli.errors import Rejected
    from bespoke.cli.order.create import _refuse_frozen_credit
    from bespoke.rules import PolicyError, find_policy
    from bespoke.service import OrderRejected, build_order_input

    if caller.role is m.Role.BUYER:
        if body.buyer is not None:
            raise Problem("invalid-input", "buyer: you are the buyer; leave buyer out")
        buyer, seller = caller.name, body.seller
    elif caller.role is m.Role.SELLER:
        if body.seller is not None:
            raise Problem("invalid-input", "seller: you are the seller; leave seller out")
        buyer, seller = body.buyer, caller.name
    else:
        raise Problem("forbidden", "orders are created by their buyer or seller (ops uses the CLI)")
    if not buyer or not seller:
        raise Problem("invalid-input", f"{'seller' if buyer else 'buyer'}: required")
    settings = settings_for(request)
    try:
        policy = find_policy(body.policy or settings.default_policy,
                             [settings.policy_dir] if settings.policy_dir else [])
        inp = build_order_input(
            order_id=body.order_id or f"ORD-{uuid.uuid4().hex[:10].upper()}", buyer=buyer, seller=seller,
            price=body.price, currency=body.currency, plan=m.PaymentPlan.parse(body.plan),
            production_days=body.production_days, policy=policy, created_by=caller.actor, title=body.title,
            earnest_deposit=body.earnest_deposit, store=engine_for(request))
        if inp.plan.kind is m.PlanKind.CREDIT:
            _refuse_frozen_credit(settings, inp.buyer, None)
    except (OrderRejected, PolicyError, ValueError, Rejected) as err:
        raise Problem("invalid-input", str(err).removeprefix("rejected: ")) from None
    return inp


@router.post("", status_code=201, summary="Create an order (buyer or seller)", response_model=OrderCreated,
             responses=responses(*WRITE_ERRORS))
async def create_order(request: Request, caller: Caller, body: OrderCreate, idempotency_key: IdemKey = None) -> Any:
    from bespoke.service import OrderExists, start_order

    async def work() -> tuple[int, Any]:
        inp = _order_input(request, caller, body)
        oc = await order_client(request)
        try:
            await oc.bounded(start_order(oc.client, inp, task_queue=settings_for(request).task_queue),
                             "the order was not started")
        except OrderExists:
            raise Problem("rejected", f"order {inp.order_id} already exists") from None
        except CliError as err:
            raise from_cli_error(err) from None
        consented = caller.role is m.Role.BUYER
        created = OrderCreated(order_id=inp.order_id, stage=m.Stage.AWAITING_ACCEPTANCE,
                               policy=m.PolicyRef(name=inp.pin["name"], version=inp.pin["version"],
                                                  sha256=inp.pin.get("sha256", "")),
                               buyer_consented=consented)
        return 201, created.model_dump(mode="json")

    return await idempotent(request, caller, idempotency_key, engine_for(request), work)


for _action in ACTION_MODELS:
    _add_action_route(_action)
