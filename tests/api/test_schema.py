"""Schemathesis against the API's own OpenAPI schema, served by a real uvicorn on
a free port (the time-skipping server and the real worker behind it): generated
requests to every operation, as an ops principal and as a seller, never get a
5xx, and every response matches its documented status, media type and schema."""

from __future__ import annotations

import asyncio

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bespoke.api.auth import FailureLimiter
from tests.api.conftest import bearer
from tests.api.helpers import to_shipped
from tests.portal.conftest import LiveServer

pytestmark = pytest.mark.usefixtures("worker")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 12  # per operation and principal: ~700 requests in all


def fuzz(url: str, headers: dict[str, str]) -> list[str]:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case) -> None:
            case.call_and_validate(base_url=url, headers=headers, checks=CHECKS, timeout=30)

        try:
            check()
        except Exception as err:  # noqa: BLE001 - collected, then reported together
            failures.append(f"{operation.label}: {str(err)[:800]}")
    return failures


async def test_generated_requests_never_get_a_5xx_and_match_the_schema(app, api, tokens):
    app.state.auth_failures = FailureLimiter(limit=100_000)  # generated bad tokens must not lock us out
    await to_shipped(api, tokens)  # a real order, so list and read operations return data
    server = await LiveServer(app).start()
    try:
        failures = []
        for who in ("ops:olga", "seller:acme"):
            failures += await asyncio.to_thread(fuzz, server.url, bearer(tokens[who]))
    finally:
        await server.stop()
    assert not failures, "\n\n".join(failures)
