"""Webhook subscriptions through the API: create (the secret once), list, delete,
the delivery log, redelivery; bad URLs and patterns are problem+json with nothing
stored; a principal sees only its own webhooks, and a subscription gets deliveries
only for orders its principal may see. (Deliveries themselves:
tests/notifications/test_delivery.py.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlmodel import Session, select

from bespoke.api.app import create_app
from bespoke.notifications.delivery import Outcome, RetryRule, record
from bespoke.store.tables import WebhookDelivery, WebhookSubscription
from tests.api.conftest import bearer
from tests.api.helpers import act, create, post, to_shipped
from tests.helpers import assert_ledger

pytestmark = pytest.mark.usefixtures("worker")
HOOK = "https://hooks.example.com/bespoke"
PROBLEM = "application/problem+json"


@pytest.fixture
async def api(api_settings, client, engine):
    # Plain-http loopback endpoints allowed, as tests and development set it.
    app = create_app(api_settings.model_copy(update={"webhook_allow_http_loopback": True}), client=client)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as http:
        yield http


def stored(engine) -> list[WebhookSubscription]:
    with Session(engine) as s:
        return list(s.exec(select(WebhookSubscription)))


def deliveries(engine, sub_id: str) -> list[WebhookDelivery]:
    with Session(engine) as s:
        return list(s.exec(select(WebhookDelivery).where(WebhookDelivery.subscription_id == sub_id)
                           .order_by(WebhookDelivery.event_pk)))


async def subscribe(api, tokens, who: str, types=("*",), url: str = HOOK) -> dict:
    r = await post(api, tokens, who, "/api/webhooks", {"url": url, "event_types": list(types)})
    assert r.status_code == 201, r.text
    return r.json()


async def test_a_webhook_is_created_with_its_secret_shown_once_listed_and_deleted(api, tokens, engine):
    made = await subscribe(api, tokens, "buyer:alice", ["order.*", "deadline.reminder"])
    assert made["id"].startswith("wh_") and made["secret"].startswith("whsec_") and made["enabled"]
    assert made["event_types"] == ["order.*", "deadline.reminder"]
    listed = (await api.get("/api/webhooks", headers=bearer(tokens["buyer:alice"]))).json()["webhooks"]
    assert [w["id"] for w in listed] == [made["id"]] and "secret" not in listed[0]
    assert (await api.get("/api/webhooks", headers=bearer(tokens["buyer:bob"]))).json()["webhooks"] == []
    # another principal's webhook does not exist for it
    for method, path in (("DELETE", f"/api/webhooks/{made['id']}"), ("GET", f"/api/webhooks/{made['id']}/deliveries"),
                         ("POST", f"/api/webhooks/{made['id']}/redeliver")):
        r = await api.request(method, path, headers=bearer(tokens["buyer:bob"]))
        assert r.status_code == 404 and r.headers["content-type"] == PROBLEM, (method, path, r.text)
    r = await api.delete(f"/api/webhooks/{made['id']}", headers=bearer(tokens["buyer:alice"]))
    assert r.status_code == 204 and stored(engine) == []
    assert (await api.delete("/api/webhooks/wh_gone", headers=bearer(tokens["buyer:alice"]))).status_code == 404
    assert (await api.get("/api/webhooks")).status_code == 401


async def test_a_retried_subscribe_replays_without_the_secret_which_is_never_kept(api, tokens, engine):
    from bespoke.store.tables import ApiIdempotency

    body = {"url": HOOK, "event_types": ["*"]}
    first = await post(api, tokens, "buyer:alice", "/api/webhooks", body, headers={"Idempotency-Key": "sub-1"})
    again = await post(api, tokens, "buyer:alice", "/api/webhooks", body, headers={"Idempotency-Key": "sub-1"})
    assert first.status_code == again.status_code == 201
    assert first.json()["secret"].startswith("whsec_") and again.json()["secret"] is None
    assert again.headers["Idempotent-Replayed"] == "true" and again.json()["id"] == first.json()["id"]
    assert len(stored(engine)) == 1
    with Session(engine) as s:
        kept = [row.body for row in s.exec(select(ApiIdempotency))]
    assert kept and not any(first.json()["secret"] in b for b in kept)


@pytest.mark.parametrize("body, says", [
    ({"url": "http://hooks.example.com/x", "event_types": ["*"]}, "must be https"),
    ({"url": "ftp://hooks.example.com/x", "event_types": ["*"]}, "must be https"),
    ({"url": "https://user:pw@hooks.example.com/x", "event_types": ["*"]}, "user name or password"),
    ({"url": "https://10.0.0.7/x", "event_types": ["*"]}, "internal address"),
    # address literals in forms the resolver accepts (inet_aton) and ipaddress does not parse
    ({"url": "https://127.1/x", "event_types": ["*"]}, "four decimal numbers"),
    ({"url": "https://2130706433/x", "event_types": ["*"]}, "four decimal numbers"),
    ({"url": "https://0x7f000001/x", "event_types": ["*"]}, "four decimal numbers"),
    ({"url": "https://0177.0.0.1/x", "event_types": ["*"]}, "four decimal numbers"),
    ({"url": "https:///x", "event_types": ["*"]}, "https://HOST"),
    ({"url": "https://hooks.example.com:99999/x", "event_types": ["*"]}, "not a valid URL"),
    ({"url": HOOK, "event_types": ["orders.*"]}, "unknown event type pattern"),
    ({"url": HOOK, "event_types": ["order.nope"]}, "unknown event type pattern"),
    ({"url": HOOK, "event_types": []}, "event_types"),
    ({"url": HOOK, "event_types": ["*"], "principal": "buyer:bob"}, "principal"),
    ({"url": HOOK}, "event_types"),
])
async def test_a_bad_url_or_pattern_is_a_problem_and_nothing_is_stored(api, tokens, engine, body, says):
    r = await post(api, tokens, "buyer:alice", "/api/webhooks", body)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text
    assert r.json()["type"] == "urn:bespoke:problem:invalid-input" and says in r.json()["detail"]
    assert stored(engine) == []


async def test_loopback_http_only_where_the_setting_allows_it(app, tokens, engine):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as strict:
        r = await post(strict, tokens, "buyer:alice", "/api/webhooks",
                       {"url": "http://127.0.0.1:9/hook", "event_types": ["*"]})
    assert r.status_code == 422 and "BESPOKE_WEBHOOK_ALLOW_HTTP_LOOPBACK" in r.json()["detail"]
    assert stored(engine) == []


async def test_a_buyers_webhook_never_sees_another_buyers_order(api, tokens, engine):
    alice = await subscribe(api, tokens, "buyer:alice")
    bob = await subscribe(api, tokens, "buyer:bob")
    acme = await subscribe(api, tokens, "seller:acme", ["delivery.*"])
    carrier = await subscribe(api, tokens, "carrier:sf-express")
    yto = await subscribe(api, tokens, "carrier:yto")
    ops = await subscribe(api, tokens, "ops:olga", ["decision.made"])
    oid = await to_shipped(api, tokens)
    await act(api, tokens, "carrier:sf-express", oid, "deliver")
    await act(api, tokens, "buyer:alice", oid, "confirm")
    for _ in range(200):
        if any(d.event_type == "decision.made" for d in deliveries(engine, ops["id"])):
            break
        await asyncio.sleep(0.05)
    assert_ledger(engine, oid, closed=True)
    mine = deliveries(engine, alice["id"])
    assert mine and {d.order_id for d in mine} == {oid} and mine[0].event_type == "order.created"
    assert deliveries(engine, bob["id"]) == []  # bob is not this order's buyer
    assert {d.event_type for d in deliveries(engine, acme["id"])} == {"delivery.shipped", "delivery.delivered"}
    shipped_from = [d.event_type for d in deliveries(engine, carrier["id"])]
    assert shipped_from[0] == "delivery.shipped"  # the carrier sees the order from its shipment on
    assert "order.created" not in shipped_from
    assert deliveries(engine, yto["id"]) == []  # another carrier
    assert {d.event_type for d in deliveries(engine, ops["id"])} == {"decision.made"}


async def test_the_delivery_log_pages_and_redelivery_re_enables_a_disabled_webhook(api, tokens, engine):
    made = await subscribe(api, tokens, "seller:acme")
    oid = await create(api, tokens)
    await act(api, tokens, "buyer:alice", oid, "consent")
    for _ in range(200):
        if len(deliveries(engine, made["id"])) >= 2:
            break
        await asyncio.sleep(0.05)
    rows = deliveries(engine, made["id"])
    # Every attempt fails for longer than the webhook may fail: given up, and the webhook disabled.
    later = datetime.now(UTC) + timedelta(days=4)
    with Session(engine) as s:
        sub = s.get(WebhookSubscription, made["id"])
        sub.failing_since = datetime.now(UTC)
        s.add(sub)
        s.commit()
    done = record(engine, [Outcome(rows[0].id, made["id"], False, 503, "HTTP 503")], rule=RetryRule(), now=later)
    assert (done.given_up, done.disabled) == (1, 1)
    listed = (await api.get("/api/webhooks", headers=bearer(tokens["seller:acme"]))).json()["webhooks"][0]
    assert not listed["enabled"] and "no delivery succeeded since" in listed["disabled_reason"]
    assert "HTTP 503" in listed["disabled_reason"]

    acme = bearer(tokens["seller:acme"])
    page = (await api.get(f"/api/webhooks/{made['id']}/deliveries", params={"limit": 1}, headers=acme)).json()
    assert len(page["deliveries"]) == 1 and page["next_before"] is not None
    assert all(d["status"] == "given_up" for d in page["deliveries"])
    rest = (await api.get(f"/api/webhooks/{made['id']}/deliveries", params={"before": page["next_before"]},
                          headers=acme)).json()
    assert len(page["deliveries"]) + len(rest["deliveries"]) == len(rows) and rest["next_before"] is None
    first = next(d for d in rest["deliveries"] + page["deliveries"] if d["id"] == rows[0].id)
    assert first["attempts"] == 1 and first["last_status_code"] == 503 and first["last_error"] == "HTTP 503"

    r = await post(api, tokens, "seller:acme", f"/api/webhooks/{made['id']}/redeliver", {"event_id": "nope"})
    assert r.status_code == 404
    r = await post(api, tokens, "seller:acme", f"/api/webhooks/{made['id']}/redeliver", None)
    assert r.status_code == 200 and r.json() == {"redelivered": len(rows), "enabled": True}
    assert all(d.status == "pending" for d in deliveries(engine, made["id"]))
    assert (await api.get("/api/webhooks", headers=acme)).json()["webhooks"][0]["enabled"]
    r = await post(api, tokens, "seller:acme", f"/api/webhooks/{made['id']}/redeliver",
                   {"event_id": rows[1].event_id})
    assert r.json()["redelivered"] == 1
