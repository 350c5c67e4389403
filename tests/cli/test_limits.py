"""Per-order limits from the policy's [limits]: no party can pile actions or text
onto an order without bound. Each one past its limit exits 2 with one line and
changes nothing."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from bespoke.rules import BUILTIN_POLICY_DIR
from tests.cli.conftest import Bespoke

LIMITS = {
    "max_payments": 4,
    "max_milestones": 2,
    "max_salvage_records": 1,
    "max_qc_failures": 1,
    "max_evidence_items": 2,
    "max_evidence_item_length": 20,
    "max_note_length": 30,
}


def capped_policy(directory: Path) -> Path:
    """The default policy under another name, with small per-order limits."""
    text = (BUILTIN_POLICY_DIR / "default.toml").read_text()
    text = re.sub(r'(?m)^name = "default"$', 'name = "capped"', text, count=1)
    for key, value in LIMITS.items():
        text, found = re.subn(rf"(?m)^{key} = \S+", f"{key} = {value}", text, count=1)
        assert found, key
    path = directory / "capped.toml"
    path.write_text(text)
    return path


def test_each_per_order_limit_refuses_one_more_with_exit_2_and_records_nothing(bespoke: Bespoke, tmp_path: Path):
    capped_policy(tmp_path)
    cli = Bespoke(home=bespoke.home, env={**bespoke.env, "BESPOKE_POLICY_DIR": str(tmp_path)})
    oid = f"LIM-{uuid.uuid4().hex[:8]}"
    cli.ok("order", "create", "--id", oid, "--buyer", "alice", "--seller", "acme", "--price", "1000.00",
           "--plan", "staged:30/70", "--policy", "capped")
    seller, buyer = ("--as", "seller:acme"), ("--as", "buyer:alice")

    def refused(match: str, *args: str) -> None:
        before = cli.status(oid)
        line = cli.fails(2, "order", *args)
        assert match in line, line
        after = cli.status(oid)
        assert after["timeline"] == before["timeline"] and after["paid"] == before["paid"]

    cli.ok("order", "accept", oid, *seller)
    for ref in ("D1", "D2", "D3"):
        cli.ok("order", "pay", oid, *buyer, "--amount", "100.00", "--reference", ref)
    refused("31 characters long; this order's policy allows at most 30", "milestone", oid, *seller, "--milestone", "materials", "--cost", "1.00",
            "--note", "x" * 31)
    cli.ok("order", "milestone", oid, *seller, "--milestone", "materials", "--cost", "1.00")
    cli.ok("order", "milestone", oid, *seller, "--milestone", "fabrication", "--cost", "1.00")
    refused("2 milestone records", "milestone", oid, *seller, "--milestone", "finishing", "--cost", "1.00")
    cli.ok("order", "salvage", oid, *seller, "--value", "10.00")
    refused("1 salvage records", "salvage", oid, *seller, "--value", "20.00")
    cli.ok("order", "finish", oid, *seller)
    cli.ok("order", "qc", oid, *seller, "--fail")
    cli.ok("order", "finish", oid, *seller)
    refused("1 failed quality checks", "qc", oid, *seller, "--fail")
    cli.ok("order", "qc", oid, *seller, "--pass")
    cli.ok("order", "pay", oid, *buyer, "--amount", "700.00", "--reference", "B1")  # the 4th payment
    cli.ok("order", "ship", oid, *seller, "--carrier", "sf", "--tracking", "SF1")
    cli.ok("order", "deliver", oid, "--as", "carrier:sf")
    refused("21 characters long; this order's policy allows at most 20", "return", oid, *buyer, "--reason", "defect", "--evidence", "y" * 21)
    cli.ok("order", "return", oid, *buyer, "--reason", "defect", "--evidence", "photo-1")
    cli.ok("order", "respond", oid, *seller, "--action", "reject", "--reason", "looks fine")
    cli.ok("order", "dispute", oid, *buyer)
    refused("at most 2 evidence items", "evidence", oid, *buyer, "--item", "photo-2", "--item", "photo-3")
    cli.ok("order", "evidence", oid, *buyer, "--item", "photo-2")
    refused("at most 2 evidence items", "evidence", oid, *seller, "--item", "invoice")
    refused("already has 4 payments", "pay", oid, *buyer, "--amount", "1.00", "--reference", "X1")
    view = cli.status(oid)
    assert view["stage"] == "disputed" and len(view["payments"]) == 4 and len(view["milestones"]) == 2
    assert [e["item"] for e in view["open_case"]["evidence"]] == ["photo-1", "photo-2"]
