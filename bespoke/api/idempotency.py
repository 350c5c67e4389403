"""`Idempotency-Key` on POSTs: a retried request returns the first response and
changes nothing.

The first request with a key claims it (a row with status 0) before doing
anything; its response is stored when it finishes. A retry with the same key and
the same request gets that response back; with a different request (another path
or body) it is refused (422), and while the first is still running it is told to
wait (409). A 5xx is not kept: the retry does the work. Keys are per principal,
kept for KEEP_FOR.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from bespoke.api.principals import ApiCaller
from bespoke.api.problems import MEDIA_TYPE, Problem
from bespoke.store.tables import ApiIdempotency

KEEP_FOR = timedelta(days=1)
MAX_KEY = 200


async def fingerprint(request: Request) -> str:
    body = await request.body()
    h = hashlib.sha256(f"{request.method} {request.url.path}?{request.url.query}\n".encode())
    h.update(body)
    return h.hexdigest()


def _claim(engine: Any, principal: str, key: str, fp: str) -> ApiIdempotency | None:
    """None: claimed for this request; else the row of the earlier one."""
    now = datetime.now(UTC)
    with Session(engine) as s:
        existing = s.get(ApiIdempotency, (principal, key))
        if existing is not None:
            created = existing.created_at if existing.created_at.tzinfo else existing.created_at.replace(tzinfo=UTC)
            if created > now - KEEP_FOR:
                return existing
            s.delete(existing)
            s.commit()
        s.add(ApiIdempotency(principal=principal, key=key, fingerprint=fp, status=0, created_at=now))
        try:
            s.commit()
        except IntegrityError:  # raced with the same key
            s.rollback()
            return s.get(ApiIdempotency, (principal, key))
        s.exec(delete(ApiIdempotency).where(ApiIdempotency.created_at < now - KEEP_FOR))  # type: ignore[arg-type]
        s.commit()
    return None


def _finish(engine: Any, principal: str, key: str, status: int, body: str) -> None:
    with Session(engine) as s:
        row = s.get(ApiIdempotency, (principal, key))
        if row is None:
            return
        if status >= 500:
            s.delete(row)
        else:
            row.status, row.body = status, body
            s.add(row)
        s.commit()


async def idempotent(request: Request, caller: ApiCaller, key: str | None, engine: Any,
                     work: Callable[[], Awaitable[tuple[int, Any]]],
                     stored: Callable[[Any], Any] | None = None) -> Response:
    """Run `work` (-> status, JSON-able body) once per key; replay its response.
    `stored` turns the body into what is kept for replays (a secret shown once must
    not be kept, nor shown a second time)."""
    if key is None:
        status, body = await _run(work)
        return _response(status, body)
    if not key.strip() or len(key) > MAX_KEY or not key.isprintable():
        raise Problem("invalid-input", f"Idempotency-Key: 1 to {MAX_KEY} printable characters")
    fp = await fingerprint(request)
    earlier = await run_in_threadpool(_claim, engine, caller.ref, key, fp)
    if earlier is not None:
        if earlier.fingerprint != fp:
            raise Problem("invalid-input", "this Idempotency-Key was used for a different request")
        if earlier.status == 0:
            raise Problem("idempotency-conflict", "a request with this Idempotency-Key is still running; retry later",
                          headers={"Retry-After": "1"})
        response = _response(earlier.status, json.loads(earlier.body))
        response.headers["Idempotent-Replayed"] = "true"
        return response
    status, body = 500, None
    try:
        status, body = await _run(work)
    finally:
        await run_in_threadpool(_finish, engine, caller.ref, key, status,
                                json.dumps(stored(body) if stored and status < 300 else body, ensure_ascii=False)
                                if status < 500 else "")
    return _response(status, body)


async def _run(work: Callable[[], Awaitable[tuple[int, Any]]]) -> tuple[int, Any]:
    try:
        return await work()
    except Problem as problem:
        return problem.status, problem.body()


def _response(status: int, body: Any) -> Response:
    media = MEDIA_TYPE if status >= 400 else "application/json"
    return JSONResponse(body, status_code=status, media_type=media)
