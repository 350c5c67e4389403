"""The self-service web portal: server-rendered pages for buyers, sellers and
operations, served by the same app as the HTTP API.

`install_portal(app)` adds the portal's routers to a FastAPI app. Pages call the
same functions the API and the CLI call; nothing here reaches past them.

    public.py   policies in plain words and the what-if calculator (no sign-in)
    signin.py   sign-in, sign-out, invitations (auth.py: passwords, sessions, rate limit)
    ops.py      ops work queues, arbitration preview; admin.py: principals, bulk import
    web.py      templates, security headers, CSRF, error pages
    i18n.py     language (Accept-Language, a switch), money and dates per language
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI


def install_portal(app: FastAPI) -> None:
    """Mount the portal's pages on `app` (the API's app, or a test app)."""
    from bespoke.portal import admin, lang, ops, orders, public, seller, signin

    app.include_router(public.router)
    app.include_router(lang.router)
    app.include_router(signin.router)
    app.include_router(ops.router)  # before orders: /orders/{id}/arbitrate/preview
    app.include_router(admin.router)
    app.include_router(orders.router)
    app.include_router(seller.router)


def create_app(settings: Any = None) -> FastAPI:
    """A FastAPI app serving only the portal (tests, and until the API's app mounts it)."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.bespoke_settings = settings
    install_portal(app)
    return app
