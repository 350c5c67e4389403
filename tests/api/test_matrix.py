"""Authorization matrix: every endpoint of the API's own OpenAPI schema, called
with no token, a revoked token, the wrong party's token and the right party's,
gives the documented status, and a refused call changes nothing; and the fraud
chain from issue 11 fails at its first step."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from sqlmodel import Session, select
from standardwebhooks.webhooks import Webhook

from bespoke.api import principals
from bespoke.domain.vocabulary import PARTY_ACTIONS
from bespoke.store.tables import CreditReservation, OrderRow
from tests.api.conftest import bearer
from tests.api.helpers import act, create, post, to_shipped
from tests.helpers_accounts import set_credit_limit

pytestmark = pytest.mark.usefixtures("worker")
PUBLIC = {"/api/policies", "/api/policies/{ref}"}
RIGHT = {"buyer": "buyer:alice", "seller": "seller:acme", "carrier": "carrier:sf-express", "ops": "ops:olga"}
WRONG = {"buyer:alice": "buyer:bob", "seller:acme": "seller:other", "carrier:sf-express": "carrier:yto",
         "ops:olga": "buyer:alice"}


# A well-formed body per action: a malformed one is 422 before the order is looked
# up (it says nothing about the order), so the matrix sends valid ones.
BODIES = {
    "pay": {"amount": 1000, "currency": "CNY", "reference": "M1"}, "milestone": {"milestone": "materials", "cost": 1},
    "salvage": {"value": 1}, "quality_check": {"passed": True}, "ship": {"carrier": "sf-express", "tracking": "T1"},
    "reship": {"carrier": "sf-express", "tracking": "T2"}, "remit": {"amount": 1, "reference": "R1"},
    "request_return": {"reason": "defect"}, "respond_return": {"action": "approve"}, "answer_offer": {"accept": True},
    "ship_return": {"carrier": "sf-express", "tracking": "T3"}, "receive_return": {"disposition": "scrap"},
    "evidence": {"items": ["photo"]}, "arbitrate": {"refund": 0, "note": "n"},
    "override_deadline": {"deadline": "inspection_window", "now": True, "reason": "r"},
    "ask_more_time": {"extend_seconds": 86400, "reason": "r"}, "answer_more_time": {"accept": True},
}


# The webhook the {webhook_id} routes act on: alice's (made again if a DELETE removed it).
WEBHOOK: dict[str, object] = {}


def webhook_id() -> str:
    from bespoke.domain.models import Role
    from bespoke.notifications import subscriptions

    engine = WEBHOOK["engine"]
    mine = subscriptions.list_for(engine, "buyer:alice")
    if mine:
        return mine[0].id
    return subscriptions.create(engine, principal="buyer:alice", role=Role.BUYER, url="https://hooks.example.com/x",
                                event_types=["*"], allow_loopback_http=False).subscription.id


def endpoints(app) -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item]


def right_party(method: str, path: str) -> str:
    action = path.rsplit("/", 1)[-1]
    if path.startswith("/api/webhooks"):
        return "buyer:alice"  # any principal manages its own webhooks
    if path.startswith("/api/callbacks/"):
        return "integration:bank-feed" if "bank" in path else "integration:sf-feed"
    if method == "POST" and path == "/api/orders":
        return "seller:acme"
    if "/files" in path:
        return "buyer:alice"  # either party of the order (or ops) uploads and fetches evidence files
    if method == "POST":
        role = next((r for r, acts in PARTY_ACTIONS.items() if action in acts and r != "system"), "ops")
        return RIGHT[role]
    return "buyer:alice"


def wrong_party(method: str, path: str) -> tuple[str, int]:
    """A principal that may not do this, and the status it gets."""
    if path.startswith("/api/callbacks/"):
        return "seller:acme", 403
    if path == "/api/orders":
        return "carrier:sf-express", 403  # carriers neither list nor create
    if path in ("/api/me", "/api/webhooks"):
        return "", 0
    if path.startswith("/api/webhooks/"):
        return "buyer:bob", 404  # another principal's webhook is not found
    right = right_party(method, path)
    if method == "POST" and right == "ops:olga":
        return "buyer:alice", 403  # an ops-only action
    return WRONG[right], 404  # another party's order is not found, whoever's it is


def call(api, method: str, path: str, oid: str, token: str | None, tokens: dict[str, str]):
    url = path.replace("{order_id}", oid).replace("{ref}", "default").replace("{sha}", "0" * 64)
    if "{webhook_id}" in url:
        url = url.replace("{webhook_id}", webhook_id())
    headers = bearer(token) if token else {}
    if path.startswith("/api/callbacks/") and token:
        who = right_party(method, path)
        body = json.dumps({"account": "0", "amount": 1, "currency": "CNY", "reference": f"M{uuid.uuid4().hex[:8]}"}
                          if "bank" in path else {"tracking": "NONE", "event": "in_transit"})
        msg = f"evt_{uuid.uuid4().hex}"
        now = datetime.now(UTC)
        headers.update({"content-type": "application/json", "webhook-id": msg,
                        "webhook-timestamp": str(int(now.timestamp())),
                        "webhook-signature": Webhook(tokens[f"secret:{who}"]).sign(msg, now, body)})
        return api.request(method, url, content=body, headers=headers)
    if method == "POST" and path.endswith("/files"):
        return api.request(method, url, files={"file": ("x.pdf", b"%PDF-1.7\n", "application/pdf")}, headers=headers)
    if method == "POST":
        body = ({"buyer": "alice", "price": 1000} if path == "/api/orders"
                else {"url": "https://hooks.example.com/x", "event_types": ["*"]} if path == "/api/webhooks"
                else BODIES.get(path.rsplit("/", 1)[-1], {}))
        return api.request(method, url, json=body, headers=headers)
    return api.request(method, url, headers=headers)


async def snapshot(client, oid: str, engine) -> tuple:
    """The order as the workflow itself reports it (not through the API), and the
    number of orders in the read model."""
    from bespoke.domain.names import workflow_id_for
    from bespoke.workflows.order import OrderWorkflow

    view = await client.get_workflow_handle(workflow_id_for(oid)).query(OrderWorkflow.status)
    with Session(engine) as s:
        orders = len(s.exec(select(OrderRow)).all())
    return view.stage, view.timeline_total, view.paid, view.released_to_seller, orders


async def test_every_endpoint_by_no_token_revoked_wrong_and_right_party(app, api, tokens, engine, client):
    from bespoke.api.auth import FailureLimiter

    app.state.auth_failures = FailureLimiter(limit=10_000)  # the limit has its own test; here every call counts
    WEBHOOK["engine"] = engine
    oid = await to_shipped(api, tokens)
    routes = endpoints(app)
    assert len(routes) >= 30  # every action, the reads, create, me, policies, callbacks
    before = await snapshot(client, oid, engine)
    for method, path in routes:
        r = await call(api, method, path, oid, None, tokens)
        expected = 200 if path in PUBLIC else 401
        assert r.status_code == expected, (method, path, r.status_code, r.text)
        if r.status_code >= 400:
            assert r.headers["content-type"] == "application/problem+json"
        who, status = wrong_party(method, path)
        if who and path not in PUBLIC:
            r = await call(api, method, path, oid, tokens[who], tokens)
            assert r.status_code == status, (method, path, who, r.status_code, r.text)
            assert "alice" not in r.text or who == "buyer:alice", r.text  # never another party's name
    assert await snapshot(client, oid, engine) == before
    # Revoked: the right party's own token, revoked, is refused everywhere.
    for who in {right_party(m, p) for m, p in routes}:
        principals.revoke(engine, who)
    for method, path in routes:
        if path not in PUBLIC:
            r = await call(api, method, path, oid, tokens[right_party(method, path)], tokens)
            assert r.status_code == 401, (method, path, r.status_code)
    assert await snapshot(client, oid, engine) == before
    # The right party (a new token): authorized — the outcome is the order's to decide.
    fresh = dict(tokens)
    for who in {right_party(m, p) for m, p in routes}:
        fresh[who] = principals.rotate(engine, who).token
    for method, path in routes:
        r = await call(api, method, path, oid, fresh[right_party(method, path)], fresh)
        # A file the order does not refer to is not found, even for its party.
        allowed = (200, 201, 202, 204, 409, 422) + ((404,) if "{sha}" in path else ())
        assert r.status_code in allowed, (method, path, r.status_code, r.text)
        assert r.status_code < 500


async def test_the_fraud_chain_from_the_issue_fails_at_its_first_step(api, tokens, engine):
    """A seller creates a credit order for buyer dave, accepts, ships, has a
    made-up carrier deliver it and a made-up operator release the money."""
    set_credit_limit(engine, "dave", 10_000_000)
    principals.add(engine, "buyer:dave", scopes=[], created_by="ops:test")
    oid = await create(api, tokens, buyer="dave", plan="credit", price=4_750_000)
    await act(api, tokens, "seller:acme", oid, "accept")
    view = (await api.get(f"/api/orders/{oid}", headers=bearer(tokens["seller:acme"]))).json()
    # First step: the order is only a proposal. Nothing of dave's is committed.
    assert view["stage"] == "awaiting_acceptance" and view["buyer_consented"] is False
    with Session(engine) as s:
        assert s.exec(select(CreditReservation).where(CreditReservation.buyer == "dave")).all() == []
    r = await post(api, tokens, "seller:acme", f"/api/orders/{oid}/ship", {"carrier": "totally-not-mallory",
                                                                          "tracking": "X1"})
    assert r.status_code == 409  # nothing to ship: never accepted by dave, never paid
    forged = {"Authorization": "Bearer bsk_totally-not-mallory"}
    assert (await api.post(f"/api/orders/{oid}/deliver", json={}, headers=forged)).status_code == 401
    r = await post(api, tokens, "seller:acme", f"/api/orders/{oid}/override_deadline",
                   {"deadline": "inspection_window", "now": True, "reason": "release it"})
    assert r.status_code == 403  # only ops overrides, and the seller's token says seller
    r = await post(api, tokens, "seller:acme", f"/api/orders/{oid}/deliver", {})
    assert r.status_code == 403
    view = (await api.get(f"/api/orders/{oid}", headers=bearer(tokens["ops:olga"]))).json()
    assert view["released_to_seller"] == 0 and view["paid"] == 0 and view["credit_outstanding"] == 0
