"""Sign-in, sign-out and invitation pages."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from bespoke.portal import auth
from bespoke.portal.lang import safe_next
from bespoke.portal.web import SESSION_COOKIE, PortalError, PortalRoute, engine_for, render, set_cookie

router = APIRouter(route_class=PortalRoute, include_in_schema=False)

# Each role's start page (the order pages replace /account as they land).
HOME_BY_ROLE = {"buyer": "/orders", "seller": "/orders", "ops": "/orders"}


def _signed_in(request: Request, principal: auth.Principal, token: str, target: str | None) -> Response:
    response = RedirectResponse(safe_next(target) if target else HOME_BY_ROLE[principal.role], status_code=303)
    set_cookie(request, response, SESSION_COOKIE, token, max_age=int(auth.SESSION_LIFETIME.total_seconds()))
    return response


@router.get("/sign-in")
async def sign_in_form(request: Request, next: str | None = None) -> Response:
    return render(request, "signin.html", error=None, account="", next=safe_next(next) if next else "")


@router.post("/sign-in")
async def sign_in(request: Request, account: str = Form("", max_length=300), password: str = Form("", max_length=1000),
                  next: str = Form("", max_length=500)) -> Response:
    client = request.client.host if request.client else "unknown"
    try:
        principal, token, _ = auth.sign_in(engine_for(request), account, password, client=client)
    except auth.RateLimited as err:
        response = render(request, "signin.html", status=429, error=str(err), account=account, next=next)
        response.headers["Retry-After"] = str(err.retry_after)
        return response
    except auth.AuthError as err:
        return render(request, "signin.html", status=401, error=str(err), account=account, next=next)
    return _signed_in(request, principal, token, next or None)


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    auth.sign_out(engine_for(request), request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/invite/{token}")
async def invitation(request: Request, token: str) -> Response:
    try:
        principal = auth.invitation_for(engine_for(request), token)
    except auth.AuthError as err:
        raise PortalError(404, str(err)) from None
    return render(request, "invite.html", invited=principal, token=token, error=None)


@router.post("/invite/{token}")
async def accept_invitation(request: Request, token: str, password: str = Form("", max_length=1000),
                            again: str = Form("", max_length=1000)) -> Response:
    engine = engine_for(request)
    try:
        principal = auth.invitation_for(engine, token)
        if password != again:
            raise auth.AuthError("the two passwords differ")
        auth.accept_invitation(engine, token, password)
        _, session, _ = auth.sign_in(engine, principal.ref, password,
                                     client=request.client.host if request.client else "unknown")
    except auth.AuthError as err:
        try:
            invited = auth.invitation_for(engine, token)
        except auth.AuthError:
            raise PortalError(404, str(err)) from None
        return render(request, "invite.html", status=422, invited=invited, token=token, error=str(err))
    return _signed_in(request, principal, session, None)


@router.get("/account")
async def account(request: Request) -> Response:
    principal = request.state.principal
    if principal is None:
        return RedirectResponse("/sign-in?next=/account", status_code=303)
    return render(request, "account.html")
