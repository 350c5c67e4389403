"""What every portal page shares: the Jinja2 environment (autoescaped), the
security headers, the route class that turns errors into pages, and `render`.

Pages are plain server-rendered HTML: no inline script or style (the CSP forbids
both), every form works without JavaScript, and every value from a user goes
through Jinja2's autoescape.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute

from bespoke.portal import auth, i18n
from bespoke.settings import get_settings
from bespoke.store.db import get_engine

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")

# No inline script or style anywhere: charts are inline SVG with presentation
# attributes, styles come from /portal/static/portal.css.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # every template, whatever its name
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


class PortalError(Exception):
    """A page that cannot be shown: rendered as an error page with this status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page from `template` with the request's language, principal and CSRF token."""
    lang = i18n.language_for(request)
    ctx = {
        "request": request,
        "lang": lang,
        "t": i18n.translator(lang),
        "money": i18n.money_formatter(lang),
        "when": i18n.date_formatter(lang),
        "plain_amount": i18n.plain_amount,
        "principal": getattr(request.state, "principal", None),
        "principal_links": LINKS.get(getattr(getattr(request.state, "principal", None), "role", ""), []),
        "csrf_token": getattr(request.state, "csrf_token", ""),
        "path": request.url.path,
        "query": request.url.query,
        **context,
    }
    html = env.get_template(template).render(**ctx)
    response = HTMLResponse(html, status_code=status)
    response.headers["Content-Language"] = lang
    response.headers["Vary"] = "Accept-Language, Cookie"
    response.headers["Cache-Control"] = "no-store"
    return secure(response)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return render(request, "error.html", status=status, status_code=status, message=message)


SESSION_COOKIE = "bespoke_session"
CSRF_COOKIE = "bespoke_csrf"  # before sign-in only: the sign-in form's double-submit token

LINKS: dict[str, list[tuple[str, str]]] = {
    "buyer": [("/orders", "My orders")],
    "seller": [("/orders", "My orders"), ("/seller/cash-flow", "Cash flow")],
    "ops": [("/ops", "Queues"), ("/orders", "All orders"), ("/ops/principals", "Principals"), ("/ops/import", "Import")],
}


def settings_for(request: Request) -> Any:
    """The app's settings (a test app sets its own), else the process's."""
    return getattr(request.app.state, "bespoke_settings", None) or get_settings()


def engine_for(request: Request) -> Any:
    return get_engine(settings_for(request).effective_database_url)


def _load_session(request: Request) -> bool:
    """Sets request.state.principal and csrf_token; True if a pre-sign-in CSRF
    cookie must be set on the response."""
    request.state.principal = None
    token = request.cookies.get(SESSION_COOKIE)
    found = auth.session_for(engine_for(request), token) if token else None  # no cookie: no database
    if found is not None:
        request.state.principal, request.state.csrf_token = found
        return False
    pre = request.cookies.get(CSRF_COOKIE, "")
    if 20 <= len(pre) <= 64 and pre.replace("-", "").replace("_", "").isalnum():
        request.state.csrf_token = pre
        return False
    request.state.csrf_token = secrets.token_urlsafe(24)
    return True


async def _csrf_ok(request: Request) -> bool:
    form = await request.form()
    sent = form.get("csrf_token")
    return isinstance(sent, str) and hmac.compare_digest(sent, request.state.csrf_token)


def set_cookie(request: Request, response: Response, name: str, value: str, *, max_age: int | None = None,
               samesite: str = "lax") -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite=samesite,  # type: ignore[arg-type]
                        secure=request.url.scheme == "https", path="/")


MAX_BODY = 11 * 1024 * 1024  # the largest evidence file and a form around it


def _check_body_size(request: Request) -> None:
    """Refuse a body too big before it is read (uploads are spooled otherwise)."""
    length = request.headers.get("content-length")
    if length is None:
        if request.headers.get("content-type", "").startswith("multipart/"):
            raise PortalError(411, "An upload needs a Content-Length.")
        return
    if not length.isdigit() or int(length) > MAX_BODY:
        raise PortalError(413, "That is too large: a file may have at most 10 MiB.")


class PortalRoute(APIRoute):
    """Every portal response carries the security headers; every request knows its
    signed-in principal; every form post must carry the CSRF token; a refused
    request is an HTML page, never the API's problem+json."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def portal_handler(request: Request) -> Response:
            new_csrf = False
            try:
                new_csrf = _load_session(request)
                if request.method not in ("GET", "HEAD"):
                    _check_body_size(request)
                if request.method not in ("GET", "HEAD") and not await _csrf_ok(request):
                    raise PortalError(403, "This form has expired or did not come from this site: reload the page "
                                           "and try again.")
                response = await handler(request)
            except PortalError as err:
                response = error_page(request, err.status, err.message)
            except RequestValidationError as err:
                first = err.errors()[0] if err.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "input"
                response = error_page(request, 422, f"{where}: {first.get('msg', 'invalid input')}")
            finally:
                await request.close()  # the parsed form's spooled upload files
            if new_csrf:
                set_cookie(request, response, CSRF_COOKIE, request.state.csrf_token, samesite="strict")
            return secure(response)

        return portal_handler
