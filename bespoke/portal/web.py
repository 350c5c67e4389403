"""What every portal page shares: the Jinja2 environment (autoescaped), the
security headers, the route class that turns errors into pages, and `render`.

Pages are plain server-rendered HTML: no inline script or style (the CSP forbids
both), every form works without JavaScript, and every value from a user goes
through Jinja2's autoescape.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute

from bespoke.portal import i18n

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
        "principal": getattr(request.state, "principal", None),
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


class PortalRoute(APIRoute):
    """Every portal response carries the security headers, and a refused request
    is an HTML page, never the API's problem+json."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def portal_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except PortalError as err:
                response = error_page(request, err.status, err.message)
            except RequestValidationError as err:
                first = err.errors()[0] if err.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "input"
                response = error_page(request, 422, f"{where}: {first.get('msg', 'invalid input')}")
            return secure(response)

        return portal_handler
