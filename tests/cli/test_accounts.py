"""`bespoke buyer ...` and `bespoke bank ...` end to end: credit lines and
dedicated collection accounts, against a real `bespoke up`."""

from __future__ import annotations

import uuid

from bespoke.cli.errors import EXIT_REJECTED
from tests.helpers import assert_ledger

from .conftest import Bespoke


def test_credit_line_is_set_shown_and_used_by_a_credit_order(bespoke: Bespoke) -> None:
    buyer = f"carol-{uuid.uuid4().hex[:6]}"
    account = bespoke.json("buyer", "credit", buyer, "--limit", "5000.00")
    assert (account["buyer"], account["credit_limit"], account["credit_outstanding"]) == (buyer, 500_000, 0)
    assert "negative" in bespoke.fails(EXIT_REJECTED, "buyer", "credit", buyer, "--limit", "-1.00")
    assert "decimal places" in bespoke.fails(EXIT_REJECTED, "buyer", "credit", buyer, "--limit", "1.001")

    oid = f"CRED-{uuid.uuid4().hex[:8].upper()}"
    bespoke.json("order", "create", "--id", oid, "--buyer", buyer, "--seller", "acme", "--price", "1200.00",
                 "--plan", "credit")
    assert bespoke.json("order", "accept", oid, "--as", "seller:acme")["stage"] == "in_production"
    shown = bespoke.json("buyer", "show", buyer)
    assert shown["credit_limit"] == 500_000 and shown["credit_outstanding"] == 120_000
    assert shown["frozen"] is False and shown["virtual_account"]
    human = bespoke.ok("buyer", "show", buyer).stdout
    assert "5,000.00" in human and "1,200.00" in human


def test_bank_transfers_are_matched_to_the_collection_account_order(bespoke: Bespoke) -> None:
    buyer = f"dora-{uuid.uuid4().hex[:6]}"
    oid = f"BANK-{uuid.uuid4().hex[:8].upper()}"
    bespoke.json("order", "create", "--id", oid, "--buyer", buyer, "--seller", "acme", "--price", "1000.00",
                 "--plan", "collection_account")
    bespoke.json("order", "accept", oid, "--as", "seller:acme")
    account = bespoke.json("buyer", "show", buyer)["virtual_account"]
    assert account == bespoke.json("buyer", "show", buyer)["virtual_account"]  # stable per buyer
    receive = ["bank", "receive", "--account", account]

    # Under-payment: applied, the rest stays due.
    first = bespoke.json(*receive, "--amount", "600.00", "--reference", f"{oid}-T1")
    assert (first["status"], first["order_id"]) == ("matched", oid)
    view = bespoke.status(oid)
    assert (view["stage"], view["paid"], view["amount_due"]) == ("awaiting_deposit", 60_000, 40_000)

    # Each bank reference is processed once.
    assert "already processed" in bespoke.fails(EXIT_REJECTED, *receive, "--amount", "600.00",
                                                "--reference", f"{oid}-T1")
    assert bespoke.status(oid)["paid"] == 60_000

    # Over-payment: the deposit is settled and the excess goes straight back.
    second = bespoke.json(*receive, "--amount", "500.00", "--reference", f"{oid}-T2")
    assert second["status"] == "matched" and "100.00" in second["message"]
    view = bespoke.status(oid)
    assert view["stage"] == "in_production"
    assert (view["paid"], view["refunded"], view["escrow"]) == (110_000, 10_000, 100_000)
    balances = assert_ledger(bespoke.engine, oid, closed=False)
    assert balances["escrow"] == 100_000

    # A transfer to an account with no open order is held for ops, not guessed.
    unknown = bespoke.json("bank", "receive", "--account", "NO-SUCH-ACCOUNT", "--amount", "10.00",
                           "--reference", f"{oid}-T3")
    assert (unknown["status"], unknown["order_id"]) == ("unmatched", None)
    # Nothing is open for this buyer any more either: the next transfer is unmatched too.
    late = bespoke.json(*receive, "--amount", "10.00", "--reference", f"{oid}-T4")
    assert late["status"] == "unmatched"
    assert bespoke.status(oid)["paid"] == 110_000
