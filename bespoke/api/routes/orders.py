"""Orders: create, read (status, list, history, cancellation quote) and every
action a party takes, bound to the authenticated principal.

Authorization is checked here against the order itself, and again by the
workflow's update validators (bespoke/workflows/core.py `_require`), which see the
actor this module builds from the token, never from the body:

* a buyer or seller sees and acts on its own orders only; a carrier on the orders
  shipped with it; an integration principal for the carriers in its scopes;
  ops sees every order and acts for a party only as its policy's `[on_behalf]`
  allows (`?on_behalf_of=buyer`, recorded as "ops:olga for buyer:alice");
* an order the principal may not see is 404, whoever's it is (the answer never
  says whose); an action its role never takes is 403; an action not allowed now
  is 409; bad input is 422; Temporal not answering is 503.

Request bodies are the workflow's own update models (bespoke/domain/models.py)
without their `actor` field; responses are the models `order status --json` and
the CLI print. (No `from __future__ import annotations`: the action routes are
built in a loop and FastAPI reads their annotations at runtime.)
"""

import base64
import binascii
import dataclasses
import functools
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from bespoke.api.auth import Caller, engine_for, read_db, settings_for
from bespoke.api.idempotency import idempotent
from bespoke.api.principals import ApiCaller
from bespoke.api.problems import Problem, from_cli_error, responses
from bespoke.cli.errors import CliError
from bespoke.domain import models as m
from bespoke.domain.names import ORDER_ID_PATTERN
from bespoke.domain.vocabulary import PARTY_ACTIONS
from bespoke.rules.decisions.cancellation import CancellationDecision

router = APIRouter(prefix="/api/orders", tags=["orders"])

OrderId = Annotated[str, Path(min_length=1, max_length=64, pattern=ORDER_ID_PATTERN)]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200,
                                       description="Retrying with the same key returns the first response.")]
OPS_ACTIONS = ("arbitrate", "override_deadline")
READ_ERRORS = ("unauthenticated", "forbidden", "not-found", "invalid-input", "too-many-requests", "unavailable")
WRITE_ERRORS = (*READ_ERRORS, "rejected")


# ----------------------------------------------------------------- access


async def order_client(request: Request) -> Any:
    """The app's Temporal client (`bespoke up` and tests set one), else one
    connection made on first use and kept on the app."""
    from bespoke.cli.order.client import OrderClient

    state = request.app.state
    if getattr(state, "bespoke_client", None) is None:
        from bespoke.runtime.client import connect

        try:
            state.bespoke_client = await connect(settings_for(request))
        except Exception:  # noqa: BLE001 - any failure to connect is "unavailable" to a caller
            raise Problem("unavailable", "the order service is not reachable; try again") from None
    return OrderClient(state.bespoke_client, settings_for(request))


def _same(a: str, b: str) -> bool:
    from bespoke.workflows.core import same_name

    return same_name(a, b)


def may_see(caller: ApiCaller, view: m.OrderView) -> bool:
    role = caller.role
    if role is m.Role.OPS:
        return True
    if role is m.Role.BUYER:
        return _same(view.buyer, caller.name)
    if role is m.Role.SELLER:
        return _same(view.seller, caller.name)
    carrier = (view.shipment or {}).get("carrier")
    return carrier is not None and any(_same(carrier, c) for c in caller.carriers)


async def visible_view(request: Request, caller: ApiCaller, order_id: str, **page: Any) -> m.OrderView:
    oc = await order_client(request)
    try:
        view = await oc.view(order_id, **page) if page else await oc.view(order_id, timeline_limit=50)
    except CliError as err:
        raise from_cli_error(err) from None
    if not may_see(caller, view):
        raise Problem("not-found", "no such order")  # never say whose it is
    return view


class Parties(BaseModel):
    """Who an order's parties are, for authorizing an action (duck-types the
    `buyer`, `seller` and `shipment` of an OrderView for `may_see` and
    `acting_actor`)."""

    buyer: str
    seller: str
    shipment: dict[str, str] | None = None


def _row_parties(engine: Any, order_id: str) -> Parties | None:
    with engine.connect() as connection:
        row = connection.execute(_statements().parties, {"order_id": order_id}).first()
    return None if row is None else Parties(buyer=row.buyer, seller=row.seller)


async def action_parties(request: Request, caller: ApiCaller, order_id: str,
                         on_behalf_of: str | None) -> tuple[Parties | None, bool]:
    """The parties an action by `caller` is checked against, 404 when the caller
    may not see the order, and whether the order is known to exist.

    An order's buyer and seller never change (an order id is never reused), so
    for a buyer, a seller, or ops acting for one of them they come from the read
    model's row, one indexed read, instead of a `status` query through Temporal:
    that query cost an action more than the API's own work. The carrier is set
    at shipment and can change (reship), so a carrier, an integration or ops
    acting for the carrier ask the workflow, as does anyone when the row is not
    there yet (an order created a moment ago). Ops' own actions need no parties;
    Temporal answers "not found" for an order that does not exist. The workflow's
    validators check the actor again either way."""
    role = caller.role
    if role is m.Role.OPS and on_behalf_of is None:
        return None, False
    if role in (m.Role.BUYER, m.Role.SELLER) or on_behalf_of in ("buyer", "seller"):
        parties = await read_db(engine_for(request), _row_parties, order_id)
        if parties is not None:
            if not may_see(caller, parties):  # type: ignore[arg-type]
                raise Problem("not-found", "no such order")
            return parties, True
    view = await visible_view(request, caller, order_id)
    return Parties(buyer=view.buyer, seller=view.seller, shipment=view.shipment), True


class ViewCache:
    """The last `status` answer per order, so `GET /api/orders/{id}` can skip the
    query, a round trip through the worker, while the order has not changed.

    Each entry is filed under two revisions of the order, both read *before* the
    query (an answer that raced with a change is filed under older ones and is
    never served as current):

    * the read model's: `orders.revision`, a fresh random value every sync
      writes. The workflow syncs after each change to its state, and an update
      returns only after its sync (but see below for the one that closes the
      order).
    * the workflow's, from Temporal: run id and history length (a describe,
      answered by the server without the worker). Any change to the order (an
      action, a timer, a continue-as-new) is a history event that moves it.

    Every request reads the row's revision first (one indexed read, no Temporal).
    If it differs from the entry's, the request asks the workflow again. If it is
    the entry's, the entry is served; once the entry's last describe is
    `check_after` seconds old, a describe runs in the background (one per order at
    a time) and drops the entry if the history moved; past `max_age` the request
    waits for the describe itself. An action through this process drops the
    order's entry, so the actor's next read here asks the workflow.

    So a change that reached the read model is seen by the next read. One that has
    not reached it yet is seen once the history shows it, after at most about
    `check_after` seconds under steady reads and `max_age` at worst: a change
    in a workflow task that does not sync, the new run of a continue-as-new (it
    syncs at its next change), and the update that closes an order, which answers
    before the order's last sync (bespoke/workflows/loop.py, `finish`), when it is
    read through another replica.

    Per process and bounded (entries and bytes); a replica that restarts starts
    empty. One thing it cannot see: a worker deployed with a `status` query that
    reads differently serves the old reading until the order's next event."""

    def __init__(self, max_entries: int = 5_000, max_bytes: int = 32 * 1024 * 1024,
                 check_after: float = 1.0, max_age: float = 5.0) -> None:
        from collections import OrderedDict

        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.check_after, self.max_age = check_after, max_age
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        # The background describes running, by order (the reference keeps each alive).
        self._checks: dict[str, Any] = {}
        self._bytes = 0
        self.hits = self.misses = self.fresh_hits = 0

    def fresh(self, order_id: str, row_revision: int | None, now: float) -> tuple[m.OrderView, bytes, bool] | None:
        """The entry, if the read model's row has not moved since it was last
        confirmed and that was less than `max_age` ago (no Temporal call); with
        whether the caller should start a background check (`check`)."""
        entry = self._entries.get(order_id)
        # 0 is what migration 0011 gave every existing row, and what a worker older
        # than it leaves there: no revision to trust.
        if (entry is None or not row_revision or entry.row_revision != row_revision
                or now - entry.checked_at >= self.max_age):
            return None
        self.fresh_hits += 1
        self._entries.move_to_end(order_id)
        due = now - entry.checked_at >= self.check_after and order_id not in self._checks
        return entry.view, entry.body, due

    def get(self, order_id: str, revision: tuple[str, int], row_revision: int | None = None,
            now: float | None = None) -> tuple[m.OrderView, bytes] | None:
        """The entry, if neither the history nor the row has moved since it was
        asked; a hit confirms it at `now`.

        A moved row is a miss even when the history has not moved: a sync commits
        inside the workflow task that made the change, and the server shows that
        task's events (an update's are not even written until it completes) only
        once it completes, so for a moment the row is new and the history old."""
        entry = self._entries.get(order_id)
        if entry is None or entry.revision != revision or entry.row_revision != row_revision:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(order_id)
        if now is not None:
            entry.checked_at = now
        return entry.view, entry.body

    def check(self, order_id: str, describe: Any, now: float) -> None:
        """Run `describe()` (the order's history revision) in the background, unless
        one runs for the order already: the entry stays if the history has not moved
        (confirmed at `now`), else it goes, and so it does if the describe fails
        (it is bounded by BESPOKE_CLI_TIMEOUT, as every call OrderClient makes)."""
        import asyncio

        if order_id in self._checks:
            return

        async def run() -> None:
            try:
                revision = await describe()
            except Exception:  # noqa: BLE001 - whatever went wrong, the next read asks again
                revision = None
            finally:
                del self._checks[order_id]
            entry = self._entries.get(order_id)
            if entry is not None and revision is not None and entry.revision == revision:
                entry.checked_at = max(entry.checked_at, now)
            else:
                self.forget(order_id)

        self._checks[order_id] = asyncio.get_running_loop().create_task(run())

    def put(self, order_id: str, revision: tuple[str, int], view: m.OrderView, body: bytes,
            row_revision: int | None = None, now: float | None = None) -> None:
        self.forget(order_id)  # whatever is filed now, the older answer is superseded
        if not revision[1] or len(body) > self.max_bytes // 100:
            return  # a server that reports no history length (or a huge view): not cached
        # An entry without a time is never fresh: float("-inf") is always too old.
        self._entries[order_id] = _Entry(revision, view, body, row_revision, float("-inf") if now is None else now)
        self._bytes += len(body)
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= len(dropped.body)

    def forget(self, order_id: str) -> None:
        """Drop the order's entry (after an action through this process, or a
        check that found the history moved)."""
        old = self._entries.pop(order_id, None)
        if old is not None:
            self._bytes -= len(old.body)


@dataclasses.dataclass(slots=True)
class _Entry:
    """One cached answer: the revisions it was filed under, and when a describe
    last confirmed it (`time.monotonic()`)."""

    revision: tuple[str, int]  # the workflow's: run id, history length
    view: m.OrderView
    body: bytes  # its JSON
    row_revision: int | None  # the read model's `orders.revision`
    checked_at: float


def _view_cache(request: Request) -> ViewCache:
    state = request.app.state
    cache = getattr(state, "bespoke_view_cache", None)
    if cache is None:
        cache = state.bespoke_view_cache = ViewCache()
    return cache


def forget_view(request: Request, order_id: str) -> None:
    """After an action through this process: its next read of the order asks
    Temporal (an update that closes an order answers before its last sync)."""
    _view_cache(request).forget(order_id)


@functools.cache
def _statements() -> Any:
    """The per-request reads as Core statements built once: building a `select`
    and its `where` costs more than the indexed read itself (as in
    bespoke/api/principals.py's token lookup)."""
    from types import SimpleNamespace

    from sqlalchemy import bindparam, select

    from bespoke.store.tables import OrderRow

    by_id = OrderRow.order_id == bindparam("order_id")
    return SimpleNamespace(revision=select(OrderRow.revision).where(by_id),
                           parties=select(OrderRow.buyer, OrderRow.seller).where(by_id))


def _row_revision(engine: Any, order_id: str) -> int | None:
    with engine.connect() as connection:
        return connection.execute(_statements().revision, {"order_id": order_id}).scalar()


async def current_view(request: Request, caller: ApiCaller, order_id: str) -> tuple[m.OrderView, bytes]:
    """The order's live state with its default timeline page, and its JSON; from
    the ViewCache when the order has not changed since it was last asked."""
    import time

    cache = _view_cache(request)
    row_revision = await read_db(engine_for(request), _row_revision, order_id)
    now = time.monotonic()
    found = cache.fresh(order_id, row_revision, now)
    if found is not None:
        view, body, due = found
        if due:
            async def describe() -> tuple[str, int]:
                return await (await order_client(request)).revision(order_id)

            cache.check(order_id, describe, now)
    else:
        oc = await order_client(request)
        try:
            revision = await oc.revision(order_id)
            got = cache.get(order_id, revision, row_revision, now)
            if got is None:
                fetched = await oc.view(order_id, timeline_limit=50)
                got = fetched, fetched.model_dump_json(by_alias=True).encode()
                cache.put(order_id, revision, *got, row_revision, now)
        except CliError as err:
            raise from_cli_error(err) from None
        view, body = got
    if not may_see(caller, view):
        raise Problem("not-found", "no such order")  # never say whose it is
    return view, body


def acting_actor(caller: ApiCaller, action: str, view: m.OrderView | Parties | None,
                 on_behalf_of: str | None) -> m.Actor:
    """The actor the workflow sees for `caller` taking `action`; 403 if the
    principal's role never takes it (the workflow checks again)."""
    role = caller.role
    if on_behalf_of is not None and role is not m.Role.OPS:
        raise Problem("forbidden", "only ops may act on behalf of a party")
    if role is m.Role.OPS and on_behalf_of is None:
        if action not in OPS_ACTIONS:
            raise Problem("forbidden", f"ops takes {action} only for a party (on_behalf_of=buyer|seller|carrier)")
        return caller.actor
    party_role = m.Role(on_behalf_of) if on_behalf_of else (m.Role.CARRIER if role is m.Role.INTEGRATION else role)
    if action not in PARTY_ACTIONS.get(party_role.value, ()):
        raise Problem("forbidden", f"a {party_role.value} does not take the {action} action")
    if role in (m.Role.BUYER, m.Role.SELLER, m.Role.CARRIER):
        return caller.actor
    if view is None:
        return caller.actor
    names = {"buyer": view.buyer, "seller": view.seller, "carrier": (view.shipment or {}).get("carrier")}
    name = names[party_role.value]
    if name is None:
        raise Problem("rejected", "the order has no carrier yet")
    return m.Actor(role=role, name=caller.name, for_party=m.Actor(role=party_role, name=name))


# ----------------------------------------------------------------- reads


class OrderList(BaseModel):
    """A page of orders from the read model, newest first."""

    orders: list[m.OrderProjection]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class HistoryPage(BaseModel):
    """A page of the timeline, newest entries (as `order history --json`)."""

    order_id: str
    timeline: list[m.TimelineEntry]
    total: int
    next_before: int | None


def _cursor(row: Any) -> str:
    at = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    raw = json.dumps([at.astimezone(UTC).isoformat(), row.order_id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _uncursor(text: str) -> tuple[datetime, str]:
    try:
        at, oid = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        when = datetime.fromisoformat(at)
        if not isinstance(oid, str):
            raise ValueError
        return (when if when.tzinfo else when.replace(tzinfo=UTC)), oid
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise Problem("invalid-input", "cursor: not a cursor this API returned") from None


def _list_rows(engine: Any, caller: ApiCaller, stage: str | None, buyer: str | None, seller: str | None,
               cursor: str | None, limit: int) -> OrderList:
    from sqlalchemy import and_, or_
    from sqlmodel import Session, col, select

    from bespoke.store import ORDER_INTERNAL_COLUMNS
    from bespoke.store.tables import OrderRow

    q = select(OrderRow)
    if caller.role is m.Role.BUYER:
        q = q.where(OrderRow.buyer == caller.name)
    elif caller.role is m.Role.SELLER:
        q = q.where(OrderRow.seller == caller.name)
    for column, value in (("stage", stage), ("buyer", buyer), ("seller", seller)):
        if value is not None:
            q = q.where(getattr(OrderRow, column) == value)
    if cursor:
        at, oid = _uncursor(cursor)
        q = q.where(or_(col(OrderRow.created_at) < at, and_(col(OrderRow.created_at) == at, col(OrderRow.order_id) < oid)))
    q = q.order_by(col(OrderRow.created_at).desc(), col(OrderRow.order_id).desc()).limit(limit + 1)
    with Session(engine) as s:
        rows = list(s.exec(q))
    page = rows[:limit]
    return OrderList(orders=[m.OrderProjection.model_validate(r.model_dump(exclude=set(ORDER_INTERNAL_COLUMNS)))
                             for r in page],
                     next_cursor=_cursor(page[-1]) if len(rows) > limit else None)


Name = Annotated[str | None, Query(min_length=1, max_length=200)]


@router.get("", summary="Orders the principal may see, newest first (cursor pages)", responses=responses(*READ_ERRORS))
def list_orders(request: Request, caller: Caller, stage: m.Stage | None = None, buyer: Name = None,
                seller: Name = None, cursor: Annotated[str | None, Query(max_length=500)] = None,
                limit: Annotated[int, Query(ge=1, le=200)] = 50) -> OrderList:
    if caller.role not in (m.Role.BUYER, m.Role.SELLER, m.Role.OPS):
        raise Problem("forbidden", "carriers and integrations read the orders shipped with them by id")
    return _list_rows(engine_for(request), caller, stage.value if stage else None, buyer, seller, cursor, limit)


@router.get("/{order_id}", summary="The order's live state (as `order status --json`)",
            responses=responses(*READ_ERRORS))
async def order_status(request: Request, caller: Caller, order_id: OrderId) -> m.OrderView:
    _, body = await current_view(request, caller, order_id)
    # The JSON of an OrderView, made once per revision (see ViewCache).
    return Response(body, media_type="application/json")  # type: ignore[return-value]


@router.get("/{order_id}/history", summary="A page of the order's timeline, newest first",
            responses=responses(*READ_ERRORS))
async def order_history(request: Request, caller: Caller, order_id: OrderId,
                        limit: Annotated[int, Query(ge=1, le=500)] = 100,
                        before: Annotated[int | None, Query(ge=1, le=10**9)] = None) -> HistoryPage:
    view = await visible_view(request, caller, order_id, timeline_limit=limit, timeline_before=before)
    entries = view.timeline
    return HistoryPage(order_id=order_id, timeline=entries, total=view.timeline_total,
                       next_before=entries[0].seq if view.timeline_more and entries else None)


@router.get("/{order_id}/quote-cancel", summary="What cancelling now would cost (changes nothing)",
            responses=responses(*WRITE_ERRORS))
async def quote_cancel(request: Request, caller: Caller, order_id: OrderId,
                       by: Literal["buyer", "seller"] | None = None) -> CancellationDecision:
    from starlette.concurrency import run_in_threadpool

    from bespoke.rules import CancellationFacts, PolicyError, PolicyPin, decide_cancellation
    from bespoke.store.policies import order_policy

    await visible_view(request, caller, order_id)
    who = by or (caller.role.value if caller.role in (m.Role.BUYER, m.Role.SELLER) else "buyer")
    oc = await order_client(request)
    try:
        facts = await oc.query(order_id, "quote_facts", m.Role(who), datetime.now(UTC),
                               result_type=CancellationFacts, refusal_rejects=True)
        pinned = await oc.query(order_id, "pinned_policy", result_type=dict | None)
        pin = await oc.query(order_id, "policy_pin", result_type=dict)
    except CliError as err:
        raise from_cli_error(err) from None
    try:
        # The pinned policy (from the policy store) with the pinned plugin versions.
        policy = await run_in_threadpool(order_policy, engine_for(request), pinned, pin)
        return decide_cancellation(policy, facts, decision_id=f"{order_id}:quote", pin=PolicyPin.model_validate(pin))
    except PolicyError as err:
        raise Problem("unavailable", f"no quote for {order_id}: {err}") from None
