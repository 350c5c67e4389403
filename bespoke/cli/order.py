"""`bespoke order ...`: create orders, act on them, and read their state.

Actions are Temporal updates: a validator in the workflow rejects the wrong
actor, the wrong stage or a bad amount before anything is recorded, and the
CLI prints that reason on one line and exits 2.
"""

from __future__ import annotations

import asyncio
import csv
import gc
import hashlib
import io
import json
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from bespoke.cli.errors import CliError, NotFound, Rejected, one_line
from bespoke.cli.errors import run_async
from bespoke.domain.models import (
    ActionResult,
    Actor,
    ActorInput,
    ArbitrateInput,
    DisputeInput,
    EvidenceInput,
    OfferAnswerInput,
    ReceiveReturnInput,
    ReturnRequestInput,
    ReturnResponseInput,
    ShipReturnInput,
    CancelInput,
    DeliverInput,
    MilestoneInput,
    OrderView,
    OverrideDeadlineInput,
    PayInput,
    PaymentPlan,
    QcInput,
    ReasonInput,
    RemitInput,
    Role,
    SalvageInput,
    ShipInput,
    Stage,
)
from bespoke.domain.money import MoneyError, check_currency, format_amount, parse_amount
from bespoke.domain.names import ORDER_ID_PATTERN, ORDER_ID_RULE
from bespoke.rules import CancellationFacts, PolicyError, find_policy
from bespoke.rules.durations import parse_duration
from bespoke.runtime.client import connect
from bespoke.service import (
    OrderExists,
    OrderRejected,
    build_order_input,
    order_handle,
    pydantic_message,
    start_order,
)
from bespoke.settings import Settings, get_settings

app = typer.Typer(help="Create orders, act on them, and read their state.", no_args_is_help=True)
out = Console()

AsOpt = Annotated[str, typer.Option("--as", help="Who acts, as ROLE:NAME (roles: buyer, seller, ops, carrier, system).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")]
OrderArg = Annotated[str, typer.Argument(help="The order id.")]
CarrierOpt = Annotated[str, typer.Option(help="Carrier name.")]
TrackingOpt = Annotated[str, typer.Option(help="Tracking number.")]


# ---------------------------------------------------------------- plumbing


def _actor(text: str) -> Actor:
    try:
        return Actor.parse(text)
    except ValueError as err:
        raise Rejected(str(err)) from None


def _amount(text: str, currency: str) -> int:
    try:
        value = parse_amount(text, currency)
    except MoneyError as err:
        raise Rejected(str(err)) from None
    if value <= 0:
        raise Rejected(f"amount must be positive, got {text}")
    return value


def _model(cls: type[BaseModel], **fields: Any) -> Any:
    try:
        return cls(**fields)
    except ValidationError as err:
        raise Rejected(pydantic_message(err)) from None


async def _client(settings: Settings) -> Client:
    return await connect(settings)


def _not_found(order_id: str, err: RPCError) -> NotFound | None:
    if err.status == RPCStatusCode.NOT_FOUND:
        return NotFound(f"order {order_id} not found")
    return None


def _drop_cycles() -> None:
    """Free reference cycles through the Temporal client now, so the client is
    gone before `run_async` shuts the Temporal runtime down. Errors are therefore
    raised outside `except` blocks (where the caught exception, whose traceback
    holds the frame, is no longer bound in the frame) and after `del client`."""
    gc.collect()


async def _view(client: Client, order_id: str) -> OrderView:
    failure: CliError | None = None
    try:
        return await order_handle(client, order_id).query("status", result_type=OrderView)
    except RPCError as err:
        failure = _not_found(order_id, err)
        if failure is None:
            raise
    del client
    _drop_cycles()
    raise failure


async def _update(order_id: str, update: str, payload: BaseModel) -> ActionResult:
    settings = get_settings()
    client = await _client(settings)
    handle = order_handle(client, order_id)
    failure: CliError | None = None
    try:
        return await handle.execute_update(update, payload, result_type=ActionResult)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        failure = Rejected(f"rejected: {getattr(cause, 'message', None) or str(cause or err)}")
    except RPCError as err:
        # A closed order answers NOT_FOUND too: say it is closed, not missing.
        if "workflow execution already completed" in err.message.lower():
            failure = Rejected(f"rejected: order {order_id} is closed")
        else:
            failure = _not_found(order_id, err)
            if failure is None:
                raise
    del handle, client
    _drop_cycles()
    raise failure


def _act(order_id: str, update: str, payload: BaseModel, as_json: bool = False) -> None:
    result = run_async(_update(order_id, update, payload))
    if as_json:
        typer.echo(result.model_dump_json())
    else:
        out.print(f"[bold]{result.order_id}[/bold] [cyan]{result.stage.value}[/cyan]: {result.message}")


async def _currency_of(order_id: str) -> str:
    client = await _client(get_settings())
    return (await _view(client, order_id)).currency


def _order_amount(order_id: str, text: str, *, positive: bool = True) -> int:
    """Parse a major-unit amount in the order's own currency."""
    currency = run_async(_currency_of(order_id))
    if positive:
        return _amount(text, currency)
    try:
        return parse_amount(text, currency)
    except MoneyError as err:
        raise Rejected(str(err)) from None


# ---------------------------------------------------------------- create


@app.command()
def create(
    buyer: Annotated[str, typer.Option(help="Buyer's account name.")],
    seller: Annotated[str, typer.Option(help="Seller's (maker's) account name.")],
    price: Annotated[str, typer.Option(help="Total price in major units, e.g. 12000.00.")],
    currency: Annotated[str, typer.Option(help="ISO 4217 currency code.")] = "CNY",
    plan: Annotated[
        str,
        typer.Option(help="Payment plan: full_prepayment, staged:30/70, staged:30/60/10, credit[:DAYS], cod, collection_account."),
    ] = "full_prepayment",
    production_days: Annotated[str, typer.Option(help="Days of production promised once the deposit is in.")] = "14",
    title: Annotated[str, typer.Option(help="What is being made.")] = "",
    earnest: Annotated[bool, typer.Option("--earnest", help="The deposit is an earnest deposit (定金, at most 20% of the price).")] = False,
    policy: Annotated[str | None, typer.Option(help="Policy NAME[@VERSION] to pin; default from BESPOKE_DEFAULT_POLICY.")] = None,
    order_id: Annotated[str | None, typer.Option("--id", help="Order id; generated when omitted.")] = None,
    actor: AsOpt = "ops:cli",
    as_json: JsonOpt = False,
) -> None:
    """Create an order and start its workflow."""
    settings = get_settings()
    inp = _order_input(
        settings,
        {
            "order_id": order_id or f"ORD-{uuid.uuid4().hex[:10].upper()}",
            "buyer": buyer, "seller": seller, "price": price, "currency": currency, "plan": plan,
            "production_days": production_days, "title": title, "earnest": earnest, "policy": policy,
        },
        _actor(actor),
    )

    async def go() -> None:
        client = await _client(settings)
        try:
            await start_order(client, inp, task_queue=settings.task_queue)
            return
        except OrderExists as err:
            failure = Rejected(str(err))
        del client
        _drop_cycles()
        raise failure

    run_async(go())
    if as_json:
        typer.echo(json.dumps({"order_id": inp.order_id, "stage": Stage.AWAITING_ACCEPTANCE.value,
                               "policy": {"name": inp.pin["name"], "version": inp.pin["version"]}}))
    else:
        out.print(f"created [bold]{inp.order_id}[/bold]: {format_amount(inp.price, inp.currency)}, "
                  f"plan {inp.plan.label()}, policy {inp.pin['name']}@{inp.pin['version']} — awaiting seller acceptance")


# The fields of an order row (CLI options, CSV columns, JSON keys). Anything else is
# refused: a misspelt optional column ("curency") would otherwise be ignored and the
# order created in the default currency.
ORDER_FIELDS = ("order_id", "buyer", "seller", "price", "currency", "plan", "production_days", "title",
                "earnest", "policy")
REQUIRED_FIELDS = ("buyer", "seller", "price")
IMPORT_CONCURRENCY = 16  # order starts in flight during an import
_TRUE = ("1", "true", "yes", "y")
_FALSE = ("0", "false", "no", "n", "")


def _text(row: dict[str, Any], key: str, *, numbers: bool = False) -> str | None:
    """A text field of a row; None when absent, null or blank. JSON numbers are
    accepted only where `numbers` (an order id such as 1001)."""
    value = row.get(key)
    if value is None:
        return None
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise Rejected(f"{key} must be text, got {_shown(value)}")
    return value if value.strip() else None


def _shown(value: Any) -> str:
    kind = {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object"}.get(type(value))
    text = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
    return f"{text} ({kind})" if kind else text


def _days(value: Any) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        return 14
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal)):
        raise Rejected(f"production_days must be a whole number of days, got {_shown(value)}")
    text = str(value).strip()
    if not text.isascii() or not text.lstrip("+-").isdigit():
        raise Rejected(f"production_days must be a whole number of days, got {_shown(value)}")
    if len(text) > 4 or not 1 <= int(text) <= 365:
        raise Rejected(f"production_days must be between 1 and 365, got {_shown(value)}")
    return int(text)


def _flag(value: Any, key: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise Rejected(f"{key} must be true or false (yes/no, 1/0), got {_shown(value)}")


def _order_input(settings: Settings, row: dict[str, Any], created_by: Actor,
                 policies: dict[str, Any] | None = None):
    """Validate one order's fields (from options or an import row). `policies`
    caches policy lookups across the rows of one import (each lookup reads and
    validates the policy files: ~25 ms, four minutes over 10,000 rows)."""
    unknown = [k for k in row if k not in ORDER_FIELDS]
    if unknown:
        raise Rejected(f"unknown field {unknown[0]!r} (fields: {', '.join(ORDER_FIELDS)})")
    for key in REQUIRED_FIELDS:
        if row.get(key) is None or (isinstance(row[key], str) and not row[key].strip()):
            raise Rejected(f"missing field {key!r}")
    order_id = _text(row, "order_id", numbers=True)
    if order_id is None:
        raise Rejected("missing field 'order_id'")
    if not _ORDER_ID.fullmatch(order_id):
        raise Rejected(f"order id {order_id[:80]!r} is not valid: {ORDER_ID_RULE}")
    buyer, seller, title = _text(row, "buyer"), _text(row, "seller"), _text(row, "title")
    currency_text, plan_text, policy_ref = _text(row, "currency"), _text(row, "plan"), _text(row, "policy")
    try:
        currency = check_currency(currency_text or "CNY")
        ref = policy_ref or settings.default_policy
        policy = policies.get(ref) if policies is not None else None
        if policy is None:
            policy = find_policy(ref, [settings.policy_dir] if settings.policy_dir else [])
            if policies is not None:
                policies[ref] = policy
        plan = PaymentPlan.parse(plan_text or "full_prepayment")
        price = parse_amount(row["price"], currency)
        if price <= 0:
            raise OrderRejected(f"price must be positive, got {row['price']}")
        days = _days(row.get("production_days"))
        earnest = _flag(row.get("earnest"), "earnest")
        return build_order_input(
            order_id=order_id, buyer=buyer or "", seller=seller or "",
            price=price, currency=currency, plan=plan, production_days=days, policy=policy,
            created_by=created_by, title=title or "", earnest_deposit=earnest,
        )
    except (MoneyError, OrderRejected, PolicyError) as err:
        raise Rejected(str(err)) from None
    except ValidationError as err:
        raise Rejected(pydantic_message(err)) from None
    except ValueError as err:
        raise Rejected(str(err)) from None


_ORDER_ID = re.compile(ORDER_ID_PATTERN)


# ---------------------------------------------------------------- import


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of an import file, or Rejected (one line) if the file as a whole is
    unusable: then nothing is started."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise Rejected(f"{path}: no such file") from None
    except OSError as err:
        raise Rejected(f"{path}: cannot read: {err.strerror or err}") from None
    if not data.strip():
        raise Rejected(f"{path}: the file is empty")
    try:
        text = data.decode("utf-8-sig")  # a spreadsheet's BOM is fine
    except UnicodeDecodeError as err:
        hint = " (it looks like UTF-16: save it as UTF-8)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise Rejected(f"{path}: not UTF-8 text (byte {err.start}){hint}") from None
    if "\x00" in text:
        raise Rejected(f"{path}: contains NUL bytes: not a text file")
    if path.suffix.lower() == ".json":
        return _json_rows(path, text)
    return _csv_rows(path, text)


def _json_rows(path: Path, text: str) -> list[dict[str, Any]]:
    try:
        # Decimal: a JSON number such as 1200.10 reaches parse_amount exactly.
        data = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as err:
        raise Rejected(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from None
    except (ValueError, RecursionError) as err:  # a 5,000-digit number; nesting too deep
        raise Rejected(f"{path}: not usable JSON ({type(err).__name__}: {str(err)[:80]})") from None
    if isinstance(data, dict) and "orders" in data:
        data = data["orders"]
    if not isinstance(data, list):
        raise Rejected(f"{path}: expected a JSON list of order objects (or {{\"orders\": [...]}}), "
                       f"got {type(data).__name__}")
    for number, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            raise Rejected(f"{path}: item {number} is {type(item).__name__}, not an order object")
    return data


def _csv_rows(path: Path, text: str) -> list[dict[str, Any]]:
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as err:
        raise Rejected(f"{path}: not valid CSV ({err})") from None
    header = [h.strip() for h in rows[0]] if rows else []
    if not {"buyer", "seller", "price"} <= set(header):
        first = rows[0][0] if rows and rows[0] else ""
        for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
            if sep in first:
                raise Rejected(f"{path}: the header is separated by {name}; use commas (CSV)")
        if first.lstrip().startswith(("[", "{")):
            raise Rejected(f"{path}: looks like JSON; name the file .json")
        missing = [c for c in REQUIRED_FIELDS if c not in header]
        raise Rejected(f"{path}: expected a CSV header with at least buyer,seller,price "
                       f"(missing: {','.join(missing)})")
    unknown = [h for h in header if h not in ORDER_FIELDS]
    if unknown:
        raise Rejected(f"{path}: unknown column {unknown[0]!r} (columns: {','.join(ORDER_FIELDS)})")
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise Rejected(f"{path}: column {duplicated[0]!r} appears twice in the header")
    out_rows: list[dict[str, Any]] = []
    for line, values in enumerate(rows[1:], start=2):
        if not values:  # a blank line
            continue
        if len(values) != len(header):
            # A price like 1,500.00 left unquoted, or a missing value: never guess which.
            raise Rejected(f"{path}: line {line} has {len(values)} values for {len(header)} columns")
        out_rows.append(dict(zip(header, values)))
    return out_rows


def _row_id(row: dict[str, Any]) -> str:
    """Rows without an id get one derived from their content, so importing the
    same file twice never creates an order twice."""
    if row.get("order_id") is not None and str(row["order_id"]).strip():
        return str(row["order_id"]).strip()
    # Decimal as float: the same digest as before JSON numbers were read exactly.
    canonical = json.dumps({k: row[k] for k in sorted(row)}, sort_keys=True,
                           default=lambda v: float(v) if isinstance(v, Decimal) else str(v))
    return "IMP-" + hashlib.sha256(canonical.encode()).hexdigest()[:12].upper()


@app.command("import")
def import_orders(
    file: Annotated[Path, typer.Argument(help="CSV (with a header) or JSON list of orders.")],
    actor: AsOpt = "ops:import",
    as_json: JsonOpt = False,
) -> None:
    """Start one order per row; report each row; safe to run twice."""
    settings = get_settings()
    rows = _read_rows(file)
    created_by = _actor(actor)

    # Validate every row first (no server needed), then start the valid ones with a
    # few in flight: one at a time, each start is a round trip and 10,000 rows took
    # minutes. A later row with an id already in this file is reported "exists", as
    # it was when rows were started one by one.
    policies: dict[str, Any] = {}
    results: list[dict[str, Any]] = []
    pending: list[tuple[dict[str, Any], Any]] = []
    first_row_of: dict[str, dict[str, Any]] = {}
    for number, row in enumerate(rows, start=1):
        row = {k.strip() if isinstance(k, str) else k: v for k, v in row.items() if k is not None}
        oid = _row_id(row)
        try:
            inp = _order_input(settings, {**row, "order_id": oid}, created_by, policies)
        except Rejected as err:
            results.append({"row": number, "status": "rejected", "error": one_line(err.message)})
            continue
        result = {"row": number, "order_id": inp.order_id, "status": "exists"}
        results.append(result)
        if inp.order_id not in first_row_of:
            first_row_of[inp.order_id] = result
            pending.append((result, inp))

    progress = _import_progress(len(rows))
    task = progress.add_task("importing", total=len(rows)) if progress is not None else None
    if progress is not None:
        progress.update(task, advance=len(rows) - len(pending))

    async def go() -> None:
        client = await _client(settings)
        slots = asyncio.Semaphore(IMPORT_CONCURRENCY)

        async def start(result: dict[str, Any], inp: Any) -> None:
            async with slots:
                try:
                    await start_order(client, inp, task_queue=settings.task_queue)
                    result["status"] = "created"
                except OrderExists:
                    result["status"] = "exists"
            if progress is not None:
                progress.update(task, advance=1)

        await asyncio.gather(*(start(result, inp) for result, inp in pending))

    if progress is None:
        run_async(go())
    else:
        with progress:
            run_async(go())
    counts = {s: sum(1 for r in results if r["status"] == s) for s in ("created", "exists", "rejected")}
    if as_json:
        typer.echo(json.dumps({"results": results, **counts}))
    else:
        for r in results:
            if r["status"] == "rejected":
                typer.echo(f"row {r['row']}: rejected: {r['error']}", err=True)
            elif len(rows) <= 50:
                out.print(f"row {r['row']}: {r['status']} {r['order_id']}")
        out.print(f"{counts['created']} created, {counts['exists']} already existed, {counts['rejected']} rejected")
    if counts["rejected"]:
        raise typer.Exit(2)


def _import_progress(total: int) -> Progress | None:
    """A progress bar on stderr (rows done / total, rate, time left) for a person
    watching a large import; nothing when stderr is not a terminal, so scripts and
    --json output stay clean. Transient: the per-row report follows it."""
    console = Console(stderr=True)
    if total <= 50 or not console.is_interactive:
        return None
    return Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True)


# ---------------------------------------------------------------- reads


@app.command()
def status(order_id: OrderArg, as_json: JsonOpt = False) -> None:
    """Live state of one order (from the workflow itself)."""

    async def go() -> OrderView:
        return await _view(await _client(get_settings()), order_id)

    view = run_async(go())
    if as_json:
        typer.echo(view.model_dump_json())
        return
    _print_view(view)


def _print_view(v: OrderView) -> None:
    m = lambda x: format_amount(x, v.currency)  # noqa: E731
    out.print(f"[bold]{v.order_id}[/bold] {v.title}  [cyan]{v.stage.value}[/cyan]  next: {v.next_step}")
    out.print(f"buyer {v.buyer} · seller {v.seller} · plan {v.payment_plan} · policy {v.policy.name}@{v.policy.version}")
    out.print(f"price {m(v.price)} · paid {m(v.paid)} · in escrow {m(v.escrow)} · refunded {m(v.refunded)} · "
              f"released to seller {m(v.released_to_seller)} · fee {m(v.platform_fee)}")
    extras = [f"due now {m(v.amount_due)}" if v.amount_due else "",
              f"costs incurred {m(v.costs_incurred)}" if v.costs_incurred else "",
              f"late penalty {m(v.late_penalty)}" if v.late_penalty else "",
              f"credit outstanding {m(v.credit_outstanding)}" if v.credit_outstanding else ""]
    if any(extras):
        out.print(" · ".join(e for e in extras if e))
    for c in v.cases:
        out.print(f"[bold]case {c.number}[/bold] ({c.reason}, wants {c.remedy}): "
                  + (f"closed — {c.outcome}" if c.outcome else c.state)
                  + (f", offer {m(c.offer)}" if c.offer else "") + (f", claim {m(c.claim)}" if c.claim else ""))
        if c.evidence:
            out.print("  evidence: " + "; ".join(f"{e.party}: {e.item}" for e in c.evidence))
    if v.deadlines:
        table = Table("deadline", "due at (UTC)", "if missed", title=None)
        for d in v.deadlines:
            table.add_row(d.name, d.due_at.strftime("%Y-%m-%d %H:%M"), d.default_action)
        out.print(table)
    table = Table("#", "at (UTC)", "who", "what")
    for e in v.timeline[-15:]:
        table.add_row(str(e.seq), e.at.strftime("%Y-%m-%d %H:%M"), e.actor, e.message)
    out.print(table)
    for d in v.decisions[-3:]:
        out.print(f"decision {d.get('decision_id')}: {d.get('summary', '')}")


@app.command("list")
def list_orders(
    stage: Annotated[str | None, typer.Option(help="Only orders in this stage.")] = None,
    buyer: Annotated[str | None, typer.Option(help="Only this buyer's orders.")] = None,
    seller: Annotated[str | None, typer.Option(help="Only this seller's orders.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Orders from the read model, newest first."""
    from sqlmodel import Session, select

    from bespoke.store.db import get_engine
    from bespoke.store.tables import OrderRow

    if stage is not None:
        try:
            stage = Stage(stage).value
        except ValueError:
            raise Rejected(f"unknown stage {stage!r} (stages: {', '.join(s.value for s in Stage)})") from None
    engine = get_engine(get_settings().effective_database_url)
    query = select(OrderRow).order_by(OrderRow.created_at.desc()).limit(limit)
    if stage:
        query = query.where(OrderRow.stage == stage)
    if buyer:
        query = query.where(OrderRow.buyer == buyer)
    if seller:
        query = query.where(OrderRow.seller == seller)
    with Session(engine) as session:
        rows = session.exec(query).all()
    if as_json:
        typer.echo(json.dumps({"orders": [r.model_dump(mode="json") for r in rows]}))
        return
    table = Table("order", "stage", "buyer", "seller", "plan", "price", "paid", "updated (UTC)")
    for r in rows:
        table.add_row(r.order_id, r.stage, r.buyer, r.seller, r.payment_plan, format_amount(r.price, r.currency),
                      format_amount(r.paid, r.currency), r.updated_at.strftime("%Y-%m-%d %H:%M"))
    out.print(table)


@app.command()
def history(order_id: OrderArg, as_json: JsonOpt = False) -> None:
    """The order's full timeline: every action, deadline and decision."""

    async def go() -> OrderView:
        return await _view(await _client(get_settings()), order_id)

    view = run_async(go())
    if as_json:
        typer.echo(json.dumps({"order_id": order_id, "timeline": [e.model_dump(mode="json") for e in view.timeline]}))
        return
    table = Table("#", "at (UTC)", "kind", "who", "what")
    for e in view.timeline:
        table.add_row(str(e.seq), e.at.strftime("%Y-%m-%d %H:%M:%S"), e.kind, e.actor, e.message)
    out.print(table)


@app.command("quote-cancel")
def quote_cancel(
    order_id: OrderArg,
    by: Annotated[str, typer.Option(help="Who would cancel: buyer or seller.")] = "buyer",
    as_json: JsonOpt = False,
) -> None:
    """What cancelling right now would cost each party, with the explanation.
    Changes nothing."""
    from bespoke.activities.rules import policy_from_dict
    from bespoke.rules import decide_cancellation

    if by not in ("buyer", "seller"):
        raise Rejected("--by must be buyer or seller")

    async def go():
        client = await _client(get_settings())
        handle = order_handle(client, order_id)
        failure: CliError | None = None
        try:
            facts = await handle.query("quote_facts", args=[Role(by), datetime.now(UTC)], result_type=CancellationFacts)
            policy = await handle.query("pinned_policy", result_type=dict)
            return facts, policy
        except WorkflowQueryFailedError as err:  # the workflow refused: not cancellable now
            failure = Rejected(f"rejected: {err}")
        except RPCError as err:
            failure = _not_found(order_id, err)
            if failure is None:
                raise
        del handle, client
        _drop_cycles()
        raise failure

    facts, policy = run_async(go())
    decision = decide_cancellation(policy_from_dict(policy), facts, decision_id=f"{order_id}:quote")
    if as_json:
        typer.echo(decision.model_dump_json())
        return
    m = lambda x: format_amount(x, facts.currency)  # noqa: E731
    out.print(f"[bold]If the {by} cancelled {order_id} now[/bold] (stage {facts.stage}):")
    out.print(f"  refund to buyer      {m(decision.refund_to_buyer + decision.seller_pays_buyer)}")
    out.print(f"  to seller            {m(decision.to_seller)}")
    out.print(f"  platform fee         {m(decision.platform_fee)}")
    if decision.buyer_owes_seller:
        out.print(f"  buyer still owes     {m(decision.buyer_owes_seller)}")
    out.print(f"because: {decision.explanation.summary}")
    for rule in decision.explanation.matched:
        out.print(f"  rule {rule.rule_id}: {rule.because}")


# ---------------------------------------------------------------- actions


@app.command()
def accept(order_id: OrderArg, actor: AsOpt, as_json: JsonOpt = False) -> None:
    """Seller accepts the order."""
    _act(order_id, "accept", _model(ActorInput, actor=_actor(actor)), as_json)


@app.command()
def pay(
    order_id: OrderArg,
    actor: AsOpt,
    amount: Annotated[str, typer.Option(help="Amount in major units, e.g. 3000.00.")],
    reference: Annotated[str, typer.Option(help="Payment reference; each may be used once.")],
    currency: Annotated[str | None, typer.Option(help="Currency; must match the order's.")] = None,
    method: Annotated[str, typer.Option(help="card, wallet, bank_transfer or credit_repayment.")] = "card",
    as_json: JsonOpt = False,
) -> None:
    """Record a payment toward what is due now (deposit, balance, retention, credit)."""
    try:
        cur = check_currency(currency) if currency else run_async(_currency_of(order_id))
    except MoneyError as err:
        raise Rejected(str(err)) from None
    payload = _model(PayInput, actor=_actor(actor), amount=_amount(amount, cur), currency=cur,
                     reference=reference, method=method)
    _act(order_id, "pay", payload, as_json)


@app.command()
def milestone(
    order_id: OrderArg,
    actor: AsOpt,
    name: Annotated[str, typer.Option("--milestone", help="materials, fabrication or finishing.")],
    cost: Annotated[str, typer.Option(help="Cost incurred for this milestone, in major units.")],
    note: Annotated[str, typer.Option(help="Free text.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Seller records a production milestone and the cost it incurred."""
    cost_minor = _order_amount(order_id, cost, positive=False)
    payload = _model(MilestoneInput, actor=_actor(actor), milestone=name, cost=cost_minor, note=note)
    _act(order_id, "milestone", payload, as_json)


@app.command()
def salvage(
    order_id: OrderArg,
    actor: AsOpt,
    value: Annotated[str, typer.Option(help="What the made goods resell for as stock, in major units.")],
    as_json: JsonOpt = False,
) -> None:
    """Seller records the salvage value of the goods made so far."""
    minor = _order_amount(order_id, value, positive=False)
    _act(order_id, "salvage", _model(SalvageInput, actor=_actor(actor), value=minor), as_json)


@app.command()
def finish(order_id: OrderArg, actor: AsOpt, as_json: JsonOpt = False) -> None:
    """Seller finishes production; the order goes to the quality check."""
    _act(order_id, "finish_production", _model(ActorInput, actor=_actor(actor)), as_json)


@app.command()
def qc(
    order_id: OrderArg,
    actor: AsOpt,
    passed: Annotated[bool, typer.Option("--pass/--fail", help="Result of the factory quality check.")],
    note: Annotated[str, typer.Option(help="Findings.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Seller records the factory quality check (a fail sends it back to rework)."""
    _act(order_id, "quality_check", _model(QcInput, actor=_actor(actor), passed=passed, note=note), as_json)


@app.command()
def ship(
    order_id: OrderArg,
    actor: AsOpt,
    carrier: CarrierOpt,
    tracking: TrackingOpt,
    as_json: JsonOpt = False,
) -> None:
    """Seller ships the goods."""
    _act(order_id, "ship", _model(ShipInput, actor=_actor(actor), carrier=carrier, tracking=tracking), as_json)


@app.command()
def deliver(
    order_id: OrderArg,
    actor: AsOpt,
    collected: Annotated[str | None, typer.Option(help="Cash on delivery: amount collected at the door.")] = None,
    reference: Annotated[str | None, typer.Option(help="Collection receipt reference.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Carrier records delivery (and, for cash on delivery, the collection)."""
    minor = _order_amount(order_id, collected) if collected else None
    payload = _model(DeliverInput, actor=_actor(actor), collected=minor, reference=reference)
    _act(order_id, "deliver", payload, as_json)


@app.command()
def refuse(
    order_id: OrderArg,
    actor: AsOpt,
    reason: Annotated[str, typer.Option(help="Why the goods were refused.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Cash on delivery: the buyer refuses the goods at the door; they go back."""
    _act(order_id, "refuse", _model(ReasonInput, actor=_actor(actor), reason=reason), as_json)


@app.command()
def remit(
    order_id: OrderArg,
    actor: AsOpt,
    amount: Annotated[str, typer.Option(help="Cash remitted, in major units.")],
    reference: Annotated[str, typer.Option(help="Remittance reference.")],
    as_json: JsonOpt = False,
) -> None:
    """Cash on delivery: the carrier remits what it collected."""
    minor = _order_amount(order_id, amount)
    _act(order_id, "remit", _model(RemitInput, actor=_actor(actor), amount=minor, reference=reference), as_json)


@app.command()
def confirm(order_id: OrderArg, actor: AsOpt, as_json: JsonOpt = False) -> None:
    """Buyer confirms receipt: escrow is released to the seller."""
    _act(order_id, "confirm", _model(ActorInput, actor=_actor(actor)), as_json)


@app.command()
def cancel(
    order_id: OrderArg,
    actor: AsOpt,
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Cancel before delivery; the policy allocates the costs (see quote-cancel)."""
    _act(order_id, "cancel", _model(CancelInput, actor=_actor(actor), reason=reason), as_json)


# ---------------------------------------------------------------- after-sales


@app.command("return")
def return_(
    order_id: OrderArg,
    actor: AsOpt,
    reason: Annotated[str, typer.Option(help="defect, not_as_specified, damaged_in_transit or changed_mind.")],
    remedy: Annotated[str, typer.Option(help="What the buyer wants: refund or repair.")] = "refund",
    description: Annotated[str, typer.Option(help="What is wrong.")] = "",
    evidence: Annotated[list[str] | None, typer.Option(help="Evidence reference (photo URL, file id); repeatable.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Buyer opens a return/repair case (inspection window or after-sales window)."""
    payload = _model(ReturnRequestInput, actor=_actor(actor), reason=reason, remedy=remedy,
                     description=description, evidence=tuple(evidence or ()))
    _act(order_id, "request_return", payload, as_json)


@app.command()
def respond(
    order_id: OrderArg,
    actor: AsOpt,
    action: Annotated[str, typer.Option(help="approve, reject, offer_partial or offer_repair.")],
    amount: Annotated[str | None, typer.Option(help="offer_partial: the refund offered, in major units.")] = None,
    reason: Annotated[str, typer.Option(help="Why (for a rejection).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Seller answers a return request (silence past the deadline approves it)."""
    minor = _order_amount(order_id, amount) if amount else None
    payload = _model(ReturnResponseInput, actor=_actor(actor), action=action, amount=minor, reason=reason)
    _act(order_id, "respond_return", payload, as_json)


@app.command("answer-offer")
def answer_offer(
    order_id: OrderArg,
    actor: AsOpt,
    accept: Annotated[bool, typer.Option("--accept/--decline", help="Accept or decline the seller's offer.")],
    as_json: JsonOpt = False,
) -> None:
    """Buyer accepts or declines a partial-refund or repair offer."""
    _act(order_id, "answer_offer", _model(OfferAnswerInput, actor=_actor(actor), accept=accept), as_json)


@app.command("ship-return")
def ship_return(
    order_id: OrderArg,
    actor: AsOpt,
    carrier: CarrierOpt,
    tracking: TrackingOpt,
    shipping_cost: Annotated[str, typer.Option(help="What the buyer paid to send it back, major units.")] = "0",
    as_json: JsonOpt = False,
) -> None:
    """Buyer ships the goods back (for a refund or a repair)."""
    cost = _order_amount(order_id, shipping_cost, positive=False)
    payload = _model(ShipReturnInput, actor=_actor(actor), carrier=carrier, tracking=tracking, shipping_cost=cost)
    _act(order_id, "ship_return", payload, as_json)


@app.command("receive-return")
def receive_return(
    order_id: OrderArg,
    actor: AsOpt,
    disposition: Annotated[str, typer.Option(help="resell_as_stock, scrap or rework.")],
    salvage_value: Annotated[str, typer.Option(help="resell_as_stock: what the goods resell for, major units.")] = "0",
    note: Annotated[str, typer.Option(help="Inspection findings.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Seller confirms the returned goods arrived and what becomes of them."""
    salvage = _order_amount(order_id, salvage_value, positive=False)
    payload = _model(ReceiveReturnInput, actor=_actor(actor), disposition=disposition, salvage_value=salvage, note=note)
    _act(order_id, "receive_return", payload, as_json)


@app.command()
def reship(
    order_id: OrderArg,
    actor: AsOpt,
    carrier: CarrierOpt,
    tracking: TrackingOpt,
    as_json: JsonOpt = False,
) -> None:
    """Seller ships the repaired goods back to the buyer."""
    _act(order_id, "reship", _model(ShipInput, actor=_actor(actor), carrier=carrier, tracking=tracking), as_json)


@app.command()
def dispute(
    order_id: OrderArg,
    actor: AsOpt,
    claim: Annotated[str | None, typer.Option(help="Buyer: the refund claimed, major units.")] = None,
    statement: Annotated[str, typer.Option(help="The party's account of the problem.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Either party escalates a rejected or stuck case to platform operations."""
    minor = _order_amount(order_id, claim) if claim else None
    _act(order_id, "dispute", _model(DisputeInput, actor=_actor(actor), claim=minor, statement=statement), as_json)


@app.command()
def evidence(
    order_id: OrderArg,
    actor: AsOpt,
    item: Annotated[list[str] | None, typer.Option(help="Evidence reference; repeatable.")] = None,
    final: Annotated[bool, typer.Option("--final", help="Finalise this party's evidence (no more after this).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """A party to the dispute submits evidence (staged, then --final)."""
    payload = _model(EvidenceInput, actor=_actor(actor), items=tuple(item or ()), final=final)
    _act(order_id, "evidence", payload, as_json)


@app.command()
def arbitrate(
    order_id: OrderArg,
    actor: AsOpt,
    refund: Annotated[str, typer.Option(help="Refund to the buyer decided by ops, major units (0 = none).")],
    note: Annotated[str, typer.Option(help="The reasoning, shown on the timeline.")],
    as_json: JsonOpt = False,
) -> None:
    """Platform operations decide a dispute."""
    minor = _order_amount(order_id, refund, positive=False)
    if minor < 0:
        raise Rejected("refund cannot be negative")
    _act(order_id, "arbitrate", _model(ArbitrateInput, actor=_actor(actor), refund=minor, note=note), as_json)


@app.command()
def override(
    order_id: OrderArg,
    deadline: Annotated[str, typer.Argument(help="The running deadline, as `order status` names it (e.g. inspection_window).")],
    actor: AsOpt,
    reason: Annotated[str, typer.Option(help="Why; shown on the timeline with who did it.")],
    extend: Annotated[str | None, typer.Option(help='Move the deadline later by an ISO-8601 duration ("P3D", "PT12H").')] = None,
    now: Annotated[bool, typer.Option("--now", help="Bring the deadline to now: its default action happens at once.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Platform operations move a running deadline: --extend it, or bring it to --now."""
    if (extend is None) == (not now):
        raise Rejected("give exactly one of --extend DURATION or --now")
    seconds = 0
    if extend is not None:
        try:
            seconds = int(parse_duration(extend).total_seconds())
        except ValueError as err:
            raise Rejected(f"--extend: {err}") from None
        if seconds <= 0:
            raise Rejected("--extend must be longer than zero")
    payload = _model(OverrideDeadlineInput, actor=_actor(actor), deadline=deadline, extend_seconds=seconds,
                     now=now, reason=reason)
    _act(order_id, "override_deadline", payload, as_json)
