"""Taking an order through the API as its parties would."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.conftest import bearer


async def post(api: httpx.AsyncClient, tokens: dict[str, str], who: str, path: str, body: Any = None,
               **kw: Any) -> httpx.Response:
    return await api.post(path, json=body, headers={**bearer(tokens[who]), **kw.pop("headers", {})}, **kw)


async def act(api, tokens, who: str, order_id: str, action: str, body: Any = None, **kw: Any) -> dict[str, Any]:
    r = await post(api, tokens, who, f"/api/orders/{order_id}/{action}", body, **kw)
    assert r.status_code == 200, (action, r.status_code, r.text)
    return r.json()


async def create(api, tokens, who: str = "seller:acme", **fields: Any) -> str:
    body = {"buyer": "alice", "price": 120_000, "title": "walnut display case", **fields}
    if who.startswith("buyer:"):
        body.pop("buyer")
        body.setdefault("seller", "acme")
    r = await post(api, tokens, who, "/api/orders", body)
    assert r.status_code == 201, r.text
    return r.json()["order_id"]


async def to_shipped(api, tokens, *, price: int = 120_000) -> str:
    oid = await create(api, tokens, price=price)
    await act(api, tokens, "buyer:alice", oid, "consent")
    await act(api, tokens, "seller:acme", oid, "accept")
    await act(api, tokens, "buyer:alice", oid, "pay", {"amount": price, "currency": "CNY", "reference": f"P-{oid}"})
    for name in ("materials", "fabrication", "finishing"):
        await act(api, tokens, "seller:acme", oid, "milestone", {"milestone": name, "cost": 10_000})
    await act(api, tokens, "seller:acme", oid, "finish_production")
    await act(api, tokens, "seller:acme", oid, "quality_check", {"passed": True})
    await act(api, tokens, "seller:acme", oid, "ship", {"carrier": "sf-express", "tracking": f"SF{oid[-8:]}"})
    return oid
