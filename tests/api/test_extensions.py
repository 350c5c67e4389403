"""Party-requested extensions through the API: the seller asks for more production
time, the buyer accepts; the seller extends the inspection window; the acting
party comes from the token, and the wrong party gets a problem, nothing recorded."""

from __future__ import annotations

import pytest

from tests.api.conftest import bearer
from tests.api.helpers import act, create, post

pytestmark = pytest.mark.usefixtures("worker")


async def test_more_time_and_an_inspection_extension_through_the_api(api, tokens):
    oid = await create(api, tokens)
    await act(api, tokens, "buyer:alice", oid, "consent")
    await act(api, tokens, "seller:acme", oid, "accept")
    await act(api, tokens, "buyer:alice", oid, "pay", {"amount": 120_000, "currency": "CNY", "reference": f"P-{oid}"})
    r = await post(api, tokens, "buyer:alice", f"/api/orders/{oid}/ask_more_time",
                   {"extend_seconds": 86400, "reason": "x"})
    assert r.status_code in (403, 409) and r.headers["content-type"] == "application/problem+json"
    asked = await act(api, tokens, "seller:acme", oid, "ask_more_time",
                      {"extend_seconds": 3 * 86400, "reason": "glass late"})
    assert "3 days more production time" in asked["message"]
    answered = await act(api, tokens, "buyer:alice", oid, "answer_more_time", {"accept": True})
    assert "accepted 3 days" in answered["message"]
    view = (await api.get(f"/api/orders/{oid}", headers=bearer(tokens["buyer:alice"]))).json()
    entry = view["timeline"][-1]
    assert (entry["kind"], entry["actor"], entry["data"]["accepted"]) == ("more_time_answered", "buyer:alice", True)
