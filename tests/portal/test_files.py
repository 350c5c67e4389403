"""Evidence files: uploaded from the portal, checked on content, stored by sha256
under the evidence directory, recorded in the workflow as a reference (hash, name,
size, type; never the bytes), served only to the order's parties and ops."""

from __future__ import annotations

import hashlib
import re
import struct
import zlib

import pytest

from bespoke.portal.files import MAX_FILE_BYTES, evidence_dir, sniff
from tests.helpers import accept, create_order, pay, status
from tests.portal.conftest import screenshot
from tests.portal.test_orders import browser_sign_in, portal, signed_in  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("worker")


def png(width: int = 4, height: int = 3) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"\x80\x40\x20" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_types_are_told_by_content():
    assert sniff(png()[:16]) == "image/png"
    assert sniff(b"%PDF-1.7\n") == "application/pdf"
    assert sniff(b"<script>alert(1)</script>") is None
    assert sniff(b"\xff\xd8\xff\xe0") == "image/jpeg"


async def test_seller_records_a_milestone_with_a_photo(portal, page, client, task_queue, tmp_path, portal_settings):
    handle = await create_order(client, task_queue, price=500_000)
    await accept(handle)
    await pay(handle, 500_000)
    oid = handle.id.removeprefix("order-")
    photo = tmp_path / "walnut boards.png"
    photo.write_bytes(png())
    sha = hashlib.sha256(photo.read_bytes()).hexdigest()
    await browser_sign_in(page, portal, "seller:acme")
    await page.goto(f"{portal.url}/orders/{oid}")
    form = page.locator("form[data-action=milestone]")
    await form.locator("input[name=cost]").fill("900.00")
    await form.locator("input[type=file]").set_input_files(str(photo))
    await form.locator("button").click()
    await page.wait_for_selector("[data-testid=notice]")
    # The workflow holds the reference, not the bytes.
    note = (await status(handle)).milestones[-1].note
    assert note == f"photo sha256:{sha} walnut boards.png ({len(png())} bytes, image/png)"
    stored = evidence_dir(portal_settings) / sha[:2] / sha
    assert stored.read_bytes() == png()
    await page.click("[data-testid=files] a")
    assert page.url.endswith(f"/files/{sha}")
    await page.go_back()
    await screenshot(page, "seller-milestone-photo")
    # The buyer may fetch it; another buyer may not; nor a hash the order does not name.
    alice, bob = await signed_in(portal, "buyer:alice"), await signed_in(portal, "buyer:bob")
    try:
        r = await alice.get(f"/orders/{oid}/files/{sha}")
        assert r.status_code == 200 and r.content == png() and r.headers["content-type"] == "image/png"
        assert "sandbox" in r.headers["content-security-policy"]
        assert (await bob.get(f"/orders/{oid}/files/{sha}")).status_code == 404
        assert (await alice.get(f"/orders/{oid}/files/{'0' * 64}")).status_code == 404
    finally:
        await alice.aclose()
        await bob.aclose()


async def test_an_upload_that_is_not_an_image_or_pdf_or_too_big_is_refused(portal, client, task_queue):
    handle = await create_order(client, task_queue, price=500_000)
    await accept(handle)
    await pay(handle, 500_000)
    oid = handle.id.removeprefix("order-")
    acme = await signed_in(portal, "seller:acme")
    try:
        page = await acme.get(f"/orders/{oid}")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        form = {"csrf_token": token, "milestone": "materials", "cost": "10.00"}
        r = await acme.post(f"/orders/{oid}/milestone", data=form,
                            files={"file": ("photo.png", b"<script>alert(1)</script>", "image/png")})
        assert r.status_code == 422 and "only JPEG, PNG" in r.text
        r = await acme.post(f"/orders/{oid}/milestone", data=form,
                            files={"file": ("big.png", png() + b"\0" * MAX_FILE_BYTES, "image/png")})
        assert r.status_code == 422 and "at most 10 MiB" in r.text
        assert (await status(handle)).milestones == []  # nothing recorded
    finally:
        await acme.aclose()
