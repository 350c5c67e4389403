"""Order pages for buyers, sellers and ops: lists, the order page, and its actions.

Every read and action goes through `OrderClient` (bespoke/cli/order/client.py),
the one way the CLI reaches an order: the same queries, the same update payloads
(the domain models the CLI builds), the same error mapping. The acting party is
the signed-in principal, never a form field; a principal who is not a party to an
order (and not ops) gets 404, as if the order did not exist.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session, col, select

from bespoke.cli.errors import CliError, NotFound, Rejected, Unreachable
from bespoke.domain import models as m
from bespoke.domain.extensions import AnswerMoreTimeInput, AskMoreTimeInput, ExtendInspectionInput
from bespoke.domain.money import MoneyError, parse_amount
from bespoke.portal.auth import Principal
from bespoke.portal.files import REF, SIGNATURES, FileRejected, refs_in, sniff, store_upload, stored_path
from bespoke.portal.web import PortalError, PortalRoute, engine_for, render, settings_for
from bespoke.store.tables import OrderRow

router = APIRouter(route_class=PortalRoute, include_in_schema=False)

LIFECYCLE = ("awaiting_acceptance", "awaiting_deposit", "in_production", "quality_check", "awaiting_balance",
             "shipped", "delivered", "completed")
AFTERSALES = ("return_requested", "return_in_transit", "repair", "disputed")
CANCELLABLE = ("awaiting_acceptance", "awaiting_deposit", "in_production", "quality_check", "awaiting_balance")
MAX_TEXT = 4000
LIST_LIMIT = 200
DAY_S = 86_400  # the portal's extensions are in whole days


# ----------------------------------------------------------------- access


def require(request: Request, *roles: str) -> Principal:
    principal = request.state.principal
    if principal is None:
        raise _SignIn(request.url.path)
    if roles and principal.role not in roles:
        raise PortalError(403, "This page is not for your account.")
    return principal


class _SignIn(PortalError):
    def __init__(self, path: str) -> None:
        super().__init__(401, "Sign in to see this page.")
        self.path = path


async def order_client(request: Request) -> Any:
    """The app's Temporal client (tests and `bespoke up` set one), else a connection
    made once and kept on the app."""
    from bespoke.cli.order.client import OrderClient

    state = request.app.state
    client = getattr(state, "bespoke_client", None)
    if client is None:
        from bespoke.runtime.client import connect

        client = state.bespoke_client = await connect(settings_for(request))
    return OrderClient(client, settings_for(request))


def caller_for(principal: Principal) -> Any:
    from bespoke.api.principals import ApiCaller

    return ApiCaller(m.Role(principal.role), principal.name)


def may_see(principal: Principal, view: Any) -> bool:
    """The API's own check (bespoke/api/routes/orders.py): the order's buyer and
    seller, and ops."""
    from bespoke.api.routes.orders import may_see as api_may_see

    return api_may_see(caller_for(principal), view)


class ViewCache:
    """Order views the pages have asked Temporal for, reused while the order's
    read-model row is unchanged (one primary-key lookup instead of a `status` query:
    the query is a round trip through the server and a worker, most of a page's
    cost). The workflow projects the row after every change it makes (stage, money,
    next step and its due time, a blocked decision, each timeline entry moves
    `updated_at`); the page right after an action asks Temporal (an update that
    closes the order answers before its last projection). A view is never older
    than MAX_AGE either: what the row cannot show (a change whose projection is
    still on its way, an order projected before the row had next_step) is at most
    that late. Bounded (LRU)."""

    MAX_AGE = 5.0  # seconds
    SIZE = 2_000

    def __init__(self) -> None:
        from collections import OrderedDict

        self._views: OrderedDict[str, tuple[tuple, float, Any]] = OrderedDict()

    @staticmethod
    def key(row: OrderRow) -> tuple:
        return (row.updated_at, row.stage, row.paid, row.refunded, row.released_to_seller, row.next_step,
                row.next_step_due, row.blocked)

    def get(self, order_id: str, key: tuple) -> Any:
        import time

        found = self._views.get(order_id)
        if found is None or found[0] != key or time.monotonic() - found[1] > self.MAX_AGE:
            return None
        self._views.move_to_end(order_id)
        return found[2]

    def put(self, order_id: str, key: tuple, view: Any) -> None:
        import time

        self._views[order_id] = (key, time.monotonic(), view)
        self._views.move_to_end(order_id)
        while len(self._views) > self.SIZE:
            self._views.popitem(last=False)


def _cache(request: Request) -> ViewCache:
    # Not the API's `bespoke_view_cache` (bespoke/api/routes/orders.py): the portal
    # is mounted on the API's app, and the two caches hold different things.
    state = request.app.state
    cache = getattr(state, "bespoke_portal_view_cache", None)
    if cache is None:
        cache = state.bespoke_portal_view_cache = ViewCache()
    return cache


async def view_for(request: Request, principal: Principal, order_id: str, *, cached: bool = False) -> Any:
    """The order's live view, if `principal` may see it (else 404, as if there were
    no such order). `cached`: a page that only shows the order may take it from the
    ViewCache; an action, a preview and a file check ask Temporal."""
    if len(order_id) > 64:
        raise PortalError(404, "No such order.")
    view = key = None
    if cached:
        with Session(engine_for(request)) as s:
            row = s.get(OrderRow, order_id)
        if row is not None:
            key = ViewCache.key(row)
            view = _cache(request).get(order_id, key)
    if view is None:
        view = await _fresh_view(request, order_id)
        if key is not None:
            _cache(request).put(order_id, key, view)
    if not may_see(principal, view):
        raise PortalError(404, "No such order.")  # never say whose it is
    return view


async def _fresh_view(request: Request, order_id: str) -> Any:
    oc = await order_client(request)
    try:
        return await oc.view(order_id, timeline_limit=200)
    except NotFound:
        raise PortalError(404, "No such order.") from None
    except Unreachable as err:
        raise PortalError(503, f"The order service is not answering right now: {err}") from None


def list_orders(request: Request, principal: Principal, *, stage: str | None = None) -> list[OrderRow]:
    """The principal's orders from the read model, newest first (bounded)."""
    with Session(engine_for(request)) as s:
        q = select(OrderRow)
        if principal.role == "buyer":
            q = q.where(OrderRow.buyer == principal.name)
        elif principal.role == "seller":
            q = q.where(OrderRow.seller == principal.name)
        if stage:
            q = q.where(OrderRow.stage == stage)
        return list(s.exec(q.order_by(col(OrderRow.updated_at).desc()).limit(LIST_LIMIT)))


# ----------------------------------------------------------------- what a page shows


def steps(stage: str) -> list[tuple[str, str]]:
    """The lifecycle as (stage, done|current|todo); after-sales and closing stages
    mark the step they branch from."""
    anchor = {"return_requested": "delivered", "return_in_transit": "delivered", "repair": "delivered",
              "disputed": "delivered", "refunded": "completed", "cancelled": None}.get(stage, stage)
    if anchor is None:
        return [(s, "todo") for s in LIFECYCLE] + [("cancelled", "current")]
    i = LIFECYCLE.index(anchor)
    if stage not in LIFECYCLE:  # after-sales, refunded: the anchor is done, the stage itself is current
        return [(s, "done" if n <= i else "todo") for n, s in enumerate(LIFECYCLE)] + [(stage, "current")]
    return [(s, "done" if n < i else "current" if n == i else "todo") for n, s in enumerate(LIFECYCLE)]


def time_left(due: datetime, now: datetime) -> str:
    seconds = int((due - now).total_seconds())
    if seconds <= 0:
        return "due now"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {rest // 60} min"


def clock(view: Any) -> datetime:
    """Now, never earlier than the order's own last change (as `quote_facts` takes
    the later of the caller's clock and the workflow's): a workflow's clock is the
    server's, which a test server skips ahead."""
    updated = view.updated_at if view.updated_at.tzinfo else view.updated_at.replace(tzinfo=UTC)
    return max(datetime.now(UTC), updated)


def actions_now(principal: Principal, view: Any, now: datetime | None = None) -> list[str]:
    """The actions to offer now, by stage and case; the workflow's validator still
    decides, and its refusal is shown as the page's message."""
    now = now or clock(view)
    ext = view.extensions
    stage, case = view.stage.value, view.open_case
    state = case.state if case is not None else None
    out: list[str] = []
    role = principal.role
    if role == "buyer":
        if stage == "awaiting_acceptance" and not view.buyer_consented:
            out.append("consent")
        if view.amount_due > 0 and view.payment_plan.split(":")[0] in ("full_prepayment", "staged", "credit") and (
                stage in ("awaiting_deposit", "awaiting_balance") or (stage in ("completed", "refunded")
                                                                       and view.credit_outstanding)):
            out.append("pay")
        if stage == "delivered" and case is None:
            out.append("confirm")
        if ext is not None and ext.buyer_inspection_from is not None and now >= ext.buyer_inspection_from:
            out.append("extend_inspection")
        if ext is not None and ext.more_time_asked_seconds is not None:
            out.append("answer_more_time")
        if stage in ("delivered", "completed") and case is None:
            out.append("request_return")
        if state in ("offered_partial", "offered_repair"):
            out.append("answer_offer")
        if state == "approved":
            out.append("ship_return")
        if state in ("rejected", "requested", "approved", "in_transit"):
            out.append("dispute")
    elif role == "seller":
        if stage == "awaiting_acceptance":
            out.append("accept")
        if stage == "in_production":
            out += ["milestone", "salvage", "finish_production"]
        if ext is not None and ext.more_time_max_seconds >= DAY_S:
            out.append("ask_more_time")
        if ext is not None and ext.seller_inspection_max_seconds >= DAY_S:
            out.append("extend_inspection")
        if stage == "quality_check":
            out.append("quality_check")
        if stage in ("quality_check", "awaiting_balance") and view.amount_due == 0:
            out.append("ship")
        if state == "requested":
            out.append("respond_return")
        if state == "in_transit":
            out.append("receive_return")
        if state == "received" and case.remedy == "repair":
            out.append("reship")
        if state in ("rejected", "requested", "in_transit"):
            out.append("dispute")
    if state == "disputed" and role in ("buyer", "seller") and role not in case.finalised:
        out.append("evidence")
    if role == "ops" and state == "disputed":
        out.append("arbitrate")
    if stage in CANCELLABLE and role in ("buyer", "seller"):
        out.append("cancel")
    return out


async def cancel_quote(oc: Any, view: Any, by: str, engine: Any) -> Any:
    """What cancelling by `by` right now would cost: `order quote-cancel`'s
    computation (the order's facts and pinned policy, decided client-side)."""
    from bespoke.rules import CancellationFacts, PolicyError, PolicyPin, decide_cancellation
    from bespoke.store.policies import order_policy

    try:
        facts = await oc.query(view.order_id, "quote_facts", m.Role(by), datetime.now(UTC),
                               result_type=CancellationFacts, refusal_rejects=True)
        pinned = await oc.query(view.order_id, "pinned_policy", result_type=dict | None)
        pin = await oc.query(view.order_id, "policy_pin", result_type=dict)
    except CliError:
        return None
    try:
        policy = order_policy(engine, pinned, pin)
        return decide_cancellation(policy, facts, decision_id=f"{view.order_id}:quote",
                                   pin=PolicyPin.model_validate(pin))
    except PolicyError:
        return None  # no quote rather than one made with another policy or plugin


# ----------------------------------------------------------------- pages


@router.get("/orders")
async def my_orders(request: Request, stage: str | None = None) -> Response:
    try:
        principal = require(request)
    except _SignIn:
        return RedirectResponse("/sign-in?next=/orders", status_code=303)
    stage = stage if stage and len(stage) <= 32 else None
    return render(request, "orders.html", orders=list_orders(request, principal, stage=stage), stage=stage,
                  stages=LIFECYCLE + AFTERSALES + ("refunded", "cancelled"))


@router.get("/orders/{order_id}")
async def order_page(request: Request, order_id: str, done: str | None = None) -> Response:
    try:
        principal = require(request)
    except _SignIn:
        return RedirectResponse(f"/sign-in?next=/orders/{order_id}", status_code=303)
    return await _order_page(request, principal, order_id, done=done)


async def _order_page(request: Request, principal: Principal, order_id: str, *, done: str | None = None,
                      error: str | None = None, status: int = 200, preview: Any = None,
                      preview_refund: str = "", preview_note: str = "") -> Response:
    # The page right after an action (done=...), a refusal or a preview shows the
    # order as Temporal has it now: an update that closes the order answers before
    # the read model's last projection.
    view = await view_for(request, principal, order_id, cached=done is None and error is None and preview is None)
    oc = await order_client(request)
    now = clock(view)
    actions = actions_now(principal, view, now)
    quote = await cancel_quote(oc, view, principal.role, engine_for(request)) if "cancel" in actions else None
    deadlines = [(d, time_left(d.due_at, now)) for d in view.deadlines]
    return render(
        request, "order.html", status=status, view=view, steps=steps(view.stage.value), deadlines=deadlines,
        actions=actions, quote=quote, done=ACTION_DONE.get(done or ""), error=error, ext=extension_words(view, now, principal.role),
        timeline=list(reversed(view.timeline)), files=file_links(view), preview=preview, preview_refund=preview_refund,
        preview_note=preview_note,
    )


def extension_words(view: Any, now: datetime, role: str) -> dict[str, Any]:
    """What the extension forms say: lengths in words, the seller's caps in days,
    and from when the buyer may extend (shown while that is still ahead)."""
    from datetime import timedelta

    from bespoke.rules.durations import duration_words

    ext = view.extensions or m.ExtensionsNow()
    words = lambda seconds: duration_words(timedelta(seconds=seconds))  # noqa: E731
    return {
        "role": role,
        "buyer_by": words(ext.buyer_inspection_by_seconds) if ext.buyer_inspection_by_seconds else "",
        "buyer_from": ext.buyer_inspection_from if ext.buyer_inspection_from and now < ext.buyer_inspection_from
        else None,
        "seller_max_days": ext.seller_inspection_max_seconds // DAY_S,
        "more_max_days": ext.more_time_max_seconds // DAY_S,
        "asked": words(ext.more_time_asked_seconds) if ext.more_time_asked_seconds else "",
        "asked_reason": ext.more_time_reason,
    }


ACTION_DONE = {
    "consent": "You agreed to the order.", "pay": "Payment recorded.", "confirm": "Receipt confirmed.",
    "request_return": "Your case is open.", "answer_offer": "Answer recorded.", "ship_return": "Return shipment recorded.",
    "dispute": "Dispute opened.", "evidence": "Evidence recorded.", "cancel": "Order cancelled.",
    "accept": "Order accepted.", "milestone": "Milestone recorded.", "salvage": "Resale value recorded.",
    "finish_production": "Production finished.", "quality_check": "Quality check recorded.",
    "ship": "Shipment recorded.", "respond_return": "Answer recorded.", "receive_return": "Return received.",
    "reship": "Repaired goods shipped.", "arbitrate": "Dispute decided.",
    "extend_inspection": "Inspection window extended.", "ask_more_time": "Request for more time sent.",
    "answer_more_time": "Answer recorded.",
}


def _text(form: Any, name: str, limit: int = MAX_TEXT) -> str:
    value = form.get(name, "")
    if not isinstance(value, str):
        raise Rejected(f"{name}: expected text")
    if len(value) > limit:
        raise Rejected(f"{name}: at most {limit} characters")
    return value.strip()


def _money(form: Any, name: str, currency: str, *, required: bool = True) -> int | None:
    raw = _text(form, name, 40)
    if not raw:
        if required:
            raise Rejected(f"{name.replace('_', ' ')}: an amount is needed")
        return None
    try:
        value = parse_amount(raw, currency)
    except MoneyError as err:
        raise Rejected(f"{name.replace('_', ' ')}: {err}") from None
    if value < 0:
        raise Rejected(f"{name.replace('_', ' ')}: must not be negative")
    return value


def build_payload(action: str, actor: m.Actor, form: Any, view: Any, file_ref: str | None = None) -> Any:
    """The update payload for `action`, built as the CLI builds it; an uploaded
    file goes in as its reference (an evidence item, or the milestone's note)."""
    cur = view.currency
    t = lambda name, limit=MAX_TEXT: _text(form, name, limit)  # noqa: E731
    if action in ("consent", "accept", "confirm", "finish_production"):
        return m.ActorInput(actor=actor)
    if action == "pay":
        amount = _money(form, "amount", cur)
        method = "credit_repayment" if view.stage.value in ("completed", "refunded") else "card"
        return m.PayInput(actor=actor, amount=amount, currency=cur, reference=f"WEB-{uuid.uuid4().hex[:12].upper()}",
                          method=method)
    if action == "milestone":
        note = t("note", 700)
        if file_ref:
            note = f"{note} · photo {file_ref}" if note else f"photo {file_ref}"
        return m.MilestoneInput(actor=actor, milestone=t("milestone", 40), cost=_money(form, "cost", cur), note=note)
    if action == "salvage":
        return m.SalvageInput(actor=actor, value=_money(form, "value", cur))
    if action == "quality_check":
        return m.QcInput(actor=actor, passed=t("result", 10) == "pass", note=t("note", 1000))
    if action in ("ship", "reship"):
        return m.ShipInput(actor=actor, carrier=t("carrier", 100), tracking=t("tracking", 100))
    if action == "cancel":
        return m.CancelInput(actor=actor, reason=t("reason", 500))
    if action == "request_return":
        items = tuple(x for x in (t("evidence", 2000), file_ref) if x)
        return m.ReturnRequestInput(actor=actor, reason=t("reason", 40), remedy=t("remedy", 20) or "refund",
                                    description=t("description", 2000), evidence=items)
    if action == "respond_return":
        return m.ReturnResponseInput(actor=actor, action=t("response", 20),
                                     amount=_money(form, "amount", cur, required=False), reason=t("reason", 1000))
    if action == "answer_offer":
        return m.OfferAnswerInput(actor=actor, accept=t("answer", 10) == "accept")
    if action == "ship_return":
        return m.ShipReturnInput(actor=actor, carrier=t("carrier", 100), tracking=t("tracking", 100),
                                 shipping_cost=_money(form, "shipping_cost", cur, required=False) or 0)
    if action == "receive_return":
        return m.ReceiveReturnInput(actor=actor, disposition=t("disposition", 40),
                                    salvage_value=_money(form, "salvage_value", cur, required=False) or 0,
                                    note=t("note", 1000))
    if action == "dispute":
        return m.DisputeInput(actor=actor, claim=_money(form, "claim", cur, required=False),
                              statement=t("statement", 4000))
    if action == "evidence":
        items = tuple(x for x in (t("item", 2000), file_ref) if x)
        return m.EvidenceInput(actor=actor, items=items, final=form.get("final") == "on")
    if action == "arbitrate":
        return m.ArbitrateInput(actor=actor, refund=_money(form, "refund", cur), note=t("note", 4000))
    if action == "extend_inspection":  # the buyer's length is the policy's: no field
        seconds = _days(form, "days") * DAY_S if actor.party.role is m.Role.SELLER else 0
        return ExtendInspectionInput(actor=actor, extend_seconds=seconds, reason=t("reason", 1000))
    if action == "ask_more_time":
        return AskMoreTimeInput(actor=actor, extend_seconds=_days(form, "days") * DAY_S, reason=t("reason", 1000))
    if action == "answer_more_time":
        return AnswerMoreTimeInput(actor=actor, accept=t("answer", 10) == "accept", note=t("note", 1000))
    raise PortalError(404, "No such action.")


def _days(form: Any, name: str) -> int:
    raw = _text(form, name, 4)
    if not raw.isdigit() or not 1 <= int(raw) <= 365:
        raise Rejected(f"{name}: a whole number of days from 1 to 365")
    return int(raw)


FILE_ACTIONS = ("milestone", "request_return", "evidence")


async def _upload(request: Request, form: Any) -> str | None:
    """Store the form's `file` if one was chosen; its reference, else None."""
    upload = form.get("file")
    if upload is None or isinstance(upload, str) or not upload.filename:
        return None
    return (await store_upload(settings_for(request), upload)).ref


@router.get("/orders/{order_id}/files/{sha}")
async def order_file(request: Request, order_id: str, sha: str) -> Response:
    """An evidence file, to the order's parties and ops only, and only if this
    order refers to it."""
    principal = require(request)
    view = await view_for(request, principal, order_id)
    path = stored_path(settings_for(request), sha) if sha in refs_in(view) else None
    if path is None:
        raise PortalError(404, "No such file.")
    with path.open("rb") as f:
        mime = sniff(f.read(16)) or "application/octet-stream"
    disposition = "inline" if mime.startswith("image/") else "attachment"
    return FileResponse(path, media_type=mime, headers={
        "Content-Disposition": f'{disposition}; filename="{sha[:12]}{_EXT.get(mime, "")}"',
        # Sandboxed, no script; the browser's own image viewer styles itself inline.
        "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox", "Cache-Control": "private, max-age=600",
    })


_EXT = {mime: ext for _, _, mime, ext in SIGNATURES}


def file_links(view: Any) -> list[tuple[str, str]]:
    """(hash, what the reference says) for every file the order refers to."""
    texts = [e.item for c in view.cases for e in c.evidence] + [r.note for r in view.milestones]
    if view.open_case is not None:
        texts += [e.item for e in view.open_case.evidence]
    out: dict[str, str] = {}
    for text in texts:
        for match in REF.finditer(text + " "):
            out.setdefault(match.group(1), text[match.end():].split(" · ")[0].strip())
    return list(out.items())


@router.post("/orders/{order_id}/{action}")
async def act(request: Request, order_id: str, action: str) -> Response:
    principal = require(request, "buyer", "seller", "ops")
    view = await view_for(request, principal, order_id)
    if action not in ACTION_DONE:
        raise PortalError(404, "No such action.")
    form = await request.form()
    try:
        file_ref = await _upload(request, form) if action in FILE_ACTIONS else None
        payload = build_payload(action, principal.actor, form, view, file_ref)
        oc = await order_client(request)
        await oc.update(order_id, action, payload)
    except ValidationError as err:
        from bespoke.service import pydantic_message

        return await _order_page(request, principal, order_id, error=pydantic_message(err), status=422)
    except FileRejected as err:
        return await _order_page(request, principal, order_id, error=str(err), status=422)
    except Rejected as err:
        return await _order_page(request, principal, order_id, error=str(err), status=409)
    except Unreachable as err:
        return await _order_page(request, principal, order_id, error=str(err), status=503)
    return RedirectResponse(f"/orders/{order_id}?done={action}", status_code=303)
