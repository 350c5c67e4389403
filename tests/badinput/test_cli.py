"""Bad input through the real `bespoke` command against a real `bespoke up`: every
refusal is ONE line on stderr with exit 2, and nothing changed — no workflow in
Temporal, no row in the read model. Good rows of an import next to bad ones are
created, once, with their text kept verbatim."""

from __future__ import annotations

import asyncio
import json
import unicodedata
import uuid
from pathlib import Path

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from bespoke.cli.errors import EXIT_REJECTED
from bespoke.runtime.client import connect
from bespoke.domain.names import workflow_id_for
from tests.helpers import assert_ledger

from .conftest import Cli


def tag() -> str:
    return uuid.uuid4().hex[:6].upper()


async def connect_to(cli: Cli) -> Client:
    """A client of the test's server; a loaded machine sometimes refuses the first
    connection for a moment."""
    for attempt in range(30):
        try:
            return await connect(address=cli.address)
        except Exception:  # noqa: BLE001 - TemporalUnreachable, or the SDK's RuntimeError
            if attempt == 29:
                raise
            await asyncio.sleep(1)
    raise AssertionError("unreachable")


async def started(client: Client, order_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id_for(order_id)).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def workflow_count(client: Client) -> int:
    """Orders in Temporal (not the reconcile schedule's own workflows)."""
    return (await client.count_workflows("WorkflowType = 'OrderWorkflow'")).count


# ------------------------------------------------------------------ create


# A representative few: every kind of bad value is refused without a server in
# test_parsing.py; here the contract is the exit code, one line, nothing started.
BAD_CREATES: list[tuple[list[str], str]] = [
    (["--price", "abc"], "amount 'abc' is not a number"),
    (["--price", "1e30"], "too large"),
    (["--price", str(10**20)], "exceeds the policy's maximum order amount"),
    (["--price", "0"], "price must be positive"),
    (["--price", "12.345"], "more than 2 decimal places for CNY"),
    (["--price", "1.5", "--currency", "JPY"], "more than 0 decimal places for JPY"),
    (["--price", "10", "--currency", "XYZ"], "unknown currency 'XYZ'"),
    (["--price", "10", "--production-days", "ten"], "production_days must be a whole number of days, got 'ten'"),
    (["--price", "10", "--production-days", "9999"], "between 1 and 365"),
    (["--price", "10", "--earnest"], "an earnest deposit needs a staged plan"),
    (["--price", "10", "--policy", "nonesuch"], "policy 'nonesuch' not found"),
    (["--price", "10", "--title", "t" * 501], "title is longer than 500 characters"),
    (["--price", "10", "--as", "ops"], "--as must be ROLE:NAME"),
    (["--price", "10", "--as", "ops:\u200b"], "--as name is empty"),
    (["--price", "10", "--buyer", "\u200b\u200b"], "buyer is empty (or only invisible characters)"),
    (["--price", "10", "--seller", "s" * 201], "seller is longer than 200 characters"),
]


async def test_bad_create_options_exit_2_with_one_line_and_start_nothing(cli: Cli) -> None:
    client = await connect_to(cli)
    t = tag()
    before_count, before_db = await workflow_count(client), cli.db_counts()
    base = ["--buyer", "alice", "--seller", "acme"]
    ids = []
    for n, (args, expected) in enumerate(BAD_CREATES):
        oid = f"BADC-{t}-{n}"
        ids.append(oid)
        defaults = [item for i in (0, 2) if base[i] not in args for item in base[i:i + 2]]
        line = cli.fails(EXIT_REJECTED, "order", "create", "--id", oid, *defaults, *args)
        assert expected in line, (args, line)
    for bad_id, expected in (("A B", "order id 'A B' is not valid"), ("A/B", "not valid"),
                             ("X" * 200, "use 1-64 letters"), ("订单-1", "not valid"),
                             ("'; DROP TABLE orders;--", "not valid")):
        line = cli.fails(EXIT_REJECTED, "order", "create", "--id", bad_id, *base, "--price", "10")
        assert expected in line, line
    assert [oid for oid in ids if await started(client, oid)] == []
    assert await workflow_count(client) == before_count
    assert cli.db_counts() == before_db


def test_usage_errors_exit_2_with_one_line(cli: Cli) -> None:
    """Click's usage errors too: a missing option, an extra argument (`--earnest` is a flag)."""
    cli.fails(EXIT_REJECTED, "order", "create", "--buyer", "alice", "--seller", "acme")  # no --price
    cli.fails(EXIT_REJECTED, "order", "create", "--buyer", "a", "--seller", "b", "--price", "1", "--earnest", "maybe")


def test_hostile_but_valid_text_is_stored_verbatim(cli: Cli) -> None:
    """SQL- and shell-looking names are data: stored as typed, the tables intact."""
    t = tag()
    names = {"sql": "'; DROP TABLE orders;--", "rtl": "מרים כהן", "emoji": "🦊 fox & co", "han": "深圳工厂",
             "fmt": "%s %n {0} ${HOME}"}
    for key, name in names.items():
        oid = f"HOST-{t}-{key}"
        seller = f"{name} (maker)"  # an order's buyer and seller must be different parties
        cli.ok("order", "create", "--id", oid, "--buyer", name, "--seller", seller, "--title", name, "--price", "10")
        view = json.loads(cli.ok("order", "status", oid, "--json").stdout)
        assert (view["buyer"], view["seller"], view["title"]) == (name, seller, name)
    listed = json.loads(cli.ok("order", "list", "--json", "--limit", "1000").stdout)["orders"]
    assert {o["buyer"] for o in listed if o["order_id"].startswith(f"HOST-{t}")} == set(names.values())


# ------------------------------------------------------------------ import: whole file refused


BAD_FILES = {
    "syntax.json": '[{"order_id": "F-{t}-1", "buyer": "a", "seller": "b", "price": "1"},]',
    "object.json": '{"order_id": "F-{t}-1", "buyer": "a", "seller": "b", "price": "1"}',
    "mixed.json": '[{"order_id": "F-{t}-1", "buyer": "a", "seller": "b", "price": "1"}, 42]',
    "empty.csv": "",
    "no-header.csv": "F-{t}-1,alice,acme,10.00\n",
    "missing-columns.csv": "order_id,buyer,price\nF-{t}-1,alice,10.00\n",
    "semicolons.csv": "order_id;buyer;seller;price\nF-{t}-1;alice;acme;10.00\n",
    "unknown-column.csv": "order_id,buyer,seller,price,curency\nF-{t}-1,alice,acme,10.00,USD\n",
}
BINARY_FILES = {
    "junk.csv": bytes(range(256)) * 8,
    "utf16.csv": "order_id,buyer,seller,price\nF-{t}-1,alice,acme,10\n".encode("utf-16"),
    "latin1.csv": "order_id,buyer,seller,price\nF-{t}-1,Jos\xe9,acme,10\n".encode("latin-1"),
}


async def test_malformed_import_files_exit_2_with_one_line_and_start_nothing(cli: Cli, tmp_path: Path) -> None:
    client = await connect_to(cli)
    t = tag()
    before_count, before_db = await workflow_count(client), cli.db_counts()
    files = {name: text.replace("{t}", t).encode() for name, text in BAD_FILES.items()}
    files |= {name: data.replace(b"{t}", t.encode()) if b"{t}" in data else data for name, data in BINARY_FILES.items()}
    files["utf16.csv"] = BINARY_FILES["utf16.csv"].decode("utf-16").replace("{t}", t).encode("utf-16")
    for name, data in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        for mode in ([], ["--json"]) if name.endswith(".json") else ([],):
            proc = cli.run("order", "import", str(path), *mode)
            assert proc.returncode == EXIT_REJECTED, (name, proc.stdout, proc.stderr)
            lines = proc.stderr.splitlines()
            assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), (name, proc.stderr)
            assert proc.stdout == "", (name, proc.stdout)
    assert not await started(client, f"F-{t}-1") and not await started(client, f"F-{t}-2")
    assert await workflow_count(client) == before_count
    assert cli.db_counts() == before_db


# ------------------------------------------------------------------ import: rows


async def test_a_csv_line_with_too_few_values_is_a_rejected_row_and_the_rest_import(cli: Cli, tmp_path: Path) -> None:
    # The report: one short line aborted the whole file ("line 3 has 3 values for 9 columns").
    client = await connect_to(cli)
    t = tag()
    path = tmp_path / "short.csv"
    path.write_text("order_id,buyer,seller,price,title\n"
                    f"R-{t}-1,alice,acme,10.00,oak\n"
                    f"R-{t}-2,bob,acme\n"
                    f"R-{t}-3,carol,acme,1,500.00,shelf\n"
                    f"R-{t}-4,dan,acme,20.00,pine\n", encoding="utf-8")
    proc = cli.run("order", "import", str(path))
    assert proc.returncode == EXIT_REJECTED, proc.stderr
    assert proc.stderr.splitlines() == [
        "row 2: rejected: line 3 has 3 values for 5 columns (a missing value, or an unquoted comma such as 1,500.00)",
        "row 3: rejected: line 4 has 6 values for 5 columns (a missing value, or an unquoted comma such as 1,500.00)",
    ]
    assert "2 created, 0 already existed, 2 rejected" in proc.stdout
    assert [await started(client, f"R-{t}-{n}") for n in (1, 2, 3, 4)] == [True, False, False, True]


async def test_import_reports_each_bad_row_creates_good_rows_once_and_names_stay_unicode(cli: Cli,
                                                                                         tmp_path: Path) -> None:
    client = await connect_to(cli)
    t = tag()
    nfd = unicodedata.normalize("NFD", "José Núñez")
    good = [
        {"order_id": f"U-{t}-1", "buyer": "张伟", "seller": "深圳工厂", "price": "8800.00", "title": "红木展示柜"},
        {"order_id": f"U-{t}-2", "buyer": "🦊 fox & co", "seller": "acme", "price": 1200.5, "currency": "USD"},
        {"order_id": f"U-{t}-3", "buyer": "מרים כהן", "seller": "acme", "price": "1,500.00", "plan": "staged:30/70"},
        {"order_id": f"U-{t}-4", "buyer": nfd, "seller": "acme", "price": "300", "currency": "JPY"},
        {"order_id": f"U-{t}-5", "buyer": "\u200bbob\u200b", "seller": "acme", "price": "10", "earnest": "no"},
    ]
    bad = [
        ({"order_id": f"U-{t}-6", "buyer": "a", "seller": "b", "price": "abc"}, "'abc' is not a number"),
        ({"order_id": f"U-{t}-7", "buyer": "a", "seller": "b", "price": "10", "production_days": "ten"},
         "whole number of days"),
        ({"order_id": f"U-{t}-8", "buyer": "a", "seller": "b", "price": "10", "plan": "staged:20/80",
          "earnest": "maybe"}, "earnest must be true or false"),
        ({"order_id": f"U-{t}-9", "buyer": "a", "seller": "b", "price": 1e30}, "too large"),
        ({"order_id": f"U-{t}-10", "buyer": "a", "seller": "b", "price": -1}, "positive"),
        ({"order_id": f"U-{t}-11", "buyer": "a", "seller": "b", "price": "12.345"}, "more than 2 decimal places"),
        ({"order_id": f"U-{t}-12", "buyer": "a", "seller": "b", "price": "1.5", "currency": "JPY"},
         "more than 0 decimal places"),
        ({"order_id": f"U-{t}-13", "buyer": "a", "seller": "b", "price": "10", "currency": "BTC"},
         "unknown currency 'BTC'"),
        ({"order_id": f"U-{t}-14", "buyer": None, "seller": "b", "price": "10"}, "missing field 'buyer'"),
        ({"order_id": f"U-{t}-15", "buyer": ["a"], "seller": "b", "price": "10"}, "buyer must be text"),
        ({"order_id": f"U-{t}-16", "buyer": "\u200b", "seller": "b", "price": "10"}, "only invisible characters"),
        ({"order_id": f"U-{t}-17", "buyer": "x" * 201, "seller": "b", "price": "10"}, "longer than 200"),
        ({"order_id": f"U {t} 18", "buyer": "a", "seller": "b", "price": "10"}, "is not valid"),
        ({"order_id": "Y" * 200, "buyer": "a", "seller": "b", "price": "10"}, "is not valid"),
        ({"order_id": f"U-{t}-19", "buyer": "a", "seller": "b", "price": "10", "curency": "USD"},
         "unknown field 'curency'"),
    ]
    rows = good[:2] + [b for b, _ in bad] + good[2:]
    path = tmp_path / "orders.json"
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    before_count = await workflow_count(client)

    proc = cli.run("order", "import", str(path), "--json")
    assert proc.returncode == EXIT_REJECTED, proc.stderr
    first = json.loads(proc.stdout)
    assert (first["created"], first["exists"], first["rejected"]) == (len(good), 0, len(bad))
    by_row = {r["row"]: r for r in first["results"]}
    for offset, (_, expected) in enumerate(bad, start=3):
        assert by_row[offset]["status"] == "rejected" and expected in by_row[offset]["error"], by_row[offset]
    assert [by_row[n]["status"] for n in (1, 2, len(rows) - 2, len(rows) - 1, len(rows))] == ["created"] * 5

    views = {g["order_id"]: json.loads(cli.ok("order", "status", g["order_id"], "--json").stdout) for g in good}
    assert [views[g["order_id"]]["buyer"] for g in good] == ["张伟", "🦊 fox & co", "מרים כהן",
                                                            unicodedata.normalize("NFC", nfd), "bob"]
    assert views[f"U-{t}-1"]["title"] == "红木展示柜" and views[f"U-{t}-1"]["seller"] == "深圳工厂"
    assert (views[f"U-{t}-2"]["price"], views[f"U-{t}-3"]["price"], views[f"U-{t}-4"]["price"]) == (
        120_050, 150_000, 300)
    for b, _ in bad:
        if len(str(b["order_id"])) <= 64 and " " not in str(b["order_id"]):
            assert not await started(client, b["order_id"]), b

    # The buyer typed in NFD acts as the NFC buyer of the order: the same person.
    oid = f"U-{t}-4"
    cli.ok("order", "accept", oid, "--as", "seller:acme")
    paid = json.loads(cli.ok("order", "pay", oid, "--as", f"buyer:{nfd}", "--amount", "300",
                             "--reference", f"{oid}-P", "--json").stdout)
    assert paid["stage"] == "in_production"
    assert_ledger(cli.engine, oid, closed=False)

    # Run it again: nothing new, every good row "exists", the same rows rejected.
    again = cli.run("order", "import", str(path))
    assert again.returncode == EXIT_REJECTED
    errors = again.stderr.splitlines()
    assert [e.split(":")[0] for e in errors] == [f"row {n}" for n in range(3, 3 + len(bad))]
    assert all(": rejected: " in e for e in errors)
    assert f"0 created, {len(good)} already existed, {len(bad)} rejected" in again.stdout
    assert await workflow_count(client) - before_count <= len(good)  # visibility may lag, never exceed
    listed = [o["order_id"] for o in json.loads(cli.ok("order", "list", "--json", "--limit", "1000").stdout)["orders"]]
    assert sorted(i for i in listed if i.startswith(f"U-{t}-")) == sorted(g["order_id"] for g in good)


# ------------------------------------------------------------------ actions


def test_bad_action_input_exits_2_and_changes_nothing(cli: Cli) -> None:
    oid = f"ACT-{tag()}"
    cli.ok("order", "create", "--id", oid, "--buyer", "alice", "--seller", "acme", "--price", "100.00")
    cli.ok("order", "accept", oid, "--as", "seller:acme")
    cli.ok("order", "pay", oid, "--as", "buyer:alice", "--amount", "10.00", "--reference", f"{oid}-1")
    before = json.loads(cli.ok("order", "status", oid, "--json").stdout)
    pay = ["order", "pay", oid, "--as", "buyer:alice", "--reference", f"{oid}-2", "--amount"]
    for amount, expected in (("abc", "not a number"), ("1e30", "too large"), ("NaN", "finite"), ("-1", "positive"),
                             ("12,50", "commas"), ("0.001", "decimal places"), ("9" * 100, "too long")):
        assert expected in cli.fails(EXIT_REJECTED, *pay, amount), amount
    assert "reference" in cli.fails(EXIT_REJECTED, "order", "pay", oid, "--as", "buyer:alice", "--amount", "1",
                                    "--reference", "R" * 201)
    assert "control character" in cli.fails(EXIT_REJECTED, "order", "pay", oid, "--as", "buyer:al\x07ice",
                                            "--amount", "1", "--reference", "x")
    assert "milestone" in cli.fails(EXIT_REJECTED, "order", "milestone", oid, "--as", "seller:acme",
                                    "--milestone", "'; DROP TABLE orders;--", "--cost", "1")
    assert "more than" in cli.fails(EXIT_REJECTED, "order", "milestone", oid, "--as", "seller:acme",
                                    "--milestone", "materials", "--cost", "1.001")
    after = json.loads(cli.ok("order", "status", oid, "--json").stdout)
    assert after == before
    assert_ledger(cli.engine, oid, closed=False)
