"""An order from creation to completion through the API, with its parties'
tokens, on the time-skipping server and the real worker; lists scoped to the
principal with cursor pages; history pages; the cancellation quote; and
Idempotency-Key retries."""

from __future__ import annotations

import pytest

from tests.api.conftest import bearer
from tests.api.helpers import act, create, post, to_shipped
from tests.helpers import assert_ledger

pytestmark = pytest.mark.usefixtures("worker")


async def test_order_from_creation_to_completion_through_the_api(api, tokens, engine):
    oid = await to_shipped(api, tokens)
    assert (await act(api, tokens, "carrier:sf-express", oid, "deliver"))["stage"] == "delivered"
    done = await act(api, tokens, "buyer:alice", oid, "confirm")
    assert done["stage"] == "completed"
    r = await api.get(f"/api/orders/{oid}", headers=bearer(tokens["buyer:alice"]))
    view = r.json()
    assert r.status_code == 200 and view["stage"] == "completed" and view["paid"] == 120_000
    assert view["released_to_seller"] + view["platform_fee"] == 120_000
    # The timeline names each principal as the actor: the token, not the body, said who.
    actors = {e["kind"]: e["actor"] for e in view["timeline"]}
    assert actors["accepted"] == "seller:acme" and actors["delivered"] == "carrier:sf-express"
    assert actors["confirmed"] == "buyer:alice"
    assert_ledger(engine, oid, closed=True)


async def test_the_actor_cannot_be_named_in_the_body(api, tokens):
    oid = await create(api, tokens)
    r = await post(api, tokens, "seller:acme", f"/api/orders/{oid}/accept", {"actor": {"role": "ops", "name": "x"}})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    r = await post(api, tokens, "seller:acme", "/api/orders", {"buyer": "alice", "seller": "other", "price": 100})
    assert r.status_code == 422 and "leave seller out" in r.json()["detail"]


async def test_lists_are_scoped_to_the_principal_and_paged_by_cursor(api, tokens):
    mine = [await create(api, tokens, price=10_000 + i) for i in range(3)]
    theirs = await create(api, tokens, "seller:other", price=10_000)
    await projected(api, tokens, 4)
    seen, cursor = [], None
    while True:
        r = await api.get("/api/orders", params={"limit": 2, **({"cursor": cursor} if cursor else {})},
                          headers=bearer(tokens["seller:acme"]))
        assert r.status_code == 200, r.text
        seen += [o["order_id"] for o in r.json()["orders"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(mine) and len(seen) == 3  # no duplicates across pages, none of theirs
    r = await api.get("/api/orders", params={"stage": "awaiting_acceptance"}, headers=bearer(tokens["ops:olga"]))
    assert {o["order_id"] for o in r.json()["orders"]} == {*mine, theirs}
    r = await api.get("/api/orders", params={"seller": "other"}, headers=bearer(tokens["seller:acme"]))
    assert r.json()["orders"] == []  # a filter never widens the scope
    r = await api.get("/api/orders", params={"cursor": "not-a-cursor"}, headers=bearer(tokens["ops:olga"]))
    assert r.status_code == 422 and r.json()["type"] == "urn:bespoke:problem:invalid-input"
    r = await api.get("/api/orders", params={"stage": "nonsense"}, headers=bearer(tokens["ops:olga"]))
    assert r.status_code == 422


async def projected(api, tokens, count: int) -> None:
    """Wait (bounded) until the worker's projection activity has written `count` orders."""
    import asyncio

    for _ in range(200):
        r = await api.get("/api/orders", headers=bearer(tokens["ops:olga"]))
        if len(r.json()["orders"]) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the read model never had {count} orders")


async def test_history_pages_and_cancellation_quote(api, tokens):
    oid = await create(api, tokens)
    await act(api, tokens, "buyer:alice", oid, "consent")
    await act(api, tokens, "seller:acme", oid, "accept")
    alice = bearer(tokens["buyer:alice"])
    page = (await api.get(f"/api/orders/{oid}/history", params={"limit": 1}, headers=alice)).json()
    assert len(page["timeline"]) == 1 and page["total"] >= 3 and page["next_before"] == page["timeline"][0]["seq"]
    older = (await api.get(f"/api/orders/{oid}/history", params={"limit": 1, "before": page["next_before"]},
                           headers=alice)).json()
    assert older["timeline"][0]["seq"] < page["timeline"][0]["seq"]
    quote = await api.get(f"/api/orders/{oid}/quote-cancel", headers=alice)
    assert quote.status_code == 200 and quote.json()["explanation"]
    r = await api.get(f"/api/orders/{oid}", headers=alice)
    assert r.json()["stage"] == "awaiting_deposit"  # the quote changed nothing


async def test_a_retried_post_with_the_same_idempotency_key_changes_nothing(api, tokens):
    oid = await create(api, tokens)
    await act(api, tokens, "buyer:alice", oid, "consent")
    await act(api, tokens, "seller:acme", oid, "accept")
    body = {"amount": 50_000, "currency": "CNY", "reference": "P-once"}
    key = {"Idempotency-Key": "pay-1"}
    first = await post(api, tokens, "buyer:alice", f"/api/orders/{oid}/pay", body, headers=key)
    again = await post(api, tokens, "buyer:alice", f"/api/orders/{oid}/pay", body, headers=key)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    other = await post(api, tokens, "buyer:alice", f"/api/orders/{oid}/pay", {**body, "amount": 1}, headers=key)
    assert other.status_code == 422
    view = (await api.get(f"/api/orders/{oid}", headers=bearer(tokens["buyer:alice"]))).json()
    assert view["paid"] == 50_000 and len(view["payments"]) == 1
    # Create is idempotent too: one order for two identical requests.
    order = {"buyer": "alice", "price": 5_000}
    a = await post(api, tokens, "seller:acme", "/api/orders", order, headers={"Idempotency-Key": "new-1"})
    b = await post(api, tokens, "seller:acme", "/api/orders", order, headers={"Idempotency-Key": "new-1"})
    assert a.status_code == b.status_code == 201 and a.json()["order_id"] == b.json()["order_id"]
