"""End-to-end in Debian's chromium against a real uvicorn and real orders on the
time-skipping server (the issue's list): a buyer opens a return and the seller
stays silent; ops arbitrates a dispute from the queue, with a preview first; a
seller records a milestone."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bespoke.domain.models import DisputeInput, EvidenceInput, ReturnRequestInput, ReturnResponseInput
from bespoke.rules import find_policy
from bespoke.workflows.order import OrderWorkflow
from tests.helpers import BUYER, SELLER, accept, assert_ledger, create_order, pay, status
from tests.portal.conftest import screenshot
from tests.portal.test_orders import browser_sign_in, delivered, portal  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("worker")


async def test_buyer_opens_a_return_the_seller_stays_silent_and_the_page_shows_the_approval(
        portal, page, client, task_queue, env, engine):
    handle = await delivered(client, task_queue)
    oid = handle.id.removeprefix("order-")
    await browser_sign_in(page, portal, "buyer:alice")
    await page.goto(f"{portal.url}/orders/{oid}")
    form = page.locator("form[data-action=request_return]")
    await form.locator("select[name=reason]").select_option("defect")
    await form.locator("textarea[name=description]").fill("hinge cracked")
    await form.locator("button").click()
    await page.wait_for_selector("[data-testid=notice]")
    assert (await page.text_content("[data-testid=current-stage]")).strip() == "return_requested"
    assert "return_response" in await page.text_content("[data-testid=deadlines]")
    # The seller says nothing; the policy's return_response deadline passes.
    await env.sleep(find_policy("default").deadlines.return_response + timedelta(hours=1))
    await page.reload()
    case = await page.text_content("[data-testid=case]")
    assert "(approved)" in case
    timeline = await page.text_content("[data-testid=timeline]")
    assert "approved" in timeline and "system:timer" in timeline
    assert await page.locator("form[data-action=ship_return]").count() == 1
    await screenshot(page, "buyer-return-auto-approved")
    assert_ledger(engine, oid, closed=False)


async def test_ops_arbitrates_a_dispute_from_the_queue_after_a_preview(portal, page, client, task_queue, engine):
    handle = await delivered(client, task_queue)
    oid = handle.id.removeprefix("order-")
    await handle.execute_update(OrderWorkflow.request_return, ReturnRequestInput(
        actor=BUYER, reason="not_as_specified", description="2 cm narrower", evidence=("drawing-v3.pdf",)))
    await handle.execute_update(OrderWorkflow.respond_return,
                                ReturnResponseInput(actor=SELLER, action="reject", reason="within tolerance"))
    await handle.execute_update(OrderWorkflow.dispute, DisputeInput(actor=BUYER, claim=30_000, statement="5 mm"))
    await handle.execute_update(OrderWorkflow.evidence, EvidenceInput(actor=BUYER, items=("caliper.mp4",), final=True))
    await handle.execute_update(OrderWorkflow.evidence, EvidenceInput(actor=SELLER, items=("signed.pdf",), final=True))
    await browser_sign_in(page, portal, "ops:olga")
    await page.goto(f"{portal.url}/ops")
    row = page.locator(f"[data-testid=dispute][data-order='{oid}']")
    text = await row.text_content()
    assert "caliper.mp4" in text and "signed.pdf" in text
    await screenshot(page, "ops-queue")
    await row.locator("a").first.click()
    form = page.locator("form[data-action=arbitrate]")
    await form.locator("input[name=refund]").fill("200.00")
    await form.locator("textarea[name=note]").fill("drawers out of tolerance")
    await form.locator("button:has-text('Preview')").click()
    preview = await page.text_content("[data-testid=preview]")
    assert "200.00 CNY" in preview and "RF" in preview
    assert (await status(handle)).stage.value == "disputed"  # a preview changes nothing
    await page.locator("form[data-action=arbitrate] button:has-text('Decide')").click()
    await page.wait_for_selector("[data-testid=notice]")
    assert (await page.text_content("[data-testid=current-stage]")).strip() == "refunded"
    assert (await page.text_content("[data-testid=refunded]")).strip() == "200.00 CNY"
    view = await status(handle)
    refund = [d for d in view.decisions if d["kind"] == "refund"][-1]
    assert refund["amounts"]["refund_from_escrow"] == 20_000
    assert_ledger(engine, oid, closed=True)


async def test_seller_records_a_milestone_from_the_order_page(portal, page, client, task_queue):
    handle = await create_order(client, task_queue, price=500_000)
    await accept(handle)
    await pay(handle, 500_000)
    oid = handle.id.removeprefix("order-")
    await browser_sign_in(page, portal, "seller:acme")
    await page.goto(f"{portal.url}/orders/{oid}")
    form = page.locator("form[data-action=milestone]")
    await form.locator("select[name=milestone]").select_option("materials")
    await form.locator("input[name=cost]").fill("1250.00")
    await form.locator("input[name=note]").fill("walnut boards")
    await form.locator("button").click()
    await page.wait_for_selector("[data-testid=notice]")
    assert "materials done, cost 1,250.00 CNY: walnut boards" in await page.text_content("[data-testid=timeline]")
    view = await status(handle)
    assert view.costs_incurred == 125_000
    await screenshot(page, "seller-order")


async def test_seller_cash_flow_shows_escrow_per_order_and_its_release(portal, page, client, task_queue):
    first = await delivered(client, task_queue)
    second = await create_order(client, task_queue, price=300_000)
    await accept(second)
    await pay(second, 300_000)
    held = {h.id.removeprefix("order-"): (await status(h)).escrow for h in (first, second)}
    assert held[first.id.removeprefix("order-")] == 120_000
    await browser_sign_in(page, portal, "seller:acme")
    await page.click("text=Cash flow")
    table = await page.text_content("[data-testid=cashflow]")
    for oid in held:
        assert oid in table
    assert "1,200.00 CNY" in table and "3,000.00 CNY" in table
    assert "when the inspection window ends" in table and "estimate" in table
    assert await page.locator("[data-testid=chart] rect").count() >= 2
    totals = await page.text_content("[data-testid=totals]")
    assert sum(held.values()) == 420_000 and "4,200.00 CNY" in totals
    await screenshot(page, "seller-cash-flow")
