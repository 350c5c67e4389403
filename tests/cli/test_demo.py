"""`bespoke demo` against a real `bespoke up`: demo people whose printed passwords
sign in, and orders at the stages the portal's walk-through starts from."""

from __future__ import annotations

import re

from bespoke.portal import auth


def test_demo_creates_accounts_and_orders_and_is_safe_to_run_again(bespoke):
    out = bespoke.ok("demo").stdout
    assert "demo orders: DEMO-1001, DEMO-1002, DEMO-1003, DEMO-1004" in out
    passwords = dict(re.findall(r"^\s+(\S+:\S+)\s+(demo-\S+)$", out, re.M))
    assert set(passwords) == {"buyer:alice", "buyer:bob", "seller:acme", "ops:olga"}
    principal, _, _ = auth.sign_in(bespoke.engine, "buyer:alice", passwords["buyer:alice"], client="test")
    assert principal.ref == "buyer:alice"
    stages = {oid: bespoke.status(oid)["stage"] for oid in ("DEMO-1001", "DEMO-1002", "DEMO-1003", "DEMO-1004")}
    assert stages == {"DEMO-1001": "delivered", "DEMO-1002": "in_production", "DEMO-1003": "awaiting_deposit",
                      "DEMO-1004": "disputed"}
    again = bespoke.ok("demo").stdout
    assert "demo orders: already there" in again
    new = dict(re.findall(r"^\s+(\S+:\S+)\s+(demo-\S+)$", again, re.M))
    assert new["buyer:alice"] != passwords["buyer:alice"]  # fresh passwords each run
    assert bespoke.status("DEMO-1001")["stage"] == "delivered"
