"""Evidence files through the API: upload (type by content), the reference as a
return's evidence item, fetch by the order's parties only."""

from __future__ import annotations

import hashlib

import pytest

from tests.api.conftest import bearer
from tests.api.helpers import act, create, to_shipped
from tests.portal.test_files import png

pytestmark = pytest.mark.usefixtures("worker")


async def test_upload_then_cite_the_file_as_evidence_and_fetch_it(api, tokens):
    oid = await to_shipped(api, tokens)
    await act(api, tokens, "carrier:sf-express", oid, "deliver")
    r = await api.post(f"/api/orders/{oid}/files", headers=bearer(tokens["buyer:alice"]),
                       files={"file": ("crack.png", png(), "image/png")})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["sha256"] == hashlib.sha256(png()).hexdigest() and body["type"] == "image/png"
    assert body["ref"] == f"sha256:{body['sha256']} crack.png ({len(png())} bytes, image/png)"
    await act(api, tokens, "buyer:alice", oid, "request_return",
              {"reason": "defect", "description": "cracked", "evidence": [body["ref"]]})
    got = await api.get(f"/api/orders/{oid}/files/{body['sha256']}", headers=bearer(tokens["seller:acme"]))
    assert got.status_code == 200 and got.content == png()
    other = await api.get(f"/api/orders/{oid}/files/{body['sha256']}", headers=bearer(tokens["buyer:bob"]))
    assert other.status_code == 404 and other.headers["content-type"].startswith("application/problem+json")


async def test_a_file_that_is_not_an_image_or_pdf_is_refused(api, tokens):
    oid = await create(api, tokens)
    r = await api.post(f"/api/orders/{oid}/files", headers=bearer(tokens["seller:acme"]),
                       files={"file": ("x.png", b"<script>alert(1)</script>", "image/png")})
    assert r.status_code == 422 and "only JPEG, PNG" in r.text
    r = await api.post(f"/api/orders/{oid}/files", headers=bearer(tokens["buyer:bob"]),
                       files={"file": ("x.png", png(), "image/png")})
    assert r.status_code == 404  # not bob's order
