"""The language switch: a link that sets the `lang` cookie and returns to the page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from bespoke.portal.i18n import LANGUAGES
from bespoke.portal.web import PortalError, PortalRoute

router = APIRouter(route_class=PortalRoute, include_in_schema=False)


def safe_next(target: str | None) -> str:
    """A same-site path to go back to; anything else (another host, `//x`) is `/`."""
    if not target or len(target) > 500 or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/lang/{code}")
async def switch(request: Request, code: str, next: str | None = None) -> Response:
    if code not in LANGUAGES:
        raise PortalError(404, "unknown language")
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie("lang", code, max_age=365 * 86400, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")
    return response
