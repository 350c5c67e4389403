"""Reading orders: `status` and `history` (the workflow's live state), `list` (the
read model) and `quote-cancel` (a what-if that changes nothing). Every value that
came from a person is printed literally (bespoke/cli/output.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bespoke.cli.errors import CliError, Rejected
from bespoke.cli.order.common import JsonOpt, OrderArg, app, out
from bespoke.cli.output import cell, text
from bespoke.settings import get_settings

if TYPE_CHECKING:
    from bespoke.cli.order.client import OrderClient
    from bespoke.domain.models import OrderView


def _view(order_id: str, **page: int | None) -> OrderView:
    from bespoke.cli.order.client import run

    async def go(client: OrderClient) -> OrderView:
        return await client.view(order_id, **page)

    return run(go)


AllOpt = Annotated[bool, typer.Option("--all", help="Every timeline entry, from the read model (the workflow "
                                                    "keeps the newest 500).")]


def _read_model_timeline(order_id: str) -> list[dict[str, Any]]:
    """Every timeline entry of the order, from the read model, oldest first."""
    from sqlmodel import Session, select

    from bespoke.store.db import get_engine
    from bespoke.store.tables import TimelineRow

    with Session(get_engine(get_settings().effective_database_url)) as session:
        rows = session.exec(select(TimelineRow).where(TimelineRow.order_id == order_id)
                            .order_by(TimelineRow.seq)).all()
        return [{"seq": r.seq, "at": r.at.replace(tzinfo=UTC) if r.at.utcoffset() is None else r.at,
                 "kind": r.kind, "actor": r.actor, "message": r.message} for r in rows]


@app.command()
def status(order_id: OrderArg, as_json: JsonOpt = False, all_entries: AllOpt = False) -> None:
    """Live state of one order (from the workflow itself)."""
    if as_json:
        typer.echo(_status_json(order_id, all_entries))
        return
    view = _view(order_id, timeline_limit=None if all_entries else STATUS_ENTRIES)
    if all_entries:
        from bespoke.domain.models import TimelineEntry

        entries = [TimelineEntry.model_validate(e) for e in _read_model_timeline(order_id)]
        view = view.model_copy(update={"timeline": entries, "timeline_more": False})
    _print_view(view, limit=None if all_entries else STATUS_ENTRIES)


# Timeline entries `status` prints (the newest), and a page of `history`.
STATUS_ENTRIES = 15
HISTORY_PAGE = 200

# The fields DESIGN.md's CLI contract promises in `order status --json`.
CONTRACT_FIELDS = ("order_id", "stage", "policy", "payment_plan", "price", "currency", "paid", "refunded",
                   "released_to_seller", "costs_incurred", "deadlines", "timeline", "decisions")


def _status_json(order_id: str, all_entries: bool = False) -> str:
    """The `status` answer as JSON, printed as the workflow's OrderView serialised it.

    Not decoded into OrderView and dumped again: for one order that is the same
    bytes (tests/cli/test_orders.py checks it), and building the domain models costs
    ~40 ms of a command whose budget is a bare Temporal client's. What the contract
    promises is checked here instead."""
    from bespoke.cli.order.client import run

    async def go(client: OrderClient) -> dict[str, Any]:
        return await client.query(order_id, "status", result_type=dict)

    answer = run(go)
    missing = [k for k in CONTRACT_FIELDS if k not in answer]
    if missing:
        raise CliError(f"order {order_id} answered `status` without {', '.join(missing)}: "
                       "is its worker running another version of bespoke?")
    if all_entries:
        answer["timeline"], answer["timeline_more"] = _read_model_timeline(order_id), False
    return json.dumps(answer, ensure_ascii=False, separators=(",", ":"), default=_iso)


def _iso(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _print_view(v: OrderView, limit: int | None = STATUS_ENTRIES) -> None:
    from rich.table import Table

    from bespoke.domain.money import format_amount

    def m(x: int) -> str:
        return format_amount(x, v.currency)

    out.print(text((v.order_id, "bold"), " ", v.title, "  ", (v.stage.value, "cyan"), "  next: ", v.next_step,
                   f" (by {v.next_step_due:%Y-%m-%d %H:%M} UTC)" if v.next_step_due else ""))
    out.print(text(f"buyer {v.buyer} · seller {v.seller} · plan {v.payment_plan} · "
                   f"policy {v.policy.name}@{v.policy.version}"))
    out.print(text(f"price {m(v.price)} · paid {m(v.paid)} · in escrow {m(v.escrow)} · refunded {m(v.refunded)} · "
                   f"released to seller {m(v.released_to_seller)} · fee {m(v.platform_fee)}"))
    extras = [f"due now {m(v.amount_due)}" if v.amount_due else "",
              f"costs incurred {m(v.costs_incurred)}" if v.costs_incurred else "",
              f"late penalty {m(v.late_penalty)}" if v.late_penalty else "",
              f"credit outstanding {m(v.credit_outstanding)}" if v.credit_outstanding else ""]
    if any(extras):
        out.print(text(" · ".join(e for e in extras if e)))
    for d in v.owes:
        out.print(text(("owed: ", "bold"), f"{d.debtor} owes {d.creditor} {m(d.amount)}: {d.why}",
                       f" (due {d.due_at:%Y-%m-%d %H:%M} UTC)" if d.due_at else ""))
    for c in v.cases:
        state = f"closed — {c.outcome}" if c.outcome else c.state
        out.print(text((f"case {c.number}", "bold"), f" ({c.reason}, wants {c.remedy}): {state}",
                       f", offer {m(c.offer)}" if c.offer else "", f", claim {m(c.claim)}" if c.claim else ""))
        if c.evidence:
            out.print(text("  evidence: " + "; ".join(f"{e.party}: {e.item}" for e in c.evidence)))
    if v.deadlines:
        table = Table("deadline", "due at (UTC)", "if missed", title=None)
        for d in v.deadlines:
            table.add_row(cell(d.name), d.due_at.strftime("%Y-%m-%d %H:%M"), cell(d.default_action))
        out.print(table)
    table = Table("#", "at (UTC)", "who", "what")
    for e in (v.timeline[-limit:] if limit else v.timeline):
        table.add_row(str(e.seq), e.at.strftime("%Y-%m-%d %H:%M"), cell(e.actor), cell(e.message))
    out.print(table)
    if v.timeline and (v.timeline_more or len(v.timeline) > (limit or len(v.timeline))):
        shown = v.timeline[-limit:] if limit else v.timeline
        out.print(text(f"entries {shown[0].seq}–{shown[-1].seq} of {v.timeline_total}; "
                       f"all of them: bespoke order history {v.order_id} --all"))
    for d in v.decisions[-3:]:
        out.print(text(f"decision {d.get('decision_id')}: {d.get('summary', '')}"))


@app.command()
def history(
    order_id: OrderArg,
    as_json: JsonOpt = False,
    all_entries: AllOpt = False,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many entries, the newest first "
                                                             "(a page).")] = HISTORY_PAGE,
    before: Annotated[int | None, typer.Option(min=1, help="Only entries before this seq (the next page: "
                                                          "the first seq shown).")] = None,
) -> None:
    """The order's timeline: every action, deadline and decision. A page of the
    newest entries from the workflow; `--all` reads every entry from the read model."""
    from rich.table import Table

    if all_entries:
        entries = _read_model_timeline(order_id)
        if not entries:
            _view(order_id, timeline_limit=0)  # exit 3 if there is no such order
        total, more = len(entries), False
    else:
        view = _view(order_id, timeline_limit=limit, timeline_before=before)
        entries = [e.model_dump(mode="json") for e in view.timeline]
        total, more = view.timeline_total, view.timeline_more
    if as_json:
        typer.echo(json.dumps({"order_id": order_id, "timeline": entries, "total": total,
                               "next_before": entries[0]["seq"] if more and entries else None},
                              default=_iso, ensure_ascii=False))
        return
    table = Table("#", "at (UTC)", "kind", "who", "what")
    for e in entries:
        at = e["at"] if isinstance(e["at"], datetime) else datetime.fromisoformat(e["at"])
        table.add_row(str(e["seq"]), at.strftime("%Y-%m-%d %H:%M:%S"), cell(e["kind"]), cell(e["actor"]),
                      cell(e["message"]))
    out.print(table)
    if more and entries:
        out.print(text(f"entries {entries[0]['seq']}–{entries[-1]['seq']} of {total}; older: --before "
                       f"{entries[0]['seq']}; all of them: --all"))


# ---------------------------------------------------------------- list (the read model)


@app.command("list")
def list_orders(
    stage: Annotated[str | None, typer.Option(help="Only orders in this stage.")] = None,
    buyer: Annotated[str | None, typer.Option(help="Only this buyer's orders.")] = None,
    seller: Annotated[str | None, typer.Option(help="Only this seller's orders.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Orders from the read model, newest first."""
    if stage is not None:
        from bespoke.domain.models import Stage

        try:
            stage = Stage(stage).value
        except ValueError:
            raise Rejected(f"unknown stage {stage!r} (stages: {', '.join(s.value for s in Stage)})") from None
    url = get_settings().effective_database_url
    filters = {"stage": stage, "buyer": buyer, "seller": seller}
    rows = _sqlite_rows(url, filters, limit)
    if rows is None:
        rows = _sqlalchemy_rows(url, filters, limit)
    from bespoke.store import ORDER_INTERNAL_COLUMNS

    rows = [{k: v for k, v in row.items() if k not in ORDER_INTERNAL_COLUMNS} for row in rows]
    if as_json:
        typer.echo(json.dumps({"orders": rows}))
        return
    from rich.table import Table

    from bespoke.domain.money import format_amount

    table = Table("order", "stage", "buyer", "seller", "plan", "price", "paid", "updated (UTC)")
    for r in rows:
        table.add_row(cell(r["order_id"]), cell(r["stage"]), cell(r["buyer"]), cell(r["seller"]),
                      cell(r["payment_plan"]), format_amount(r["price"], r["currency"]),
                      format_amount(r["paid"], r["currency"]),
                      datetime.fromisoformat(r["updated_at"]).strftime("%Y-%m-%d %H:%M"))
    out.print(table)


def _sqlalchemy_rows(url: str, filters: dict[str, str | None], limit: int) -> list[dict[str, Any]]:
    """The read model through the store (any database; migrates it to head first)."""
    from sqlmodel import Session, select

    from bespoke.store.db import get_engine
    from bespoke.store.tables import OrderRow

    query = select(OrderRow).order_by(OrderRow.created_at.desc()).limit(limit)
    for column, value in filters.items():
        if value:
            query = query.where(getattr(OrderRow, column) == value)
    with Session(get_engine(url)) as session:
        return [r.model_dump(mode="json") for r in session.exec(query).all()]


def _sqlite_rows(url: str, filters: dict[str, str | None], limit: int) -> list[dict[str, Any]] | None:
    """The same rows read with the standard library from the default SQLite read
    model, or None to take the store's path (another database, no file yet, a
    schema this query does not fit). Importing SQLAlchemy alone takes ~300 ms on a
    small machine, more than the whole command may; tests/cli/test_orders.py
    checks both paths print the same rows."""
    import sqlite3

    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else ""
    if not path or path == ":memory:" or "?" in path:
        return None
    where = [f"{column} = ?" for column, value in filters.items() if value]
    args = [value for value in filters.values() if value]
    sql = ("SELECT * FROM orders" + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY created_at DESC LIMIT ?")
    try:
        # Read-only, and no file created: a missing database is the store's to make.
        connection = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True, timeout=10)
    except sqlite3.Error:
        return None
    try:
        types = {row[1]: str(row[2]).upper() for row in connection.execute("PRAGMA table_info(orders)")}
        if not types:
            return None
        cursor = connection.execute(sql, [*args, limit])
        names = [d[0] for d in cursor.description]
        return [{name: _json_value(value, types.get(name, "")) for name, value in zip(names, row, strict=True)}
                for row in cursor.fetchall()]
    except sqlite3.Error:
        return None
    finally:
        connection.close()


def _json_value(value: Any, declared: str) -> Any:
    # As the store dumps the table model: SQLModel reads DATETIME text (UTC, no
    # offset) back as an aware UTC datetime, which pydantic writes with a "Z".
    if declared == "DATETIME" and isinstance(value, str):
        at = datetime.fromisoformat(value)
        at = at.replace(tzinfo=UTC) if at.utcoffset() is None else at.astimezone(UTC)
        return at.isoformat().removesuffix("+00:00") + "Z"
    if declared == "BOOLEAN" and isinstance(value, int):
        return bool(value)
    return value


# ---------------------------------------------------------------- quote-cancel


@app.command("quote-cancel")
def quote_cancel(
    order_id: OrderArg,
    by: Annotated[str, typer.Option(help="Who would cancel: buyer or seller.")] = "buyer",
    as_json: JsonOpt = False,
) -> None:
    """What cancelling right now would cost each party, with the explanation.
    Changes nothing."""
    from bespoke.cli.order.client import run

    if by not in ("buyer", "seller"):
        raise Rejected("--by must be buyer or seller")

    async def go(client: OrderClient) -> tuple[Any, dict[str, Any]]:
        from bespoke.domain.models import Role
        from bespoke.rules import CancellationFacts

        facts = await client.query(order_id, "quote_facts", Role(by), datetime.now(UTC),
                                   result_type=CancellationFacts, refusal_rejects=True)
        pinned = await client.query(order_id, "pinned_policy", result_type=dict | None)
        pin = await client.query(order_id, "policy_pin", result_type=dict)
        return facts, (pinned, pin)

    facts, (pinned, pin) = run(go)
    from bespoke.cli.errors import CliError
    from bespoke.rules import PolicyError, PolicyPin, decide_cancellation
    from bespoke.rules.describe import quote_text
    from bespoke.store.db import get_engine
    from bespoke.store.policies import order_policy

    try:
        # Decided with the pinned policy (from the policy store) and the pinned
        # plugin versions: a quote never uses other plugins than the order would.
        policy = order_policy(get_engine(get_settings().effective_database_url), pinned, pin)
        decision = decide_cancellation(policy, facts, decision_id=f"{order_id}:quote",
                                       pin=PolicyPin.model_validate(pin))
    except PolicyError as err:
        raise CliError(f"no quote for {order_id}: {err}") from None
    if as_json:
        typer.echo(decision.model_dump_json())
        return
    out.print(text((f"If the {by} cancelled {order_id} now", "bold"), f" (stage {facts.stage}):"))
    for line in quote_text(decision).splitlines():
        out.print(text(line))
