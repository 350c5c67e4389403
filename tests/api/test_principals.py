"""Principals and tokens: only a hash is stored, revoke and rotate take effect at
once, the failed-authentication limit, and the CLI prints a token once."""

from __future__ import annotations

import json
import logging

import pytest
from sqlmodel import Session, select

from bespoke.api import principals
from bespoke.api.app import create_app
from bespoke.store.tables import ApiPrincipal
from tests.api.conftest import bearer


def test_only_the_tokens_sha256_is_stored_and_it_authenticates(engine):
    issued = principals.add(engine, "seller:acme", scopes=[], created_by="ops:test")
    with Session(engine) as s:
        row = s.exec(select(ApiPrincipal)).one()
    assert issued.token not in json.dumps(row.model_dump(mode="json"))
    assert row.token_sha256 == principals.token_sha256(issued.token)
    caller = principals.authenticate(engine, issued.token)
    assert caller is not None and caller.ref == "seller:acme"
    assert principals.authenticate(engine, issued.token[:-1] + ("A" if issued.token[-1] != "A" else "B")) is None


def test_revoke_and_rotate_take_effect_at_once(engine):
    first = principals.add(engine, "buyer:alice", scopes=[], created_by="ops:test").token
    second = principals.rotate(engine, "buyer:alice").token
    assert principals.authenticate(engine, first) is None
    assert principals.authenticate(engine, second) is not None
    principals.revoke(engine, "buyer:alice")
    assert principals.authenticate(engine, second) is None


@pytest.mark.parametrize("text,scopes,message", [
    ("system:bank", [], "unknown role"),
    ("buyer:", [], "ROLE:NAME"),
    ("integration:feed", [], "needs --scope"),
    ("seller:acme", ["bank"], "integration principals only"),
    ("integration:feed", ["carrier:bad name"], "unknown scope"),
])
def test_bad_principals_are_refused(engine, text, scopes, message):
    with pytest.raises(principals.PrincipalError, match=message):
        principals.add(engine, text, scopes=scopes, created_by="ops:test")
    assert principals.list_all(engine) == []


async def test_failed_authentications_are_limited_and_logged_without_the_token(api_settings, engine, caplog):
    import httpx

    app = create_app(api_settings, portal=False)
    good = principals.add(engine, "buyer:alice", scopes=[], created_by="ops:test").token
    bad = "bsk_" + "x" * 43
    caplog.set_level(logging.WARNING, logger="bespoke.api.auth")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        for _ in range(20):
            r = await http.get("/api/me", headers=bearer(bad))
            assert r.status_code == 401
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["type"] == "urn:bespoke:problem:unauthenticated"
        r = await http.get("/api/me", headers=bearer(good))  # even a good token waits now
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert r.json()["type"] == "urn:bespoke:problem:too-many-requests"
    assert len([rec for rec in caplog.records if "failed API authentication" in rec.getMessage()]) == 20
    assert bad not in caplog.text and bad[4:20] not in caplog.text


def test_cli_prints_the_token_once_and_lists_no_token(tmp_path, monkeypatch, capsys):
    from bespoke.cli.app import run

    monkeypatch.setenv("BESPOKE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("BESPOKE_DATABASE_URL", raising=False)
    from bespoke.settings import get_settings

    get_settings.cache_clear()
    assert run(["principal", "add", "integration:sf-feed", "--scope", "carrier:sf-express", "--json"]) == 0
    issued = json.loads(capsys.readouterr().out)
    assert issued["token"].startswith("bsk_") and issued["webhook_secret"].startswith("whsec_")
    assert run(["principal", "list", "--json"]) == 0
    listed = capsys.readouterr().out
    assert issued["token"] not in listed and issued["webhook_secret"] not in listed
    assert json.loads(listed)["principals"][0]["scopes"] == ["carrier:sf-express"]
    assert run(["principal", "add", "integration:sf-feed", "--scope", "bank"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert run(["principal", "revoke", "integration:sf-feed"]) == 0
    capsys.readouterr()
    assert run(["principal", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["principals"][0]["revoked"] is True
    get_settings.cache_clear()


async def test_an_email_address_is_set_with_the_principal_shown_in_its_profile_and_checked(
        tmp_path, monkeypatch, capsys, engine, api_settings):
    import httpx

    from bespoke.cli.app import run
    from bespoke.settings import get_settings

    issued = principals.add(engine, "buyer:alice", scopes=[], created_by="ops:test", email="alice@example.com")
    app = create_app(api_settings, portal=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        assert (await http.get("/api/me", headers=bearer(issued.token))).json()["email"] == "alice@example.com"
    assert principals.set_email(engine, "buyer:alice", "") is None
    for bad in ("alice", "alice@example.com\r\nBcc: x@y", "Alice <alice@example.com>", "a" * 250 + "@x.com"):
        with pytest.raises(principals.PrincipalError, match="not an email address"):
            principals.set_email(engine, "buyer:alice", bad)

    monkeypatch.setenv("BESPOKE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("BESPOKE_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        assert run(["principal", "add", "seller:acme", "--email", "orders@acme.example", "--json"]) == 0
        capsys.readouterr()
        assert run(["principal", "add", "seller:bad", "--email", "not-an-address"]) == 2
        assert "not an email address" in capsys.readouterr().err
        assert run(["principal", "set-email", "seller:acme", "sales@acme.example"]) == 0
        assert "email to sales@acme.example" in capsys.readouterr().out
        assert run(["principal", "list", "--json"]) == 0
        assert [p["email"] for p in json.loads(capsys.readouterr().out)["principals"]] == ["sales@acme.example"]
        assert run(["principal", "set-email", "seller:nobody", "a@b.example"]) == 2
        assert "no principal seller:nobody" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
