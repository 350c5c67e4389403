"""`bespoke buyer ...` and `bespoke bank ...` end to end: credit lines and
dedicated collection accounts, against a real `bespoke up`."""

from __future__ import annotations

import json
import uuid

from sqlmodel import Session, select

from bespoke.cli.errors import EXIT_REJECTED
from bespoke.store.tables import LedgerEntry
from tests.helpers import assert_ledger

from .conftest import Bespoke


def test_credit_line_is_set_shown_and_used_by_a_credit_order(bespoke: Bespoke) -> None:
    buyer = f"carol-{uuid.uuid4().hex[:6]}"
    credit = ["buyer", "credit", buyer, "--as", "ops:olga", "--reason", "annual review"]
    account = bespoke.json(*credit, "--limit", "5000.00")
    assert (account["buyer"], account["credit_limit"], account["credit_outstanding"]) == (buyer, 500_000, 0)
    assert "negative" in bespoke.fails(EXIT_REJECTED, *credit, "--limit", "-1.00")
    assert "decimal places" in bespoke.fails(EXIT_REJECTED, *credit, "--limit", "1.001")

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
    assert (unknown["status"], unknown["order_id"]) == ("held", None)
    assert unknown["reason"] == "no buyer has this collection account"
    # Nothing is due on this buyer's order any more: the next transfer is held too.
    late = bespoke.json(*receive, "--amount", "10.00", "--reference", f"{oid}-T4")
    assert late["status"] == "held" and late["reason"] == f"nothing is due now on order {oid} (in_production)"
    assert bespoke.status(oid)["paid"] == 110_000


def test_a_credit_line_needs_ops_a_reason_and_a_sane_amount_and_is_audited(bespoke: Bespoke) -> None:
    buyer = f"fay-{uuid.uuid4().hex[:6]}"
    base = ["buyer", "credit", buyer, "--limit", "100.00"]
    # The report: no actor, no reason, and a 10^14 limit accepted.
    assert "--as" in bespoke.fails(EXIT_REJECTED, *base, "--reason", "x")
    assert "--reason" in bespoke.fails(EXIT_REJECTED, *base, "--as", "ops:olga")
    assert "only ops" in bespoke.fails(EXIT_REJECTED, *base, "--as", f"buyer:{buyer}", "--reason", "mine")
    assert "empty" in bespoke.fails(EXIT_REJECTED, *base, "--as", "ops:olga", "--reason", "  ")
    assert "control" in bespoke.fails(EXIT_REJECTED, *base, "--as", "ops:olga", "--reason", "ok\x1b[2J")
    huge = ["buyer", "credit", buyer, "--as", "ops:olga", "--reason", "typo", "--limit", "1000000000000.00"]
    assert "larger than the maximum" in bespoke.fails(EXIT_REJECTED, *huge)
    assert bespoke.json("buyer", "show", buyer)["credit_changes"] == []  # nothing was recorded

    bespoke.json(*base, "--as", "ops:olga", "--reason", "new customer")
    bespoke.json("buyer", "credit", buyer, "--limit", "250.00", "--as", "ops:omar", "--reason", "raised after review")
    shown = bespoke.json("buyer", "show", buyer)
    assert shown["credit_limit"] == 25_000
    assert [(c["actor"], c["reason"], c["old_limit"], c["new_limit"]) for c in shown["credit_changes"]] == [
        ("ops:omar", "raised after review", 10_000, 25_000), ("ops:olga", "new customer", 0, 10_000)]


def test_ops_cannot_book_a_bank_transfer_that_never_arrived(bespoke: Bespoke) -> None:
    # The report: `order pay --as ops:x --method bank_transfer --amount 100000.00` on
    # a 500.00 collection-account order refunded 99,600.00 that never came in.
    oid = f"OPS-{uuid.uuid4().hex[:8].upper()}"
    bespoke.json("order", "create", "--id", oid, "--buyer", f"gus-{oid.lower()}", "--seller", "acme",
                 "--price", "500.00", "--plan", "collection_account")
    bespoke.json("order", "accept", oid, "--as", "seller:acme")
    pay = ["order", "pay", oid, "--as", "ops:x", "--method", "bank_transfer", "--amount", "100000.00",
           "--reference", "OPS-REF-1"]
    assert "--reason" in bespoke.fails(EXIT_REJECTED, *pay)
    assert "amount 100,000.00 CNY is more than the price due (500.00 CNY)" in bespoke.fails(EXIT_REJECTED, *pay, "--reason", "seen on the statement")
    assert "bank receive" in bespoke.fails(EXIT_REJECTED, "order", "pay", oid, "--as", "system:bank", "--method",
                                           "bank_transfer", "--amount", "100000.00", "--reference", "OPS-REF-2")
    view = bespoke.status(oid)
    assert (view["paid"], view["refunded"], view["payments"]) == (0, 0, [])
    with Session(bespoke.engine) as session:
        assert session.exec(select(LedgerEntry).where(LedgerEntry.order_id == oid)).all() == []

    # Within what is due and with a reason, ops may record it; the reason is kept.
    bespoke.json(*pay[:-4], "--amount", "500.00", "--reference", "OPS-REF-3", "--reason", "seen on the statement")
    view = bespoke.status(oid)
    assert (view["stage"], view["paid"], view["refunded"]) == ("in_production", 50_000, 0)
    assert view["payments"][0]["reason"] == "seen on the statement"
    assert_ledger(bespoke.engine, oid, closed=False)


def test_a_credit_order_for_a_frozen_buyer_is_refused_at_creation_saying_since_which_order(bespoke: Bespoke,
                                                                                           tmp_path) -> None:
    # The report: created (exit 0) and only cancelled at acceptance.
    from bespoke.activities.credit import CreditRef, mark_overdue

    buyer = f"hal-{uuid.uuid4().hex[:6]}"
    bespoke.json("buyer", "credit", buyer, "--limit", "5000.00", "--as", "ops:olga", "--reason", "new customer")
    mark_overdue(engine=bespoke.engine, ref=CreditRef(order_id="ORD-LATE-1", buyer=buyer))  # what an overdue repayment does
    oid = f"FRZ-{uuid.uuid4().hex[:8].upper()}"
    create = ["order", "create", "--id", oid, "--buyer", buyer, "--seller", "acme", "--price", "100.00"]
    line = bespoke.fails(EXIT_REJECTED, *create, "--plan", "credit")
    assert "credit is frozen (overdue repayment on order ORD-LATE-1)" in line
    assert bespoke.run("order", "status", oid).returncode == 3  # nothing was started
    path = tmp_path / "frozen.csv"
    path.write_text(f"order_id,buyer,seller,price,plan\n{oid}-A,{buyer},acme,100.00,credit\n"
                    f"{oid}-B,{buyer},acme,100.00,full_prepayment\n", encoding="utf-8")
    proc = bespoke.run("order", "import", str(path))
    assert proc.returncode == EXIT_REJECTED
    assert proc.stderr.startswith("row 1: rejected: buyer") and "ORD-LATE-1" in proc.stderr
    assert "1 created" in proc.stdout
    # Another plan still works, and once ops lifts the freeze so does credit.
    bespoke.json(*create, "--plan", "full_prepayment")
    bespoke.json("buyer", "credit", buyer, "--limit", "5000.00", "--as", "ops:olga", "--reason", "repaid by phone",
                 "--unfreeze")
    bespoke.json("order", "create", "--id", f"{oid}-C", "--buyer", buyer, "--seller", "acme", "--price", "100.00",
                 "--plan", "credit")


def test_what_a_buyer_owes_shows_in_status_buyer_show_and_reconcile(bespoke: Bespoke) -> None:
    # The report: a credit buyer cancels after a 300.00 materials milestone and owes nothing.
    buyer = f"owen-{uuid.uuid4().hex[:6]}"
    bespoke.json("buyer", "credit", buyer, "--as", "ops:olga", "--reason", "new customer", "--limit", "5000.00")
    oid = f"OWE-{uuid.uuid4().hex[:8].upper()}"
    bespoke.json("order", "create", "--id", oid, "--buyer", buyer, "--seller", "acme", "--price", "1200.00",
                 "--plan", "credit")
    bespoke.json("order", "accept", oid, "--as", "seller:acme")
    bespoke.json("order", "milestone", oid, "--as", "seller:acme", "--milestone", "materials", "--cost", "300.00")
    quote = bespoke.json("order", "quote-cancel", oid, "--by", "buyer")
    assert quote["buyer_owes_seller"] == 30_000
    bespoke.json("order", "cancel", oid, "--as", f"buyer:{buyer}")
    view = bespoke.status(oid)
    assert [(d["debtor"], d["creditor"], d["amount"]) for d in view["owes"]] == [
        (f"buyer:{buyer}", "seller:acme", 30_000)]
    assert "owes seller:acme 300.00 CNY" in bespoke.ok("order", "status", oid).stdout
    shown = bespoke.json("buyer", "show", buyer)
    assert [(d["order_id"], d["creditor"], d["amount"]) for d in shown["owes"]] == [(oid, "seller:acme", 30_000)]
    assert f"owes seller:acme 300.00 CNY on {oid}" in bespoke.ok("buyer", "show", buyer).stdout
    report = bespoke.run("ops", "reconcile", "--json")
    assert report.returncode in (0, 2), report.stderr
    assert json.loads(report.stdout)["debts"] >= 1


def test_held_transfers_say_why_and_ops_list_match_and_refund_them(bespoke: Bespoke) -> None:
    # The report: a transfer in another currency, or one before the seller accepts,
    # was "held for ops review: no open order for this account" though an order was
    # open, and nothing listed, matched or refunded held transfers.
    t = uuid.uuid4().hex[:6].upper()
    buyer, oid = f"ivy-{t.lower()}", f"HELD-{t}"
    bespoke.json("order", "create", "--id", oid, "--buyer", buyer, "--seller", "acme", "--price", "500.00",
                 "--plan", "collection_account")
    account = bespoke.json("buyer", "show", buyer)["virtual_account"]
    receive = ["bank", "receive", "--account", account]

    early = bespoke.json(*receive, "--amount", "300.00", "--reference", f"{t}-EARLY")
    assert early["status"] == "held" and early["order_id"] is None and early["postings"] == []
    assert early["reason"].startswith(f"order {oid} is not accepted by the seller yet")
    bespoke.json("order", "accept", oid, "--as", "seller:acme")
    usd = bespoke.json(*receive, "--amount", "80.00", "--currency", "USD", "--reference", f"{t}-USD")
    assert usd["status"] == "held" and usd["reason"] == f"the transfer is in USD, but order {oid} is in CNY"
    assert "no open order" not in early["reason"] + usd["reason"]
    assert bespoke.status(oid)["paid"] == 0
    with Session(bespoke.engine) as session:  # held money is on no order's books
        assert session.exec(select(LedgerEntry).where(LedgerEntry.order_id == oid)).all() == []

    listed = bespoke.json("bank", "held", "--limit", "1000")
    mine = {h["reference"]: h for h in listed["held"] if h["reference"].startswith(t)}
    assert set(mine) == {f"{t}-EARLY", f"{t}-USD"}
    assert mine[f"{t}-USD"]["reason"] == usd["reason"] and mine[f"{t}-EARLY"]["amount"] == 30_000
    assert listed["total"]["USD"] >= 8_000 and listed["count"] >= 2
    assert "not accepted by the seller yet" in bespoke.ok("bank", "held").stdout

    # Only ops, with a reason; a transfer the order cannot take stays held.
    match = ["bank", "match", f"{t}-EARLY", "--order", oid]
    assert "only ops" in bespoke.fails(EXIT_REJECTED, *match, "--as", f"buyer:{buyer}", "--reason", "mine")
    assert "--reason" in bespoke.fails(EXIT_REJECTED, *match, "--as", "ops:olga", "--reason", " ")
    line = bespoke.fails(EXIT_REJECTED, "bank", "match", f"{t}-USD", "--order", oid, "--as", "ops:olga",
                         "--reason", "wrong currency")
    assert "currency USD does not match the order's CNY" in line
    assert {h["reference"] for h in bespoke.json("bank", "held", "--limit", "1000")["held"]} >= {f"{t}-USD"}

    # Matching posts the order's payment: buyer -300.00, escrow +300.00.
    matched = bespoke.json(*match, "--as", "ops:olga", "--reason", "arrived before acceptance")
    assert matched["status"] == "matched" and matched["order_id"] == oid
    assert [(p["txn"], p["account"], p["amount"]) for p in matched["postings"]] == [
        (f"{oid}:pay:{t}-EARLY", "buyer", -30_000), (f"{oid}:pay:{t}-EARLY", "escrow", 30_000)]
    view = bespoke.status(oid)
    assert (view["paid"], view["amount_due"]) == (30_000, 20_000)
    assert view["payments"][0]["actor"] == "ops:olga for system:bank"
    assert "held transfer matched: arrived before acceptance" in view["payments"][0]["reason"]
    assert "not held (it is matched)" in bespoke.fails(EXIT_REJECTED, *match, "--as", "ops:omar", "--reason", "again")

    # Refunding sends it back and posts nothing on any order.
    refunded = bespoke.json("bank", "refund", f"{t}-USD", "--as", "ops:olga", "--reason", "sender asked, wrong currency")
    assert (refunded["status"], refunded["amount"], refunded["postings"]) == ("refunded", 8_000, [])
    assert "not held (it is refunded)" in bespoke.fails(EXIT_REJECTED, "bank", "refund", f"{t}-USD", "--as",
                                                        "ops:olga", "--reason", "twice")
    assert "no transfer" in bespoke.fails(EXIT_REJECTED, "bank", "refund", f"{t}-NOPE", "--as", "ops:olga",
                                          "--reason", "x")
    assert not any(h["reference"].startswith(t) for h in bespoke.json("bank", "held", "--limit", "1000")["held"])
    balances = assert_ledger(bespoke.engine, oid, closed=False)
    assert balances == {"buyer": -30_000, "escrow": 30_000}
