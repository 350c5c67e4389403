"""Sign-in for people over real HTTP: argon2id passwords, the session cookie's
flags, CSRF on every form, sign-out, invitations, the failed-sign-in limit, and the
`bespoke portal` commands that set passwords."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx
import pytest
from sqlmodel import Session, select

from bespoke.portal import auth, signin
from bespoke.store.db import get_engine
from bespoke.store.tables import PortalPassword
from tests.portal.conftest import screenshot

PASSWORD = "correct horse battery"


@pytest.fixture
def engine_(portal_settings):
    return get_engine(portal_settings.effective_database_url)


def person(engine, who: str) -> None:
    """A principal in the API's registry, with a portal password."""
    auth.ensure_principal(engine, auth.parse_principal(who), created_by="ops:test")
    auth.set_password(engine, auth.parse_principal(who), PASSWORD, set_by="ops:olga")


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


async def _sign_in(http: httpx.AsyncClient, account: str, password: str, **headers) -> httpx.Response:
    form = await http.get("/sign-in")
    return await http.post("/sign-in", data={"account": account, "password": password, "csrf_token": _csrf(form.text)},
                           headers=headers)


async def test_password_is_stored_as_argon2id_and_signs_in_with_a_strict_cookie(http, engine_):
    person(engine_, "buyer:alice")
    with Session(engine_) as s:
        row = s.exec(select(PortalPassword)).one()
    assert row.password_hash.startswith("$argon2id$") and PASSWORD not in row.password_hash
    r = await _sign_in(http, "buyer:alice", PASSWORD)
    assert r.status_code == 303 and r.headers["location"] == signin.HOME_BY_ROLE["buyer"]
    cookie = [c for c in r.headers.get_list("set-cookie") if c.startswith("bespoke_session=")][0].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    page = await http.get("/account")
    assert "buyer:alice" in page.text


async def test_session_cookie_is_secure_over_https(http, engine_):
    person(engine_, "buyer:alice")
    # uvicorn trusts X-Forwarded-Proto from loopback, as behind a TLS proxy.
    r = await _sign_in(http, "buyer:alice", PASSWORD, **{"X-Forwarded-Proto": "https"})
    cookie = [c for c in r.headers.get_list("set-cookie") if c.startswith("bespoke_session=")][0].lower()
    assert "; secure" in cookie


async def test_a_form_without_its_csrf_token_is_refused(http, engine_):
    person(engine_, "buyer:alice")
    await http.get("/sign-in")
    r = await http.post("/sign-in", data={"account": "buyer:alice", "password": PASSWORD})
    assert r.status_code == 403 and "bespoke_session" not in r.headers.get("set-cookie", "")
    r = await http.post("/sign-in", data={"account": "buyer:alice", "password": PASSWORD, "csrf_token": "x" * 32})
    assert r.status_code == 403
    signed_in = await _sign_in(http, "buyer:alice", PASSWORD)
    assert signed_in.status_code == 303
    r = await http.post("/sign-out", data={})  # signed in: the session's own token is needed
    assert r.status_code == 403
    assert "buyer:alice" in (await http.get("/account")).text


async def test_sign_out_ends_the_session(http, engine_):
    person(engine_, "seller:acme")
    await _sign_in(http, "seller:acme", PASSWORD)
    page = await http.get("/account")
    r = await http.post("/sign-out", data={"csrf_token": _csrf(page.text)})
    assert r.status_code == 303
    assert (await http.get("/account")).status_code == 303  # back to sign-in


async def test_wrong_passwords_are_rate_limited_per_account(http, engine_):
    person(engine_, "buyer:alice")
    for _ in range(auth.MAX_FAILURES_PER_ACCOUNT):
        r = await _sign_in(http, "buyer:alice", "wrong password!")
        assert r.status_code == 401 and "wrong account or password" in r.text
    r = await _sign_in(http, "buyer:alice", PASSWORD)  # even the right one, for a while
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    person(engine_, "buyer:bob")
    assert (await _sign_in(http, "buyer:bob", PASSWORD)).status_code == 303  # other accounts are not locked


async def test_a_revoked_principal_cannot_sign_in_and_its_session_ends(http, engine_):
    from bespoke.api import principals

    with pytest.raises(auth.AuthError, match="no principal"):
        auth.set_password(engine_, auth.parse_principal("buyer:ghost"), PASSWORD, set_by="ops:olga")
    person(engine_, "buyer:alice")
    await _sign_in(http, "buyer:alice", PASSWORD)
    assert "buyer:alice" in (await http.get("/account")).text
    principals.revoke(engine_, "buyer:alice")
    assert (await http.get("/account")).status_code == 303  # signed out
    assert (await _sign_in(http, "buyer:alice", PASSWORD)).status_code == 401


async def test_unknown_account_and_wrong_password_look_the_same(http, engine_):
    person(engine_, "buyer:alice")
    a = await _sign_in(http, "buyer:nobody", PASSWORD)
    b = await _sign_in(http, "buyer:alice", "not the password")
    assert a.status_code == b.status_code == 401
    assert "wrong account or password" in a.text and "wrong account or password" in b.text


async def test_an_invitation_link_sets_a_password_once(http, engine_):
    auth.ensure_principal(engine_, auth.parse_principal("buyer:carol"), created_by="ops:test")
    token = auth.invite(engine_, auth.parse_principal("buyer:carol"), created_by="ops:olga")
    page = await http.get(f"/invite/{token}")
    assert page.status_code == 200 and "buyer:carol" in page.text
    r = await http.post(f"/invite/{token}", data={"password": "short", "again": "short", "csrf_token": _csrf(page.text)})
    assert r.status_code == 422 and "at least 10" in r.text
    r = await http.post(f"/invite/{token}", data={"password": PASSWORD, "again": PASSWORD,
                                                  "csrf_token": _csrf(page.text)})
    assert r.status_code == 303
    assert "buyer:carol" in (await http.get("/account")).text
    assert (await http.get(f"/invite/{token}")).status_code == 404  # used
    assert auth.has_password(engine_, auth.parse_principal("buyer:carol"))


def test_bespoke_portal_password_and_invite_commands(portal_settings, engine_):
    env = {**os.environ, "BESPOKE_HOME": str(portal_settings.home), "BESPOKE_DATABASE_URL":
           portal_settings.effective_database_url}
    cmd = [sys.executable, "-m", "bespoke.cli.app"]
    unknown = subprocess.run([*cmd, "portal", "password", "buyer:dave", "--as", "ops:olga", "--password-stdin"],
                             input=PASSWORD + "\n", capture_output=True, text=True, env=env, timeout=60)
    assert unknown.returncode == 2 and "no principal buyer:dave" in unknown.stderr
    auth.ensure_principal(engine_, auth.parse_principal("buyer:dave"), created_by="ops:test")
    ok = subprocess.run([*cmd, "portal", "password", "buyer:dave", "--as", "ops:olga", "--password-stdin"],
                        input=PASSWORD + "\n", capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "buyer:dave: password set"
    principal, _, _ = auth.sign_in(engine_, "buyer:dave", PASSWORD, client="test")
    assert principal.ref == "buyer:dave"
    bad = subprocess.run([*cmd, "portal", "password", "buyer:dave", "--as", "seller:acme", "--password-stdin"],
                         input=PASSWORD + "\n", capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "only ops" in bad.stderr
    auth.ensure_principal(engine_, auth.parse_principal("seller:acme"), created_by="ops:test")
    link = subprocess.run([*cmd, "portal", "invite", "seller:acme", "--as", "ops:olga", "--base-url", "http://x"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert link.returncode == 0, link.stderr
    token = link.stdout.strip().rsplit("/invite/", 1)[1]
    assert auth.invitation_for(engine_, token).ref == "seller:acme"


async def test_sign_in_in_a_browser(public_portal, page, portal_settings):
    engine = get_engine(portal_settings.effective_database_url)
    auth.ensure_principal(engine, auth.parse_principal("buyer:erin"), created_by="ops:test")
    token = auth.invite(engine, auth.parse_principal("buyer:erin"), created_by="ops:olga")
    await page.goto(f"{public_portal.url}/invite/{token}")
    await page.fill("input[name=password]", PASSWORD)
    await page.fill("input[name=again]", PASSWORD)
    await page.click("button:has-text('Set password')")
    await page.click("button:has-text('Sign out')")
    await page.click("text=Sign in")
    await page.fill("input[name=account]", "buyer:erin")
    await page.fill("input[name=password]", PASSWORD)
    await screenshot(page, "sign-in")
    await page.click("form.stack button")
    assert (await page.text_content("[data-testid=who]")).strip() == "buyer:erin"
