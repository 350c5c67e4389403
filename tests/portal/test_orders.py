"""Order pages against real orders on the time-skipping server, through a real
uvicorn and Debian's chromium: a buyer's list and order page, acting from the
page, authorization as the API's (another buyer's order is a 404), and user text
shown as text."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest

from bespoke.domain.models import ActorInput, MilestoneInput
from bespoke.portal import auth, create_app
from bespoke.store.db import get_engine
from bespoke.workflows.order import OrderWorkflow
from tests.helpers import SELLER, accept, assert_ledger, create_order, deliver, pay, produce, ship, status
from tests.portal.conftest import screenshot

pytestmark = pytest.mark.usefixtures("worker")
PASSWORD = "correct horse battery"
XSS = "<script>alert(1)</script>"


@pytest.fixture
async def portal(serve, portal_settings, client, engine):
    app = create_app(portal_settings)
    app.state.bespoke_client = client
    for who in ("buyer:alice", "buyer:bob", "seller:acme", "ops:olga"):
        auth.ensure_principal(engine, auth.parse_principal(who), created_by="ops:test")
        auth.set_password(engine, auth.parse_principal(who), PASSWORD, set_by="ops:test")
    return await serve(app)


async def signed_in(portal, who: str) -> httpx.AsyncClient:
    http = httpx.AsyncClient(base_url=portal.url)
    form = await http.get("/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    r = await http.post("/sign-in", data={"account": who, "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 303, r.text
    return http


async def browser_sign_in(page, portal, who: str) -> None:
    await page.goto(portal.url + "/sign-in")
    await page.fill("input[name=account]", who)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("form.stack button")


async def delivered(client, task_queue, *, note: str = "") -> str:
    handle = await create_order(client, task_queue, price=120_000)
    await accept(handle)
    await pay(handle, 120_000)
    if note:
        await handle.execute_update(OrderWorkflow.milestone,
                                    MilestoneInput(actor=SELLER, milestone="materials", cost=10_000, note=note))
    await produce(handle)
    await ship(handle)
    await deliver(handle)
    return handle


async def test_another_buyers_order_is_not_found_and_the_seller_sees_it(portal, client, task_queue):
    handle = await delivered(client, task_queue)
    oid = handle.id.removeprefix("order-")
    alice, bob, acme = [await signed_in(portal, w) for w in ("buyer:alice", "buyer:bob", "seller:acme")]
    try:
        assert (await alice.get(f"/orders/{oid}")).status_code == 200
        assert (await bob.get(f"/orders/{oid}")).status_code == 404
        assert oid not in (await bob.get("/orders")).text
        page = await acme.get(f"/orders/{oid}")
        assert page.status_code == 200 and 'data-action="confirm"' not in page.text  # the buyer's action only
        # Bob cannot act on it either, even with a valid form of his own.
        token = re.search(r'name="csrf_token" value="([^"]+)"', (await bob.get("/orders")).text).group(1)
        r = await bob.post(f"/orders/{oid}/confirm", data={"csrf_token": token})
        assert r.status_code == 404
        assert (await status(handle)).stage.value == "delivered"
        async with httpx.AsyncClient(base_url=portal.url) as anonymous:
            assert (await anonymous.get(f"/orders/{oid}")).status_code == 303  # to sign in
    finally:
        for h in (alice, bob, acme):
            await h.aclose()


async def test_buyer_extends_inspection_then_confirms_from_the_order_page_and_sees_the_release(
        portal, page, client, task_queue, engine, env):
    handle = await delivered(client, task_queue, note=XSS)
    oid = handle.id.removeprefix("order-")
    await browser_sign_in(page, portal, "buyer:alice")
    await page.click(f"text={oid}")
    assert (await page.text_content("[data-testid=current-stage]")).strip() == "delivered"
    assert "inspection_window" in await page.text_content("[data-testid=deadlines]")
    # The policy lets the buyer extend once 3 days or less are left: not yet.
    assert await page.locator("form[data-action=extend_inspection]").count() == 0
    view = await status(handle)
    due = {d.name: d.due_at for d in view.deadlines}["inspection_window"]
    await env.sleep(due - view.updated_at - timedelta(days=2))
    await page.reload()
    await page.click("form[data-action=extend_inspection] button")
    await page.wait_for_selector("[data-testid=notice]")
    moved = due + timedelta(days=3)
    row = await page.text_content("[data-testid=deadlines] tr:has-text('inspection_window')")
    assert f"{moved.day} {moved:%b %Y, %H:%M} UTC" in row, row
    assert {d.name: d.due_at for d in (await status(handle)).deadlines}["inspection_window"] == moved
    assert await page.locator("form[data-action=extend_inspection]").count() == 0  # once
    # The seller's note is shown as text, never run.
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    assert XSS in await page.text_content("[data-testid=timeline]")
    await screenshot(page, "buyer-order-delivered")
    await page.click("form[data-action=confirm] button")
    await page.wait_for_selector("[data-testid=notice]")
    assert (await page.text_content("[data-testid=current-stage]")).strip() == "completed"
    assert (await page.text_content("[data-testid=released]")).strip() == "1,140.00 CNY"  # 1,200.00 less the 5 % fee
    assert "Settlement" in await page.text_content("[data-testid=explanation]")
    await screenshot(page, "buyer-order")
    assert dialogs == []
    assert (await status(handle)).stage.value == "completed"
    assert_ledger(engine, oid, closed=False)


async def test_a_refused_action_shows_the_workflows_reason_and_changes_nothing(portal, client, task_queue):
    handle = await delivered(client, task_queue)
    oid = handle.id.removeprefix("order-")
    acme = await signed_in(portal, "seller:acme")
    try:
        page = await acme.get(f"/orders/{oid}")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        r = await acme.post(f"/orders/{oid}/confirm", data={"csrf_token": token})  # not the seller's to do
        assert r.status_code == 409 and "rejected" in r.text
        assert (await status(handle)).stage.value == "delivered"
    finally:
        await acme.aclose()
