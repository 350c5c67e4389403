"""The README's first command with `--demo`: a real `bespoke up` serves the portal;
the demo buyer signs in with the printed password and completes an order in
Debian's chromium."""

from __future__ import annotations

import re
import signal
import subprocess
import time

from tests.portal.conftest import screenshot
from tests.processes import bespoke_command, clean_env, free_port


async def test_up_demo_gives_a_portal_where_the_demo_buyer_completes_an_order(tmp_path, page):
    port = free_port()
    env = clean_env(BESPOKE_HOME=str(tmp_path / "home"), TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
                    BESPOKE_UI_PORT=str(free_port()), BESPOKE_API_BIND=f"127.0.0.1:{port}")
    out_path = tmp_path / "up.stdout"
    with out_path.open("w") as out, (tmp_path / "up.stderr").open("w") as err:
        proc = subprocess.Popen([*bespoke_command(), "up", "--headless", "--demo"], env=env, stdout=out, stderr=err)
        try:
            deadline = time.monotonic() + 180
            while "ops:olga" not in out_path.read_text():
                assert proc.poll() is None, (tmp_path / "up.stderr").read_text()
                assert time.monotonic() < deadline, "no demo accounts printed in 180 s"
                time.sleep(0.3)
            banner = out_path.read_text()
            url = f"http://127.0.0.1:{port}"
            assert f"portal {url}/" in banner and f"{url}/sign-in" in banner
            password = re.search(r"^\s+buyer:alice\s+(\S+)$", banner, re.M).group(1)
            await page.goto(url + "/")
            await page.click("text=Sign in")
            await page.fill("input[name=account]", "buyer:alice")
            await page.fill("input[name=password]", password)
            await page.click("form.stack button")
            await page.click("text=DEMO-1001")
            await page.click("form[data-action=confirm] button")
            await page.wait_for_selector("[data-testid=notice]")
            assert (await page.text_content("[data-testid=current-stage]")).strip() == "completed"
            assert (await page.text_content("[data-testid=released]")).strip() == "11,400.00 CNY"
            await page.goto(url + "/orders/DEMO-1002")
            assert await page.locator("[data-testid=quote]").count() == 1  # live cancellation quote
            await screenshot(page, "demo-buyer-quote")
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, (tmp_path / "up.stderr").read_text()
