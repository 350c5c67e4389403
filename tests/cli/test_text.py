"""Text from other people through the real `bespoke` command (issue 10 scope 7): it
is printed literally (no Rich markup, no emoji codes, no terminal escapes), names
and identifiers that could pass for another party's are refused, and so are
amounts that only look like numbers. Also the CLI's bounded waits and the two
read paths that skip the domain models."""

from __future__ import annotations

import asyncio
import json
import uuid

from bespoke.cli.errors import EXIT_REJECTED, EXIT_UNREACHABLE
from bespoke.domain.models import Actor, OrderView, ShipInput
from bespoke.domain.names import workflow_id_for
from bespoke.runtime.client import connect

from .conftest import Bespoke

ESC = "\x1b"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8].upper()}"


def in_production(bespoke: Bespoke, *, buyer: str = "alice", title: str = "oak case") -> str:
    oid = new_id("TXT")
    bespoke.ok("order", "create", "--id", oid, "--buyer", buyer, "--seller", "acme", "--price", "100.00",
               "--title", title)
    bespoke.ok("order", "accept", oid, "--as", "seller:acme")
    bespoke.ok("order", "pay", oid, "--as", f"buyer:{buyer}", "--amount", "100.00", "--reference", f"{oid}-P")
    return oid


def assert_no_terminal_controls(text: str) -> None:
    assert ESC not in text and "\u202e" not in text and "\u200b" not in text, repr(text)


def test_markup_in_names_and_notes_is_printed_as_typed(bespoke: Bespoke) -> None:
    oid = in_production(bespoke, buyer="[/b]", title="[green]VERIFIED[/green] :thumbs_up:")
    bespoke.ok("order", "milestone", oid, "--as", "seller:acme", "--milestone", "materials", "--cost", "10.00",
               "--note", "[/oops]")
    bespoke.ok("order", "finish", oid, "--as", "seller:acme")
    bespoke.ok("order", "qc", oid, "--as", "seller:acme", "--fail", "--note", "[bold red]PASSED[/] [link=x]y[/link]")
    status = bespoke.ok("order", "status", oid).stdout  # raised MarkupError before
    assert "[/b]" in status and "[green]VERIFIED[/green] :thumbs_up:" in status and "👍" not in status
    history = bespoke.ok("order", "history", oid).stdout
    assert "[/oops]" in history and "[bold red]PASSED[/] [link=x]y[/link]" in history
    listed = bespoke.ok("order", "list", "--buyer", "[/b]").stdout  # the buyer broke everyone's list
    assert oid in listed and "[/b]" in listed
    assert "[/b]" in bespoke.ok("order", "list").stdout


def test_control_and_bidi_characters_in_notes_never_reach_the_terminal(bespoke: Bespoke) -> None:
    oid = in_production(bespoke)
    note = f"clear{ESC}[2J{ESC}]0;owned{ESC}\\ \u202eenod\u202c zero\u200bwidth\nnext line"
    bespoke.ok("order", "milestone", oid, "--as", "seller:acme", "--milestone", "materials", "--cost", "1.00",
               "--note", note)
    for command in ("status", "history"):
        out = bespoke.ok("order", command, oid).stdout
        assert_no_terminal_controls(out)
        assert "clear\\x1b[2J\\x1b]0;owned" in out and "\\u202eenod\\u202c" in out and "zero\\u200bwidth" in out
    # JSON keeps the exact text (escaped as JSON does).
    timeline = bespoke.json("order", "history", oid)["timeline"]
    assert any(note in e["message"] for e in timeline)


def test_carrier_and_tracking_with_controls_are_refused_and_old_ones_print_escaped(bespoke: Bespoke) -> None:
    oid = in_production(bespoke)
    bespoke.ok("order", "finish", oid, "--as", "seller:acme")
    bespoke.ok("order", "qc", oid, "--as", "seller:acme", "--pass")
    for option, value, what in (("--carrier", f"sf{ESC}[31m", "carrier contains a control character"),
                                ("--tracking", "SF\u202e0987", "tracking contains a bidirectional-text control"),
                                ("--tracking", "SF\u200b123", "tracking contains an invisible character")):
        args = {"--carrier": "sf-express", "--tracking": "SF123", option: value}
        line = bespoke.fails(EXIT_REJECTED, "order", "ship", oid, "--as", "seller:acme",
                             *[item for pair in args.items() for item in pair])
        assert what in line and ESC not in line, line
        # After-sales `reship` builds the same payload and refuses the same way.
        line = bespoke.fails(EXIT_REJECTED, "order", "reship", oid, "--as", "seller:acme",
                             *[item for pair in args.items() for item in pair])
        assert what in line and ESC not in line, line
    assert bespoke.status(oid)["stage"] == "quality_check"  # nothing shipped

    # An API client (or an order from before the check) got them into the history.
    async def ship_raw() -> None:
        client = await connect(address=bespoke.env["TEMPORAL_ADDRESS"])
        payload = ShipInput(actor=Actor.parse("seller:acme"), carrier=f"sf{ESC}[31m", tracking="SF\u202e0987")
        await client.get_workflow_handle(workflow_id_for(oid)).execute_update("ship", payload)

    asyncio.run(ship_raw())
    for command in ("status", "history"):
        out = bespoke.ok("order", command, oid).stdout
        assert_no_terminal_controls(out)
        assert "sf\\x1b[31m" in out, out


def test_error_lines_show_user_text_escaped(bespoke: Bespoke) -> None:
    line = bespoke.fails(3, "order", "status", f"NO{ESC}[2JSUCH")
    assert ESC not in line and "NO\\x1b[2JSUCH" in line


EXOTIC_AMOUNTS = ["1e3", "١٢٣", "１２３", "1_000", ".5", "5.", "0x10"]


def test_amounts_that_only_look_like_numbers_are_refused(bespoke: Bespoke) -> None:
    oid = new_id("AMT")
    for text in EXOTIC_AMOUNTS:
        line = bespoke.fails(EXIT_REJECTED, "order", "create", "--id", oid, "--buyer", "alice", "--seller", "acme",
                             "--price", text)
        assert "not a plain decimal number" in line or "is not a number" in line, line
    bespoke.fails(3, "order", "status", oid)  # never created
    oid = in_production(bespoke)
    for text in EXOTIC_AMOUNTS:
        line = bespoke.fails(EXIT_REJECTED, "order", "milestone", oid, "--as", "seller:acme", "--milestone",
                             "materials", "--cost", text)
        assert "not a plain decimal number" in line or "is not a number" in line, line
    view = bespoke.status(oid)
    assert view["milestones"] == [] and view["costs_incurred"] == 0


def test_an_empty_id_is_an_error_not_a_random_id(bespoke: Bespoke) -> None:
    before = len(bespoke.json("order", "list", "--limit", "100000")["orders"])
    line = bespoke.fails(EXIT_REJECTED, "order", "create", "--id", "", "--buyer", "alice", "--seller", "acme",
                         "--price", "10")
    assert "--id is empty" in line
    bespoke.fails(EXIT_REJECTED, "order", "create", "--id", "  ", "--buyer", "alice", "--seller", "acme",
                  "--price", "10")
    assert len(bespoke.json("order", "list", "--limit", "100000")["orders"]) == before


def test_an_order_nobody_answers_ends_the_command_with_exit_4(bespoke: Bespoke) -> None:
    oid = new_id("NOBODY")
    nobody = {**bespoke.env, "BESPOKE_TASK_QUEUE": f"nobody-{uuid.uuid4().hex[:6]}"}
    bespoke.env, saved = nobody, bespoke.env
    try:
        bespoke.ok("order", "create", "--id", oid, "--buyer", "alice", "--seller", "acme", "--price", "10")
    finally:
        bespoke.env = saved
    bespoke.env = {**saved, "BESPOKE_CLI_TIMEOUT": "2"}
    try:
        line = bespoke.fails(EXIT_UNREACHABLE, "order", "accept", oid, "--as", "seller:acme")
        assert f"order {oid} did not take the `accept` action within 2s (it may still be applied" in line
        assert "BESPOKE_CLI_TIMEOUT" in line
        line = bespoke.fails(EXIT_UNREACHABLE, "order", "status", oid, "--json")
        assert "did not answer `status` within 2s" in line
    finally:
        bespoke.env = saved


def test_status_json_is_exactly_the_order_view(bespoke: Bespoke) -> None:
    """status --json prints the workflow's answer without decoding it into OrderView:
    that must be the very bytes OrderView would print."""
    oid = in_production(bespoke, buyer="José 张伟 🦊", title="walnut \"case\" \\ 1/2")
    bespoke.ok("order", "milestone", oid, "--as", "seller:acme", "--milestone", "materials", "--cost", "10.00",
               "--note", f"tab\there {ESC}[0m")
    out = bespoke.ok("order", "status", oid, "--json").stdout
    assert out.endswith("\n") and out.count("\n") == 1
    assert OrderView.model_validate_json(out).model_dump_json() == out.rstrip("\n")


def test_order_list_reads_the_same_rows_as_the_store(bespoke: Bespoke) -> None:
    """`order list` reads SQLite with the standard library; the store's SQLAlchemy
    query over the same file must give the same rows, filters included."""
    from bespoke.cli.order.reads import _sqlalchemy_rows, _sqlite_rows
    from bespoke.store import ORDER_INTERNAL_COLUMNS

    in_production(bespoke, buyer="list-check")
    url = f"sqlite:///{(bespoke.home / 'bespoke.db').as_posix()}"
    for args, filters in (([], {}), (["--stage", "in_production"], {"stage": "in_production"}),
                          (["--buyer", "list-check"], {"buyer": "list-check"}),
                          (["--seller", "acme", "--limit", "3"], {"seller": "acme"})):
        limit = int(args[args.index("--limit") + 1]) if "--limit" in args else 100
        printed = json.loads(bespoke.ok("order", "list", "--json", *args).stdout)["orders"]
        query = {"stage": None, "buyer": None, "seller": None, **filters}
        stored = _sqlalchemy_rows(url, query, limit)
        assert _sqlite_rows(url, query, limit) == stored and stored, args
        # What is printed is those rows less the bookkeeping columns (orders.revision).
        assert printed == [{k: v for k, v in r.items() if k not in ORDER_INTERNAL_COLUMNS} for r in stored], args
        assert all("revision" in r for r in stored) and not any("revision" in r for r in printed)
