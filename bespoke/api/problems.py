"""RFC 9457 problem details: every error the API returns.

Each contract error has a stable `type` (a URN: scripts match on it), a short
`title`, the HTTP status and a one-line `detail`. No stack trace, no exception
text of ours that could name another party: a detail is either our own message
(written not to) or a generic line.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("bespoke.api")
MEDIA_TYPE = "application/problem+json"
BASE = "urn:bespoke:problem:"

# type slug -> (status, title). The statuses follow the CLI's exit codes: 2 -> 409
# (not allowed now) or 422 (bad input), 3 -> 404, 4 -> 503.
TYPES: dict[str, tuple[int, str]] = {
    "unauthenticated": (401, "Authentication required"),
    "forbidden": (403, "Not allowed for this principal"),
    "not-found": (404, "Not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "rejected": (409, "Rejected: not allowed now"),
    "idempotency-conflict": (409, "Idempotency key in use"),
    "replayed": (409, "Event already received"),
    "invalid-input": (422, "Invalid input"),
    "too-many-requests": (429, "Too many failed authentications"),
    "unavailable": (503, "Order service unavailable"),
    "internal": (500, "Internal error"),
}


class ProblemDetail(BaseModel):
    """An error (RFC 9457)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


class Problem(Exception):
    def __init__(self, slug: str, detail: str, *, headers: dict[str, str] | None = None,
                 errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.slug, self.detail, self.headers, self.errors = slug, detail[:1000], headers, errors

    @property
    def status(self) -> int:
        return TYPES[self.slug][0]

    def body(self) -> dict[str, Any]:
        status, title = TYPES[self.slug]
        out: dict[str, Any] = {"type": BASE + self.slug, "title": title, "status": status, "detail": self.detail}
        if self.errors:
            out["errors"] = self.errors
        return out

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers, media_type=MEDIA_TYPE)


def responses(*slugs: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a route that may fail with these problems."""
    out: dict[int | str, dict[str, Any]] = {}
    for slug in slugs:
        status, title = TYPES[slug]
        out.setdefault(status, {"model": ProblemDetail, "description": title,
                                "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetail"}}}})
    return out


def from_cli_error(err: Exception) -> Problem:
    """The problem for a CLI contract error (the one mapping of Temporal failures)."""
    from bespoke.cli.errors import NotFound, Rejected, Unreachable

    if isinstance(err, NotFound):
        return Problem("not-found", "no such order")
    if isinstance(err, Unreachable):
        return Problem("unavailable", "the order service did not answer in time; try again")
    if isinstance(err, Rejected):
        return Problem("rejected", str(err))
    return Problem("unavailable", "the order service could not answer")


def _validation_errors(err: RequestValidationError) -> list[dict[str, Any]]:
    # The caller's own input is not echoed back (it may be large); location and message only.
    return [{"loc": [str(p) for p in e.get("loc", ())][:10], "msg": str(e.get("msg", ""))[:300]}
            for e in err.errors()[:20]]


def install(app: FastAPI, *, is_api: Any) -> None:
    """Problem+json for API paths; `is_api(request)` says which paths those are
    (the portal mounted in the same app renders its own HTML errors)."""
    previous_http = app.exception_handlers.get(StarletteHTTPException)

    async def problem(_: Request, exc: Problem) -> JSONResponse:
        return exc.response()

    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        first = errors[0] if errors else {"loc": [], "msg": "invalid input"}
        where = ".".join(p for p in first["loc"] if p not in ("body", "query", "path", "header")) or "input"
        return Problem("invalid-input", f"{where}: {first['msg']}", errors=errors).response()

    async def http_error(request: Request, exc: StarletteHTTPException) -> Any:
        if not is_api(request) and previous_http is not None:
            return await previous_http(request, exc)
        slug = {401: "unauthenticated", 403: "forbidden", 404: "not-found", 405: "method-not-allowed"}.get(
            exc.status_code, "invalid-input" if exc.status_code < 500 else "internal")
        detail = exc.detail if isinstance(exc.detail, str) and exc.status_code not in (404, 405) else TYPES[slug][1]
        return Problem(slug, detail).response()

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return Problem("internal", "an internal error occurred; it has been logged").response()

    app.add_exception_handler(Problem, problem)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, invalid)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, unexpected)
