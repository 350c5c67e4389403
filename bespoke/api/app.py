"""The HTTP API's FastAPI application: `create_app(settings)`.

Served by `bespoke up` beside the worker and alone by `bespoke api`. Stateless:
principals, idempotency keys and callback events live in the database, orders in
Temporal, so several replicas can run behind a load balancer. The portal's pages
(bespoke/portal) are mounted in the same app; the API's routes are under `/api`,
its schema at `/openapi.json` and interactive docs at `/docs`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request

from bespoke.api import problems
from bespoke.api.auth import FailureLimiter

API_PREFIXES = ("/api/", "/openapi.json", "/docs")

DESCRIPTION = """\
Made-to-order purchases as durable workflows. Every request but the public
policies carries `Authorization: Bearer <token>` (`bespoke principal add`); the
acting party is that principal, never a field of the request. Errors are RFC 9457
`application/problem+json` with a stable `type`. POSTs take an `Idempotency-Key`.
"""


def is_api(request: Request) -> bool:
    path = request.url.path
    return path == "/api" or path.startswith(API_PREFIXES)


def create_app(settings: Any = None, *, client: Any = None, portal: bool = True) -> FastAPI:
    """The API app. `settings` (default: the process's), `client`: a connected
    Temporal client to use (else one is made on first use); `portal`: mount the
    portal's pages too."""
    from bespoke.api.routes import actions, callbacks, files, orders, public, webhooks

    app = FastAPI(title="bespoke", version=_version(), description=DESCRIPTION, redoc_url=None)
    app.state.bespoke_settings = settings
    app.state.bespoke_client = client
    app.state.auth_failures = FailureLimiter()
    app.include_router(public.router)
    app.include_router(orders.router)
    app.include_router(actions.router)
    app.include_router(callbacks.router)
    app.include_router(files.router)
    app.include_router(webhooks.router)
    if portal:
        from bespoke.portal import install_portal

        install_portal(app)
    problems.install(app, is_api=is_api)
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bespoke-orders")
    except PackageNotFoundError:
        return "0"


def parse_bind(text: str) -> tuple[str, int]:
    """`host:port` (BESPOKE_API_BIND) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"BESPOKE_API_BIND must be host:port, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)
