"""Operations' administration pages: principal management and bulk import.

Both call what the CLI calls: `bespoke principal add|list|rotate|revoke` is
bespoke/api/principals.py, `bespoke portal invite` is auth.invite, and `bespoke
order import` is bespoke/cli/order/importer.py (`parse_rows`, `validate_rows`,
`start_rows`). A new token or invitation link is shown once, in the answer to the
form that made it (never in a redirect's address, never stored)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, select

from bespoke.cli.errors import Rejected, Unreachable
from bespoke.portal import auth
from bespoke.portal.orders import order_client, require
from bespoke.portal.web import PortalError, PortalRoute, engine_for, render, settings_for
from bespoke.store.tables import PortalPassword

router = APIRouter(route_class=PortalRoute, include_in_schema=False)
PRINCIPALS_PAGE = 50
# An upload is for a batch a person checks by eye; larger files go through
# `bespoke order import` (10,000 rows and more, with a progress bar).
MAX_IMPORT_BYTES = 1024 * 1024
MAX_IMPORT_ROWS = 1_000

DONE = {"revoked": "Revoked: its token no longer works, and its portal sessions are over."}


# ----------------------------------------------------------------- principals


async def _principals_page(request: Request, *, page: int = 1, status: int = 200, error: str | None = None,
                           issued: Any = None, invitation: str | None = None, done: str | None = None) -> Response:
    from bespoke.api import principals as p

    engine = engine_for(request)
    total = p.count_all(engine)
    pages = max((total + PRINCIPALS_PAGE - 1) // PRINCIPALS_PAGE, 1)
    page = min(page, pages)
    rows = p.list_all(engine, offset=(page - 1) * PRINCIPALS_PAGE, limit=PRINCIPALS_PAGE)
    with Session(engine) as s:
        with_password = set(s.exec(select(PortalPassword.principal).where(
            col(PortalPassword.principal).in_([r.principal for r in rows])))) if rows else set()
    people = {r.value for r in auth.PEOPLE_ROLES}
    return render(request, "principals.html", status=status, rows=rows, with_password=with_password, people=people,
                  page=page, pages=pages, total=total, error=error, issued=issued, invitation=invitation,
                  done=DONE.get(done or ""))


@router.get("/ops/principals")
async def principals(request: Request, page: int = Query(default=1, ge=1, le=100_000),
                     done: str | None = None) -> Response:
    require(request, "ops")
    return await _principals_page(request, page=page, done=done)


def _field(form: Any, name: str, limit: int) -> str:
    value = form.get(name, "")
    if not isinstance(value, str) or len(value) > limit:
        raise Rejected(f"{name}: at most {limit} characters of text")
    return value.strip()


def _invitation_link(request: Request, token: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/invite/{token}"


@router.post("/ops/principals/{verb}")
async def principal_action(request: Request, verb: str) -> Response:
    """add (token shown once; with an invitation link for a person), rotate, revoke, invite."""
    from bespoke.api import principals as p

    ops = require(request, "ops")
    if verb not in ("add", "rotate", "revoke", "invite"):
        raise PortalError(404, "No such action.")
    form = await request.form()
    engine = engine_for(request)
    try:
        who = _field(form, "principal", 250)
        if verb == "add":
            scopes = _field(form, "scopes", 1000).replace(",", " ").split()
            issued = p.add(engine, who, scopes=scopes, created_by=ops.ref)
            invitation = None
            if form.get("invite") == "on" and issued.principal.split(":", 1)[0] in {r.value for r in auth.PEOPLE_ROLES}:
                invitation = _invitation_link(request, auth.invite(
                    engine, auth.parse_principal(issued.principal), created_by=ops.ref))
            return await _principals_page(request, issued=issued, invitation=invitation)
        if verb == "rotate":
            issued = p.rotate(engine, who, secret_too=form.get("secret") == "on")
            return await _principals_page(request, issued=issued)
        if verb == "revoke":
            p.revoke(engine, who)
            return RedirectResponse("/ops/principals?done=revoked", status_code=303)
        link = _invitation_link(request, auth.invite(engine, auth.parse_principal(who), created_by=ops.ref))
        return await _principals_page(request, invitation=link)
    except (p.PrincipalError, auth.AuthError, Rejected) as err:
        message = err.message if isinstance(err, Rejected) else str(err)
        return await _principals_page(request, status=409 if "exists" in message else 422,
                                      error=message.removeprefix("rejected: "))


# ----------------------------------------------------------------- bulk import


def _columns() -> tuple[str, ...]:
    from bespoke.cli.order.create import ORDER_FIELDS

    return tuple(ORDER_FIELDS)


@router.get("/ops/import")
async def import_form(request: Request) -> Response:
    require(request, "ops")
    return render(request, "import.html", columns=_columns(), report=None, counts=None, error=None,
                  max_rows=MAX_IMPORT_ROWS, max_kib=MAX_IMPORT_BYTES // 1024)


async def _read_upload(upload: Any) -> bytes:
    data = await upload.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise PortalError(413, f"That file is too large for the portal: at most {MAX_IMPORT_BYTES // 1024} KiB "
                               f"(use `bespoke order import` for larger files).")
    return data


@router.post("/ops/import")
async def import_orders(request: Request) -> Response:
    """Start one order per row of the uploaded CSV (or JSON) and report each row,
    as `bespoke order import` does. A file that cannot be read as a whole starts
    nothing; a bad row is reported and the others are imported."""
    from bespoke.cli.order.importer import import_counts, parse_rows, start_rows, validate_rows

    ops = require(request, "ops")
    form = await request.form()
    upload = form.get("file")
    ctx = {"columns": _columns(), "max_rows": MAX_IMPORT_ROWS, "max_kib": MAX_IMPORT_BYTES // 1024}
    if upload is None or isinstance(upload, str) or not upload.filename:
        return render(request, "import.html", status=422, report=None, counts=None,
                      error="Choose a CSV (or JSON) file to import.", **ctx)
    name = upload.filename[-200:]
    data = await _read_upload(upload)
    settings = settings_for(request)
    try:
        rows = parse_rows(data, name, as_json=name.lower().endswith(".json"))
        if len(rows) > MAX_IMPORT_ROWS:
            raise Rejected(f"{name}: {len(rows):,} rows; the portal takes at most {MAX_IMPORT_ROWS:,} "
                           "(use `bespoke order import` for larger files)")
        if not rows:
            raise Rejected(f"{name}: no rows under the header")
        results, pending = await asyncio.to_thread(validate_rows, settings, rows, ops.actor)
    except Rejected as err:
        return render(request, "import.html", status=422, report=None, counts=None,
                      error=err.message.removeprefix("rejected: "), **ctx)
    if pending:
        try:
            await start_rows(await order_client(request), settings, pending)
        except Unreachable as err:
            raise PortalError(503, f"The order service is not answering right now: {err}") from None
    counts = import_counts(results)
    return render(request, "import.html", status=200, report=results, counts=counts, error=None, name=name, **ctx)
