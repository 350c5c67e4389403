"""The current principal, as a FastAPI dependency every protected route takes, so
no route can forget to authenticate (as in the FastAPI template's `deps.py`).

`Authorization: Bearer <token>`: an unknown, malformed or revoked token is a 401
at once. Failed attempts are counted per client address in a sliding window; past
the limit the client gets 429 until the window moves on. The count lives in this
process: each API replica limits on its own (put the load balancer's limit in
front for a global one). A failure is logged with the client address and the
first characters of the token's SHA-256, never the token.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bespoke.api.principals import ApiCaller, authenticate
from bespoke.api.problems import Problem

log = logging.getLogger("bespoke.api.auth")
FAILURE_WINDOW_S = 60.0
MAX_FAILURES = 20  # per client address and window
T = TypeVar("T")
_bearer = HTTPBearer(auto_error=False, description="An API token from `bespoke principal add`.")


class FailureLimiter:
    def __init__(self, limit: int = MAX_FAILURES, window: float = FAILURE_WINDOW_S) -> None:
        self.limit, self.window = limit, window
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._seen.setdefault(client, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def retry_after(self, client: str) -> int | None:
        now = time.monotonic()
        with self._lock:
            times = self._recent(client, now)
            if len(times) >= self.limit:
                return int(times[0] + self.window - now) + 1
            return None

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._seen) > 100_000:  # bounded memory under a spray of addresses
                self._seen.clear()
            self._recent(client, now).append(now)


def engine_for(request: Request) -> Any:
    """The database engine of the app's settings, looked up once per settings
    object (working out the URL resolves a path and reads the environment, which
    every request paid for)."""
    settings = settings_for(request)
    cached = getattr(request.app.state, "bespoke_engine", None)
    if cached is not None and cached[0] is settings:
        return cached[1]
    from bespoke.store.db import get_engine

    engine = get_engine(settings.effective_database_url)
    request.app.state.bespoke_engine = (settings, engine)
    return engine


async def read_db(engine: Any, read: Callable[..., T], *args: Any) -> T:
    """Run a short indexed read `read(engine, *args)` for a request. On SQLite it
    runs right here: the lookup takes tens of microseconds, while handing it to a
    thread cost more than the read, and 50 threads at once outgrew the connection
    pool, so connections were opened and closed per request. A network database
    (PostgreSQL) is read in a thread, so a slow answer never holds up the event loop."""
    if engine.dialect.name == "sqlite":
        return read(engine, *args)
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(read, engine, *args)


def settings_for(request: Request) -> Any:
    from bespoke.settings import get_settings

    return getattr(request.app.state, "bespoke_settings", None) or get_settings()


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> ApiCaller:
    limiter: FailureLimiter = request.app.state.auth_failures
    client = _client(request)
    wait = limiter.retry_after(client)
    if wait is not None:
        raise Problem("too-many-requests", f"too many failed authentications from this address; retry in {wait}s",
                      headers={"Retry-After": str(wait)})
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Problem("unauthenticated", "send Authorization: Bearer <token>",
                      headers={"WWW-Authenticate": "Bearer"})
    caller = await read_db(engine_for(request), authenticate, credentials.credentials)
    if caller is None:
        limiter.failed(client)
        tag = hashlib.sha256(credentials.credentials.encode()).hexdigest()[:8]
        log.warning("failed API authentication from %s (token hash %s…) on %s %s", client, tag,
                    request.method, request.url.path)
        raise Problem("unauthenticated", "the token is not valid (unknown or revoked)",
                      headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if caller.read_only and request.method not in ("GET", "HEAD"):
        raise Problem("forbidden", "this token may only read")
    request.state.api_principal = caller
    return caller


Caller = Annotated[ApiCaller, Depends(current_principal)]
