"""Signed callbacks: a bank transfer pays a collection-account order, a carrier's
signed delivery sets the order delivered and starts the inspection window; a bad
signature, a stale timestamp and a replayed id are refused and change nothing;
an unknown account or tracking number is held for ops, never dropped."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select
from standardwebhooks.webhooks import Webhook

from bespoke.domain.accounts import virtual_account_for
from bespoke.store.tables import ApiCallbackEvent, BankTransfer
from tests.api.conftest import bearer
from tests.api.helpers import act, create, to_shipped
from tests.helpers import assert_ledger

pytestmark = pytest.mark.usefixtures("worker")
BANK = "integration:bank-feed"
FEED = "integration:sf-feed"


def signed(tokens, who: str, payload: dict, *, at: datetime | None = None, event_id: str | None = None,
           secret: str | None = None) -> dict:
    body = json.dumps(payload)
    msg_id = event_id or f"evt_{uuid.uuid4().hex}"
    when = at or datetime.now(UTC)
    signature = Webhook(secret or tokens[f"secret:{who}"]).sign(msg_id, when, body)
    return {"content": body, "headers": {**bearer(tokens[who]), "content-type": "application/json",
                                         "webhook-id": msg_id, "webhook-timestamp": str(int(when.timestamp())),
                                         "webhook-signature": signature}}


async def awaiting_deposit(api, tokens) -> str:
    oid = await create(api, tokens, plan="collection_account", price=80_000)
    await act(api, tokens, "buyer:alice", oid, "consent")
    await act(api, tokens, "seller:acme", oid, "accept")
    return oid


async def paid(api, tokens, oid) -> int:
    return (await api.get(f"/api/orders/{oid}", headers=bearer(tokens["ops:olga"]))).json()["paid"]


async def read_model_has(api, tokens, oid: str) -> None:
    import asyncio

    for _ in range(200):
        r = await api.get("/api/orders", params={"stage": "awaiting_deposit"}, headers=bearer(tokens["ops:olga"]))
        if oid in [o["order_id"] for o in r.json()["orders"]]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("never projected")


async def test_a_signed_bank_transfer_pays_the_collection_account_order(api, tokens, engine):
    oid = await awaiting_deposit(api, tokens)
    await read_model_has(api, tokens, oid)
    event = {"account": virtual_account_for("alice"), "amount": 80_000, "currency": "CNY", "reference": "BT-1"}
    r = await api.post("/api/callbacks/bank-transfers", **signed(tokens, BANK, event))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "applied" and r.json()["order_id"] == oid
    view = (await api.get(f"/api/orders/{oid}", headers=bearer(tokens["ops:olga"]))).json()
    assert view["paid"] == 80_000 and view["stage"] == "in_production"
    assert any(e["actor"] == "integration:bank-feed for system:bank" for e in view["timeline"])
    assert_ledger(engine, oid, closed=False)


async def test_bad_signature_stale_timestamp_and_replayed_id_are_refused(api, tokens, engine):
    oid = await awaiting_deposit(api, tokens)
    await read_model_has(api, tokens, oid)
    event = {"account": virtual_account_for("alice"), "amount": 80_000, "currency": "CNY", "reference": "BT-2"}
    wrong = signed(tokens, BANK, event, secret="whsec_" + "QUJD" * 11)
    r = await api.post("/api/callbacks/bank-transfers", **wrong)
    assert r.status_code == 401 and r.json()["type"] == "urn:bespoke:problem:unauthenticated"
    tampered = signed(tokens, BANK, event)
    tampered["content"] = tampered["content"].replace("80000", "8000000")
    assert (await api.post("/api/callbacks/bank-transfers", **tampered)).status_code == 401
    stale = signed(tokens, BANK, event, at=datetime.now(UTC) - timedelta(minutes=6))
    r = await api.post("/api/callbacks/bank-transfers", **stale)
    assert r.status_code == 401 and "too old" in r.json()["detail"]
    garbled = signed(tokens, BANK, event)
    garbled["headers"]["webhook-signature"] = "v1"
    assert (await api.post("/api/callbacks/bank-transfers", **garbled)).status_code == 401
    assert await paid(api, tokens, oid) == 0  # nothing refused changed anything
    with Session(engine) as s:
        assert s.exec(select(ApiCallbackEvent)).all() == [] and s.exec(select(BankTransfer)).all() == []
    good = signed(tokens, BANK, event, event_id="evt_once")
    assert (await api.post("/api/callbacks/bank-transfers", **good)).status_code == 200
    again = signed(tokens, BANK, {**event, "reference": "BT-3"}, event_id="evt_once")
    r = await api.post("/api/callbacks/bank-transfers", **again)
    assert r.status_code == 409 and r.json()["type"] == "urn:bespoke:problem:replayed"
    assert await paid(api, tokens, oid) == 80_000
    # Another integration's token with a valid signature of its own may not send bank transfers.
    r = await api.post("/api/callbacks/bank-transfers", **signed(tokens, FEED, {**event, "reference": "BT-4"}))
    assert r.status_code == 403


async def test_a_transfer_to_an_unknown_account_is_held_for_ops(api, tokens, engine):
    event = {"account": "6200000000000000000", "amount": 5_000, "currency": "CNY", "reference": "BT-lost"}
    r = await api.post("/api/callbacks/bank-transfers", **signed(tokens, BANK, event))
    assert r.status_code == 202 and r.json()["status"] == "held"
    with Session(engine) as s:
        held = s.get(BankTransfer, "BT-lost")
    assert held is not None and held.status == "held" and "no buyer has this collection account" in held.held_reason


async def test_a_signed_delivery_sets_delivered_and_starts_the_inspection_window(api, tokens, engine):
    oid = await to_shipped(api, tokens)
    tracking = f"SF{oid[-8:]}"
    await_projection = (await api.get(f"/api/orders/{oid}", headers=bearer(tokens["ops:olga"]))).json()
    assert await_projection["stage"] == "shipped"
    r = await api.post("/api/callbacks/carrier-events", **signed(tokens, FEED, {"tracking": tracking,
                                                                                "event": "in_transit"}))
    for _ in range(100):  # the read model's timeline gets the shipment entry from an activity
        if r.status_code == 200:
            break
        r = await api.post("/api/callbacks/carrier-events", **signed(tokens, FEED, {"tracking": tracking,
                                                                                    "event": "in_transit"}))
    assert r.status_code == 200 and r.json()["status"] == "noted"
    r = await api.post("/api/callbacks/carrier-events", **signed(tokens, FEED, {"tracking": tracking,
                                                                                "event": "delivered"}))
    assert r.status_code == 200 and r.json()["status"] == "applied", r.text
    view = (await api.get(f"/api/orders/{oid}", headers=bearer(tokens["buyer:alice"]))).json()
    assert view["stage"] == "delivered"
    assert "inspection_window" in [d["name"] for d in view["deadlines"]]
    assert any(e["actor"] == "integration:sf-feed for carrier:sf-express" for e in view["timeline"])
    assert_ledger(engine, oid, closed=False)


async def test_an_event_for_an_unknown_tracking_number_is_held_for_ops(api, tokens, engine):
    r = await api.post("/api/callbacks/carrier-events", **signed(tokens, FEED, {"tracking": "SF-NOPE",
                                                                                "event": "delivered"},
                                                                 event_id="evt_unknown"))
    assert r.status_code == 202 and r.json()["status"] == "held"
    with Session(engine) as s:
        row = s.get(ApiCallbackEvent, ("integration:sf-feed", "evt_unknown"))
    assert row is not None and row.status == "held" and json.loads(row.payload)["tracking"] == "SF-NOPE"
