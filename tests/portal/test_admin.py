"""Ops administration pages through a real uvicorn: principal management (add with
a token and an invitation link shown once, rotate, revoke: bespoke/api/principals.py,
as `bespoke principal` uses) and bulk import (`bespoke order import`'s code, with
its per-row report, against real orders on the time-skipping server). Only ops may
use them; a form without its CSRF token changes nothing; user text is shown as text."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlmodel import Session, select

from bespoke.api import principals as p
from bespoke.portal import auth, create_app
from bespoke.settings import Settings
from bespoke.store.tables import ApiPrincipal
from tests.portal.test_orders import PASSWORD, XSS, signed_in

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
async def portal(serve, tmp_path, database_url, client, engine, task_queue):
    settings = Settings(_environ={}, home=tmp_path / "home", database_url=database_url, task_queue=task_queue)
    app = create_app(settings)
    app.state.bespoke_client = client
    for who in ("buyer:alice", "ops:olga"):
        auth.ensure_principal(engine, auth.parse_principal(who), created_by="ops:test")
        auth.set_password(engine, auth.parse_principal(who), PASSWORD, set_by="ops:test")
    return await serve(app)


def csrf(page) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def principals(engine) -> set[str]:
    with Session(engine) as s:
        return set(s.exec(select(ApiPrincipal.principal)))


async def test_admin_pages_are_for_ops_only_and_need_the_csrf_token(portal, engine):
    alice, olga = await signed_in(portal, "buyer:alice"), await signed_in(portal, "ops:olga")
    try:
        for path in ("/ops/principals", "/ops/import"):
            assert (await alice.get(path)).status_code == 403
        token = csrf(await alice.get("/orders"))
        before = principals(engine)
        r = await alice.post("/ops/principals/add", data={"principal": "ops:mallory", "csrf_token": token})
        assert r.status_code == 403 and principals(engine) == before
        r = await alice.post("/ops/principals/revoke", data={"principal": "ops:olga", "csrf_token": token})
        assert r.status_code == 403
        r = await olga.post("/ops/principals/add", data={"principal": "seller:zed"})  # no token
        assert r.status_code == 403 and principals(engine) == before
        r = await olga.post("/ops/principals/revoke", data={"principal": "buyer:alice"})
        assert r.status_code == 403 and p.list_all(engine)[0].revoked is False
        async with httpx.AsyncClient(base_url=portal.url) as anonymous:
            assert (await anonymous.get("/ops/principals")).status_code == 401
    finally:
        await alice.aclose()
        await olga.aclose()


async def test_ops_adds_a_person_with_a_token_and_invitation_shown_once_then_rotates_and_revokes(portal, engine):
    olga = await signed_in(portal, "ops:olga")
    try:
        page = await olga.get("/ops/principals")
        r = await olga.post("/ops/principals/add", data={"principal": "seller:carol", "invite": "on",
                                                         "csrf_token": csrf(page)})
        assert r.status_code == 200
        token = re.search(r'data-testid="token">([^<]+)<', r.text).group(1)
        link = re.search(r'data-testid="link">([^<]+)<', r.text).group(1)
        assert p.authenticate(engine, token).ref == "seller:carol"
        assert link.startswith(portal.url + "/invite/")
        async with httpx.AsyncClient() as anonymous:
            invite = await anonymous.get(link)
        assert invite.status_code == 200 and "seller:carol" in invite.text
        listed = await olga.get("/ops/principals")
        assert 'data-principal="seller:carol"' in listed.text and token not in listed.text  # shown once
        # The same again: refused with the registry's reason, nothing changed.
        r = await olga.post("/ops/principals/add", data={"principal": "seller:carol", "csrf_token": csrf(listed)})
        assert r.status_code == 409 and "already exists" in r.text
        r = await olga.post("/ops/principals/add", data={"principal": XSS, "csrf_token": csrf(listed)})
        assert r.status_code == 422 and XSS not in r.text and "&lt;script&gt;" in r.text
        # Rotate: a new token, the old one stops working at once.
        r = await olga.post("/ops/principals/rotate", data={"principal": "seller:carol", "csrf_token": csrf(listed)})
        rotated = re.search(r'data-testid="token">([^<]+)<', r.text).group(1)
        assert p.authenticate(engine, token) is None and p.authenticate(engine, rotated).ref == "seller:carol"
        r = await olga.post("/ops/principals/revoke", data={"principal": "seller:carol", "csrf_token": csrf(listed)})
        assert r.status_code == 303 and p.authenticate(engine, rotated) is None
        after = await olga.get(r.headers["location"])
        assert "Revoked" in after.text
    finally:
        await olga.aclose()


CSV = """order_id,buyer,seller,price,plan,title
{a},alice,acme,1200.00,full_prepayment,walnut case
{b},bob,acme,800.00,staged:30/70,oak shelf
{c},alice,acme,abc,full_prepayment,bad price
"""


async def test_bulk_import_reports_each_row_and_a_bad_file_starts_nothing(portal, client, engine):
    from bespoke.cli.order.client import OrderClient
    from bespoke.cli.errors import NotFound

    olga = await signed_in(portal, "ops:olga")
    oc = OrderClient(client, Settings(_environ={}))
    ids = {k: f"IMPWEB-{k}-{id(portal) % 100000}" for k in ("a", "b")}
    try:
        page = await olga.get("/ops/import")
        body = CSV.format(a=ids["a"], b=ids["b"], c=XSS).encode()
        r = await olga.post("/ops/import", data={"csrf_token": csrf(page)},
                            files={"file": ("orders.csv", body, "text/csv")})
        assert r.status_code == 200
        rows = dict(re.findall(r'<tr data-row="(\d)" data-status="(\w+)">', r.text))
        assert rows == {"1": "created", "2": "created", "3": "rejected"}
        assert "1 rejected" in r.text and XSS not in r.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
        assert f'href="/orders/{ids["a"]}"' in r.text
        view = await oc.view(ids["a"])
        assert view.price == 120_000 and view.buyer == "alice"
        # Again: the same orders already exist.
        r = await olga.post("/ops/import", data={"csrf_token": csrf(page)},
                            files={"file": ("orders.csv", body, "text/csv")})
        assert dict(re.findall(r'<tr data-row="(\d)" data-status="(\w+)">', r.text))["1"] == "exists"
        # A file unusable as a whole (an unknown column): a clear error, nothing started.
        bad = f"order_id,buyer,seller,price,colour\nIMPWEB-BAD-{ids['a']},alice,acme,10.00,red\n".encode()
        r = await olga.post("/ops/import", data={"csrf_token": csrf(page)},
                            files={"file": ("bad.csv", bad, "text/csv")})
        assert r.status_code == 422 and "unknown column &#39;colour&#39;" in r.text and "Nothing was imported" in r.text
        with pytest.raises(NotFound):
            await oc.view(f"IMPWEB-BAD-{ids['a']}")
        # Too large for the portal: refused before anything is read as rows.
        big = b"buyer,seller,price\n" + b"alice,acme,10.00\n" * 70_000
        r = await olga.post("/ops/import", data={"csrf_token": csrf(page)},
                            files={"file": ("big.csv", big, "text/csv")})
        assert r.status_code == 413 and "bespoke order import" in r.text
        # No CSRF token: refused, nothing started.
        r = await olga.post("/ops/import", files={"file": ("bad.csv", bad, "text/csv")})
        assert r.status_code == 403
    finally:
        await olga.aclose()
