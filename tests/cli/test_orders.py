"""`bespoke order ...` end to end: real commands against a real `bespoke up`."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from bespoke.cli.errors import EXIT_NOT_FOUND, EXIT_REJECTED, EXIT_UNREACHABLE
from tests.helpers import assert_ledger

from .conftest import TIMINGS, Bespoke, bespoke_command, clean_env, free_port


def new_id(prefix: str = "CLI") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8].upper()}"


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def create(bespoke: Bespoke, order_id: str, *, price: str = "12000.00", plan: str = "full_prepayment",
           buyer: str = "alice", **options: str) -> dict:
    extra = [item for k, v in options.items() for item in (f"--{k.replace('_', '-')}", v)]
    return bespoke.json("order", "create", "--id", order_id, "--buyer", buyer, "--seller", "acme",
                        "--price", price, "--plan", plan, "--title", "walnut display case", *extra)


# ------------------------------------------------------------------- lifecycle


def test_one_order_from_creation_to_completion(bespoke: Bespoke) -> None:
    oid = new_id("LIFE")
    started = time.perf_counter()
    created = create(bespoke, oid)
    assert created == {"order_id": oid, "stage": "awaiting_acceptance",
                       "policy": {"name": "default", "version": created["policy"]["version"]}}
    steps = [
        (["accept", oid, "--as", "seller:acme"], "awaiting_deposit"),
        (["pay", oid, "--as", "buyer:alice", "--amount", "12000.00", "--reference", f"{oid}-PAY"], "in_production"),
        (["milestone", oid, "--as", "seller:acme", "--milestone", "materials", "--cost", "2500.00"], "in_production"),
        (["milestone", oid, "--as", "seller:acme", "--milestone", "fabrication", "--cost", "3000.00"],
         "in_production"),
        (["milestone", oid, "--as", "seller:acme", "--milestone", "finishing", "--cost", "800.00"], "in_production"),
        (["finish", oid, "--as", "seller:acme"], "quality_check"),
        (["qc", oid, "--as", "seller:acme", "--pass"], "quality_check"),
        (["ship", oid, "--as", "seller:acme", "--carrier", "sf-express", "--tracking", "SF1234567890"], "shipped"),
        (["deliver", oid, "--as", "carrier:sf-express"], "delivered"),
        (["confirm", oid, "--as", "buyer:alice"], "completed"),
    ]
    for args, stage in steps:
        result = bespoke.json("order", *args)
        assert (result["order_id"], result["stage"]) == (oid, stage), (args, result)
        if args[0] == "accept":
            # Mid-way, a waiting stage shows its deadline and what happens if it passes.
            view = bespoke.status(oid)
            assert [d["name"] for d in view["deadlines"]] == ["deposit"]
            assert view["deadlines"][0]["due_at"] and view["deadlines"][0]["default_action"]
    TIMINGS["one full lifecycle, create → completed (12 `bespoke order` commands)"] = time.perf_counter() - started

    view = bespoke.status(oid)
    contract = ["order_id", "stage", "policy", "payment_plan", "price", "currency", "paid", "refunded",
                "released_to_seller", "costs_incurred", "deadlines", "timeline", "decisions"]
    assert not [k for k in contract if k not in view], "status --json misses contract fields"
    assert view["order_id"] == oid and view["stage"] == "completed"
    assert view["policy"]["name"] == "default" and view["policy"]["version"] == created["policy"]["version"]
    assert view["payment_plan"] == "full_prepayment" and view["currency"] == "CNY"
    for key in ("price", "paid", "refunded", "released_to_seller", "costs_incurred"):
        assert is_int(view[key]), (key, view[key])
    assert (view["price"], view["paid"], view["refunded"]) == (1_200_000, 1_200_000, 0)
    assert view["costs_incurred"] == 630_000
    assert view["released_to_seller"] == 1_140_000 and view["platform_fee"] == 60_000  # 5% fee
    # Nothing in the purchase is waiting any more (an after-sales window may be open).
    assert not {d["name"] for d in view["deadlines"]} & {"seller_acceptance", "deposit", "balance",
                                                         "inspection_window"}
    assert all(d["name"] and d["due_at"] for d in view["deadlines"])
    kinds = [e["kind"] for e in view["timeline"]]
    for kind in ("created", "accepted", "payment", "milestone", "qc_passed", "shipped", "delivered",
                 "confirmed", "settlement"):
        assert kind in kinds, kind
    (decision,) = view["decisions"]
    assert decision["kind"] == "settlement" and decision["decision_id"]
    explanation = decision["explanation"]  # the contract: each decision comes with its explanation
    assert explanation["decision_id"] == decision["decision_id"] and explanation["as_of"] == decision["as_of"]
    assert explanation["pin"]["sha256"] == view["policy"]["sha256"]
    assert decision["amounts"]["to_seller"] == 1_140_000 and decision["amounts"]["platform_fee"] == 60_000
    assert explanation["facts"] and explanation["matched"] and all(m["because"] for m in explanation["matched"])
    assert all(c["field"] and c["op"] for m in explanation["matched"] for c in m["conditions"])
    assert decision["summary"]
    assert_ledger(bespoke.engine, oid, closed=True)

    listed = bespoke.json("order", "list", "--stage", "completed")["orders"]
    assert [o["order_id"] for o in listed if o["order_id"] == oid] == [oid]
    assert all(o["stage"] == "completed" for o in listed)
    row = next(o for o in listed if o["order_id"] == oid)
    assert (row["paid"], row["released_to_seller"]) == (1_200_000, 1_140_000)
    assert "revision" not in row  # the view cache's bookkeeping (orders.revision), not the order

    history = bespoke.json("order", "history", oid)
    assert [e["seq"] for e in history["timeline"]] == list(range(1, len(view["timeline"]) + 1))
    total = view["timeline_total"]
    assert history["total"] == total == len(view["timeline"]) and history["next_before"] is None
    # Paged from the workflow, newest first; --all reads every entry from the read model.
    page = bespoke.json("order", "history", oid, "--limit", "5")
    assert [e["seq"] for e in page["timeline"]] == list(range(total - 4, total + 1))
    assert page["next_before"] == total - 4
    older = bespoke.json("order", "history", oid, "--limit", "5", "--before", str(page["next_before"]))
    assert [e["seq"] for e in older["timeline"]] == list(range(total - 9, total - 4))
    every = bespoke.json("order", "history", oid, "--all")
    assert [(e["seq"], e["kind"], e["actor"], e["message"]) for e in every["timeline"]] == [
        (e["seq"], e["kind"], e["actor"], e["message"]) for e in history["timeline"]]
    assert [e["at"][:19] for e in every["timeline"]] == [e["at"][:19] for e in history["timeline"]]
    assert bespoke.json("order", "status", oid, "--all")["timeline"] == every["timeline"]
    assert "--all" in bespoke.ok("order", "history", oid, "--limit", "5").stdout

    human = bespoke.ok("order", "status", oid).stdout
    assert oid in human and "completed" in human and "12,000.00" in human


# ------------------------------------------------------------------- rejections


def test_rejected_actions_exit_2_with_one_line_and_change_nothing(bespoke: Bespoke) -> None:
    oid = new_id("REJ")
    create(bespoke, oid, price="1000.00")
    before = bespoke.status(oid)
    assert "only the seller" in bespoke.fails(EXIT_REJECTED, "order", "accept", oid, "--as", "buyer:alice")
    assert "not allowed in stage awaiting_acceptance" in bespoke.fails(
        EXIT_REJECTED, "order", "ship", oid, "--as", "seller:acme", "--carrier", "x", "--tracking", "y")
    assert bespoke.status(oid) == before

    bespoke.json("order", "accept", oid, "--as", "seller:acme")
    bespoke.json("order", "pay", oid, "--as", "buyer:alice", "--amount", "100.00", "--reference", f"{oid}-1")
    before = bespoke.status(oid)
    assert (before["paid"], before["amount_due"]) == (10_000, 90_000)
    pay = ["order", "pay", oid, "--as", "buyer:alice"]
    assert "12.345" in bespoke.fails(EXIT_REJECTED, *pay, "--amount", "12.345", "--reference", f"{oid}-2")
    assert "unknown currency 'XYZ'" in bespoke.fails(
        EXIT_REJECTED, *pay, "--amount", "12.00", "--currency", "XYZ", "--reference", f"{oid}-2")
    # Amounts as the CLI prints them, never minor units ("90001 ... (90000)").
    assert "amount 900.01 CNY is more than the price due (900.00 CNY)" in bespoke.fails(
        EXIT_REJECTED, *pay, "--amount", "900.01", "--reference", f"{oid}-2")
    assert "duplicate payment reference" in bespoke.fails(
        EXIT_REJECTED, *pay, "--amount", "100.00", "--reference", f"{oid}-1")
    after = bespoke.status(oid)
    assert after == before, "a rejected action changed the order"
    balances = assert_ledger(bespoke.engine, oid, closed=False)
    assert balances["escrow"] == 10_000


def test_invalid_create_exits_2_and_starts_nothing(bespoke: Bespoke) -> None:
    oid = new_id("BAD")
    base = ["order", "create", "--id", oid, "--buyer", "alice", "--seller", "acme"]
    assert "unknown currency" in bespoke.fails(EXIT_REJECTED, *base, "--price", "10.00", "--currency", "XYZ")
    assert "decimal places" in bespoke.fails(EXIT_REJECTED, *base, "--price", "12.345")
    assert "not offered" in bespoke.fails(EXIT_REJECTED, *base, "--price", "10.00", "--plan", "staged:50/50")
    bespoke.fails(EXIT_NOT_FOUND, "order", "status", oid)
    create(bespoke, oid, price="10.00")
    assert "already exists" in bespoke.fails(EXIT_REJECTED, *base, "--price", "10.00")


def test_unknown_order_exits_3_for_reads_and_actions(bespoke: Bespoke) -> None:
    for args in (["status", "NO-SUCH"], ["quote-cancel", "NO-SUCH"], ["accept", "NO-SUCH", "--as", "seller:acme"],
                 ["pay", "NO-SUCH", "--as", "buyer:alice", "--amount", "1.00", "--reference", "r"]):
        assert "NO-SUCH" in bespoke.fails(EXIT_NOT_FOUND, "order", *args)


def test_actions_on_a_closed_order_exit_2_not_3(bespoke: Bespoke) -> None:
    oid = new_id("CLOSED")
    create(bespoke, oid, price="10.00")
    bespoke.json("order", "cancel", oid, "--as", "buyer:alice")
    assert bespoke.status(oid)["stage"] == "cancelled"
    bespoke.fails(EXIT_REJECTED, "order", "accept", oid, "--as", "seller:acme")
    bespoke.fails(EXIT_REJECTED, "order", "quote-cancel", oid)


def test_temporal_unreachable_exits_4_with_a_hint(bespoke: Bespoke) -> None:
    import subprocess

    env = clean_env(BESPOKE_HOME=str(bespoke.home), TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}")
    proc = subprocess.run([*bespoke_command(), "order", "status", "X"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == EXIT_UNREACHABLE
    assert len(proc.stderr.splitlines()) == 1 and "bespoke up" in proc.stderr


# ------------------------------------------------------------------- import


def test_import_csv_reports_rows_and_is_safe_to_run_twice(bespoke: Bespoke, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_id,buyer,seller,price,currency,plan,production_days,title\n"
        f"IMP-{tag}-1,alice,acme,1500.00,CNY,full_prepayment,10,oak shelf\n"
        f"IMP-{tag}-2,bob,acme,2000.00,XYZ,full_prepayment,10,bad currency\n"
        f",carol,acme,800.00,CNY,staged:30/70,12,no id {tag}\n"
        f"IMP-{tag}-4,dave,acme,12.345,CNY,cod,10,bad amount\n",
        encoding="utf-8",
    )
    proc = bespoke.run("order", "import", str(path), "--json")
    assert proc.returncode == EXIT_REJECTED, proc.stderr
    first = json.loads(proc.stdout)
    assert (first["created"], first["exists"], first["rejected"]) == (2, 0, 2)
    by_row = {r["row"]: r for r in first["results"]}
    assert by_row[1] == {"row": 1, "order_id": f"IMP-{tag}-1", "status": "created"}
    assert by_row[2]["status"] == "rejected" and "XYZ" in by_row[2]["error"]
    assert by_row[3]["status"] == "created" and by_row[3]["order_id"].startswith("IMP-")
    assert by_row[4]["status"] == "rejected" and "12.345" in by_row[4]["error"]

    # The human report: one line per rejected row on stderr, with its row number.
    again = bespoke.run("order", "import", str(path))
    assert again.returncode == EXIT_REJECTED
    errors = again.stderr.splitlines()
    assert len(errors) == 2 and errors[0].startswith("row 2: rejected:") and errors[1].startswith("row 4: rejected:")
    assert "0 created, 2 already existed, 2 rejected" in again.stdout

    ids = {f"IMP-{tag}-1", by_row[3]["order_id"]}
    listed = [o["order_id"] for o in bespoke.json("order", "list", "--limit", "1000")["orders"]]
    assert sorted(i for i in listed if i in ids) == sorted(ids)  # each exactly once
    assert bespoke.status(by_row[3]["order_id"])["payment_plan"] == "staged:30/70"


def test_import_json_creates_each_order_once(bespoke: Bespoke, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    path = tmp_path / "orders.json"
    rows = [
        {"order_id": f"J-{tag}-1", "buyer": "erin", "seller": "acme", "price": "3000.00", "plan": "staged:30/60/10"},
        {"order_id": f"J-{tag}-2", "buyer": "frank", "seller": "acme", "price": "450.00", "currency": "USD",
         "plan": "cod", "production_days": 20},
    ]
    path.write_text(json.dumps(rows), encoding="utf-8")
    first = bespoke.json("order", "import", str(path))
    assert [(r["row"], r["status"]) for r in first["results"]] == [(1, "created"), (2, "created")]
    second = bespoke.json("order", "import", str(path))
    assert [(r["row"], r["status"]) for r in second["results"]] == [(1, "exists"), (2, "exists")]
    assert bespoke.status(f"J-{tag}-2")["currency"] == "USD"

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"buyer": "gina", "price": "10.00"}]), encoding="utf-8")
    result = json.loads(bespoke.run("order", "import", str(bad), "--json").stdout)
    assert result["results"] == [{"row": 1, "status": "rejected", "error": "missing field 'seller'"}]
    broken = tmp_path / "broken.json"
    broken.write_text("[{", encoding="utf-8")
    assert "not valid JSON" in bespoke.fails(EXIT_REJECTED, "order", "import", str(broken))


# ------------------------------------------------------------------- quote and cancel


def test_quote_cancel_predicts_the_cancellation_and_status_shows_the_same_explanation(bespoke: Bespoke) -> None:
    oid = new_id("QUOTE")
    create(bespoke, oid, price="1000.00", plan="staged:30/70")
    bespoke.json("order", "accept", oid, "--as", "seller:acme")
    free = bespoke.json("order", "quote-cancel", oid, "--by", "buyer")
    assert free["refund_to_buyer"] == 0 and free["explanation"]["matched"][0]["rule_id"] == "R04"
    bespoke.json("order", "pay", oid, "--as", "buyer:alice", "--amount", "300.00", "--reference", f"{oid}-D")
    bespoke.json("order", "milestone", oid, "--as", "seller:acme", "--milestone", "materials", "--cost", "250.00")
    bespoke.json("order", "salvage", oid, "--as", "seller:acme", "--value", "100.00")
    before = bespoke.status(oid)

    seller = bespoke.json("order", "quote-cancel", oid, "--by", "seller")
    assert seller["refund_to_buyer"] == 30_000 and seller["explanation"]["matched"][0]["rule_id"] == "R11"
    quote = bespoke.json("order", "quote-cancel", oid, "--by", "buyer")
    # Net cost 250.00 - 100.00 = 150.00, under the 300.00 paid; 5% fee out of the seller's part.
    assert (quote["refund_to_buyer"], quote["to_seller"], quote["platform_fee"]) == (15_000, 14_250, 750)
    assert all(is_int(quote[k]) for k in ("refund_to_buyer", "to_seller", "platform_fee", "seller_pays_buyer",
                                          "buyer_owes_seller"))
    explanation = quote["explanation"]
    assert explanation["facts"]["stage"] == "in_production" and explanation["facts"]["salvage_value"] == 10_000
    assert explanation["matched"][0]["rule_id"] == "R07" and explanation["matched"][0]["because"]
    assert bespoke.status(oid) == before, "a quote changed the order"

    result = bespoke.json("order", "cancel", oid, "--as", "buyer:alice", "--reason", "changed plans")
    assert result["stage"] == "cancelled"
    view = bespoke.status(oid)
    (decision,) = [d for d in view["decisions"] if d["kind"] == "cancellation"]
    assert decision["amounts"] == explanation["amounts"]
    assert [m["rule_id"] for m in decision["explanation"]["matched"]] == ["R07"]
    assert decision["summary"].replace(decision["decision_id"], "") == explanation["summary"].replace(
        explanation["decision_id"], "")
    assert (view["refunded"], view["released_to_seller"], view["platform_fee"]) == (15_000, 14_250, 750)
    assert_ledger(bespoke.engine, oid, closed=True)
    assert oid in [o["order_id"] for o in bespoke.json("order", "list", "--stage", "cancelled")["orders"]]
    assert "unknown stage" in bespoke.fails(EXIT_REJECTED, "order", "list", "--stage", "limbo")
    assert "--by" in bespoke.fails(EXIT_REJECTED, "order", "quote-cancel", oid, "--by", "carrier")



# ------------------------------------------------------------------- ops override


def test_ops_override_extends_or_ends_a_deadline_and_nobody_else_may(bespoke: Bespoke) -> None:
    oid = new_id("OVR")
    create(bespoke, oid, price="500.00")
    before = bespoke.status(oid)
    due = before["deadlines"][0]["due_at"]
    override = ["order", "override", oid, "seller_acceptance"]
    assert "only the ops" in bespoke.fails(EXIT_REJECTED, *override, "--as", "buyer:alice", "--extend", "P1D",
                                           "--reason", "please")
    assert "exactly one of --extend" in bespoke.fails(EXIT_REJECTED, *override, "--as", "ops:olga", "--reason", "x")
    assert "exactly one of --extend" in bespoke.fails(EXIT_REJECTED, *override, "--as", "ops:olga", "--extend", "P1D",
                                                      "--now", "--reason", "x")
    assert "ISO-8601 duration" in bespoke.fails(EXIT_REJECTED, *override, "--as", "ops:olga", "--extend", "3 days",
                                                "--reason", "x")
    assert "not running" in bespoke.fails(EXIT_REJECTED, "order", "override", oid, "deposit", "--as", "ops:olga",
                                          "--extend", "P1D", "--reason", "x")
    assert bespoke.status(oid) == before, "a rejected override changed the order"

    result = bespoke.json(*override, "--as", "ops:olga", "--extend", "P1DT12H", "--reason", "seller on holiday")
    assert result["stage"] == "awaiting_acceptance" and "extended by 1 day and 12 hours" in result["message"]
    view = bespoke.status(oid)
    assert view["deadlines"][0]["due_at"] != due
    entry = view["timeline"][-1]
    assert (entry["kind"], entry["actor"]) == ("deadline_overridden", "ops:olga")
    assert "seller on holiday" in entry["message"]

    result = bespoke.json(*override, "--as", "ops:olga", "--now", "--reason", "seller closed the shop")
    assert result["stage"] == "cancelled"
    assert bespoke.status(oid)["deadlines"] == []
