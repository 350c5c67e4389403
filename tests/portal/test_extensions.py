"""Extensions from the order page (policy [extensions]), against real orders on the
time-skipping server through a real uvicorn: forms only when the action is possible
now, posting the API's update payloads; the seller extends the inspection window
for the buyer; the seller asks for more production time and the buyer accepts;
a form without its CSRF token, or another buyer's, changes nothing; the seller's
reason is shown as text. (The buyer's own extension, clicked in chromium:
tests/portal/test_e2e.py.)"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.helpers import accept, pay, status
from tests.portal.test_orders import XSS, delivered, portal, signed_in  # noqa: F401  (fixture)
from tests.helpers import create_order

pytestmark = pytest.mark.usefixtures("worker")
DAY = timedelta(days=1)


def csrf(page) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def window(view):
    return {d.name: d.due_at for d in view.deadlines}["inspection_window"]


async def test_seller_extends_the_inspection_window_for_the_buyer_within_its_cap(portal, client, task_queue):
    handle = await delivered(client, task_queue)
    oid = handle.id.removeprefix("order-")
    due = window(await status(handle))
    acme, alice = await signed_in(portal, "seller:acme"), await signed_in(portal, "buyer:alice")
    try:
        page = await acme.get(f"/orders/{oid}")
        assert 'data-action="extend_inspection"' in page.text and 'max="10"' in page.text
        # Ten days left of the window: too early for the buyer's own extension.
        buyer_page = await alice.get(f"/orders/{oid}")
        assert 'data-action="extend_inspection"' not in buyer_page.text
        assert 'data-testid="extend-later"' in buyer_page.text
        # No CSRF token: refused, nothing changed.
        r = await acme.post(f"/orders/{oid}/extend_inspection", data={"days": "5"})
        assert r.status_code == 403 and window(await status(handle)) == due
        r = await acme.post(f"/orders/{oid}/extend_inspection", data={"days": "11", "csrf_token": csrf(page)})
        assert r.status_code == 409 and "at most 10 days in all" in r.text
        r = await acme.post(f"/orders/{oid}/extend_inspection", data={"days": "x", "csrf_token": csrf(page)})
        assert r.status_code == 409 and "whole number of days" in r.text
        assert window(await status(handle)) == due
        r = await acme.post(f"/orders/{oid}/extend_inspection", data={"days": "5", "reason": XSS,
                                                                       "csrf_token": csrf(page)})
        assert r.status_code == 303
        assert window(await status(handle)) == due + 5 * DAY
        after = await acme.get(r.headers["location"])
        assert "Inspection window extended." in after.text
        assert XSS not in after.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in after.text
        assert 'data-action="extend_inspection"' not in after.text  # used: the seller's one time
    finally:
        await acme.aclose()
        await alice.aclose()


async def test_seller_asks_for_more_time_and_the_buyer_accepts_from_the_page(portal, client, task_queue):
    handle = await create_order(client, task_queue, price=300_000)
    await accept(handle)
    await pay(handle, 300_000)
    oid = handle.id.removeprefix("order-")
    promised = (await status(handle)).promised_at
    acme, alice, bob = [await signed_in(portal, w) for w in ("seller:acme", "buyer:alice", "buyer:bob")]
    try:
        page = await acme.get(f"/orders/{oid}")
        assert 'data-action="ask_more_time"' in page.text
        assert 'data-action="answer_more_time"' not in (await alice.get(f"/orders/{oid}")).text
        r = await acme.post(f"/orders/{oid}/ask_more_time", data={"days": "7", "reason": f"veneer late {XSS}",
                                                                   "csrf_token": csrf(page)})
        assert r.status_code == 303
        buyer_page = await alice.get(f"/orders/{oid}")
        asked = re.search(r'data-testid="more-time-asked">([^<]*)<', buyer_page.text).group(1)
        assert asked == "7 days: veneer late &lt;script&gt;alert(1)&lt;/script&gt;"
        # Another buyer's form, with a valid token of his own: not found, nothing changed.
        r = await bob.post(f"/orders/{oid}/answer_more_time",
                           data={"answer": "accept", "csrf_token": csrf(await bob.get("/orders"))})
        assert r.status_code == 404 and (await status(handle)).promised_at == promised
        r = await alice.post(f"/orders/{oid}/answer_more_time", data={"answer": "accept",
                                                                       "csrf_token": csrf(buyer_page)})
        assert r.status_code == 303
        view = await status(handle)
        assert view.promised_at == promised + 7 * DAY
        assert 'data-action="answer_more_time"' not in (await alice.get(f"/orders/{oid}")).text
    finally:
        for h in (acme, alice, bob):
            await h.aclose()
