"""Public pages over real HTTP (uvicorn) and in Debian's chromium: the policy in
plain words, the what-if calculator, security headers, escaping, language."""

from __future__ import annotations

import re

from bespoke.rules import find_policy
from bespoke.rules.durations import duration_words
from tests.portal.conftest import screenshot

WHATIF = "/what-if?plan=staged:30/70&price=8000.00&currency=CNY&stage=in_production&by=buyer&costs=3000&salvage=1000"


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def test_every_public_page_sends_the_security_headers(http):
    for path in ("/", "/policies", "/policies/default", "/what-if", WHATIF, "/policies/nope"):
        r = await http.get(path)
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path
        assert "unsafe-inline" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        # No inline script or style attribute the CSP would block.
        assert "<script>" not in r.text and " style=" not in r.text and "<style" not in r.text, path


async def test_policy_page_lists_every_stage_and_deadline_with_its_default_action(http):
    r = await http.get("/policies/default")
    assert r.status_code == 200
    text = _text(r.text)
    policy = find_policy("default")
    for stage in ("awaiting_acceptance", "awaiting_deposit", "in_production", "quality_check", "awaiting_balance"):
        assert f'data-stage="{stage}"' in r.text
    for name in type(policy.deadlines).model_fields:
        assert f"<code>{name}</code>" in r.text
    assert duration_words(policy.deadlines.inspection_window) in text
    assert "the return is approved" in text  # return_response's default action
    for title in ("Late delivery", "Repairs", "Disputes", "Who pays return shipping"):
        assert title in text


async def test_unknown_policy_is_a_404_page(http):
    r = await http.get("/policies/nosuch@9.9.9")
    assert r.status_code == 404 and "text/html" in r.headers["content-type"]


async def test_what_if_gives_the_rule_and_amounts(http):
    r = await http.get(WHATIF)
    assert r.status_code == 200
    text = _text(r.text)
    assert "400.00 CNY" in text and "1,900.00 CNY" in text and "R07" in text


async def test_what_if_input_is_escaped_and_refused_with_its_field(http):
    r = await http.get("/what-if", params={"plan": "full_prepayment", "price": "<script>alert(1)</script>",
                                           "stage": "in_production"})
    assert r.status_code == 422
    assert "<script>alert(1)</script>" not in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    assert "price:" in _text(r.text)


async def test_language_follows_accept_language_and_the_switch(http):
    r = await http.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert r.headers["content-language"] == "zh-CN" and "政策" in r.text
    r = await http.get("/lang/en", params={"next": "/policies"})
    assert r.status_code == 303 and r.headers["location"] == "/policies"
    assert "httponly" in r.headers["set-cookie"].lower()
    r = await http.get("/", headers={"Accept-Language": "zh-CN", "Cookie": "lang=en"})
    assert r.headers["content-language"] == "en"
    r = await http.get("/lang/en", params={"next": "//evil.example/x"})
    assert r.headers["location"] == "/"


async def test_buyer_reads_the_policy_and_tries_the_what_if_in_a_browser(public_portal, page):
    await page.goto(public_portal.url + "/")
    await page.click("text=Policies")
    await page.click("text=default")
    assert await page.locator('[data-stage="in_production"]').count() == 1
    await screenshot(page, "policy")
    await page.click("text=What-if calculator")
    await page.select_option("select[name=plan]", "staged:30/70")
    await page.fill("input[name=price]", "8000.00")
    await page.select_option("select[name=stage]", "in_production")
    await page.fill("input[name=costs]", "3000.00")
    await page.fill("input[name=salvage]", "1000.00")
    await page.click("button:has-text('Calculate')")
    await page.wait_for_selector("[data-testid=whatif-result]")
    assert (await page.text_content("[data-testid=refund]")).strip() == "400.00 CNY"
    assert (await page.text_content("[data-testid=to-seller]")).strip() == "1,900.00 CNY"
    assert "R07" in await page.text_content("[data-testid=explanation]")
    await screenshot(page, "what-if")


async def test_chinese_pages_format_amounts_and_dates_for_zh_cn(http):
    r = await http.get(WHATIF, headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    text = _text(r.text)
    assert r.headers["content-language"] == "zh-CN" and '<html lang="zh-CN">' in r.text
    assert "谁付多少" in text and "¥2,400.00" in text and "¥400.00" in text
    from datetime import UTC, datetime

    from bespoke.portal.i18n import date_formatter, money_formatter

    at = datetime(2026, 12, 2, 14, 5, tzinfo=UTC)
    assert date_formatter("zh-CN")(at) == "2026年12月2日 14:05 UTC"
    assert date_formatter("en")(at) == "2 Dec 2026, 14:05 UTC"
    assert money_formatter("zh-CN")(-120050, "CNY") == "-¥1,200.50"
    assert money_formatter("en")(120050, "CNY") == "1,200.50 CNY"
