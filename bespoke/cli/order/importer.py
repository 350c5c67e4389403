"""`bespoke order import`: one order per row of a CSV or JSON file, validated like
`order create`, started a few at a time; safe to run twice (row ids are derived
from the row's content when the file has none)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bespoke.cli.errors import Rejected, long_running, one_line
from bespoke.cli.order.common import AsOpt, JsonOpt, app, as_actor, out
from bespoke.cli.order.create import ORDER_FIELDS, REQUIRED_FIELDS, order_input
from bespoke.cli.output import console, text
from bespoke.settings import get_settings

if TYPE_CHECKING:
    from rich.progress import Progress

    from bespoke.cli.order.client import OrderClient

IMPORT_CONCURRENCY = 16  # order starts in flight during an import


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of an import file, or Rejected (one line) if the file as a whole is
    unusable: then nothing is started."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise Rejected(f"{path}: no such file") from None
    except OSError as err:
        raise Rejected(f"{path}: cannot read: {err.strerror or err}") from None
    return parse_rows(data, str(path), as_json=path.suffix.lower() == ".json")


def parse_rows(data: bytes, name: str, *, as_json: bool) -> list[dict[str, Any]]:
    """`read_rows` on a file's bytes (`name` for the messages): the portal's upload."""
    path = name
    if not data.strip():
        raise Rejected(f"{path}: the file is empty")
    try:
        content = data.decode("utf-8-sig")  # a spreadsheet's BOM is fine
    except UnicodeDecodeError as err:
        hint = " (it looks like UTF-16: save it as UTF-8)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise Rejected(f"{path}: not UTF-8 text (byte {err.start}){hint}") from None
    if "\x00" in content:
        raise Rejected(f"{path}: contains NUL bytes: not a text file")
    if as_json:
        return _json_rows(path, content)
    return _csv_rows(path, content)


def _json_rows(path: Path | str, content: str) -> list[dict[str, Any]]:
    try:
        # Decimal: a JSON number such as 1200.10 reaches parse_amount exactly.
        data = json.loads(content, parse_float=Decimal)
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


def _csv_rows(path: Path | str, content: str) -> list[dict[str, Any]]:
    try:
        rows = list(csv.reader(io.StringIO(content, newline="")))
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
            # A price like 1,500.00 left unquoted, or a missing value: never guess
            # which. The row is refused; the others are imported.
            out_rows.append(BadLine(f"line {line} has {len(values)} values for {len(header)} columns "
                                    "(a missing value, or an unquoted comma such as 1,500.00)"))
            continue
        out_rows.append(dict(zip(header, values)))
    return out_rows


class BadLine(dict):
    """A CSV line that cannot be read as a row: reported `row N: rejected`."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


def row_id(row: dict[str, Any]) -> str:
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
    from bespoke.cli.order.client import run

    long_running()  # a file may hold 10,000 rows
    settings = get_settings()
    rows = read_rows(file)
    created_by = as_actor(actor)

    results, pending = validate_rows(settings, rows, created_by)
    progress = _import_progress(len(rows))
    task = progress.add_task("importing", total=len(rows)) if progress is not None else None
    if progress is not None:
        progress.update(task, advance=len(rows) - len(pending))

    async def go(client: OrderClient) -> None:
        await start_rows(client, settings, pending,
                         on_done=(lambda: progress.update(task, advance=1)) if progress is not None else None)

    if progress is None:
        run(go, settings)
    else:
        with progress:
            run(go, settings)
    counts = import_counts(results)
    if as_json:
        typer.echo(json.dumps({"results": results, **counts}))
    else:
        for r in results:
            if r["status"] == "rejected":
                typer.echo(f"row {r['row']}: rejected: {r['error']}", err=True)
            elif len(rows) <= 50:
                out.print(text(f"row {r['row']}: {r['status']} ", r["order_id"]))
        out.print(f"{counts['created']} created, {counts['exists']} already existed, {counts['rejected']} rejected")
    if counts["rejected"]:
        raise typer.Exit(2)


def validate_rows(settings: Any, rows: list[dict[str, Any]], created_by: Any
                  ) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], Any]]]:
    """Every row's report (`{"row", "status", "order_id" | "error"}`) and the orders
    to start, each with its report to update. No server is needed: a row is
    validated as `order create` validates, and a later row with an id already in
    this file is reported "exists", as when rows were started one by one."""
    policies: dict[str, Any] = {}
    frozen: dict[str, str] = {}
    results: list[dict[str, Any]] = []
    pending: list[tuple[dict[str, Any], Any]] = []
    first_row_of: dict[str, dict[str, Any]] = {}
    for number, row in enumerate(rows, start=1):
        if isinstance(row, BadLine):
            results.append({"row": number, "status": "rejected", "error": row.error})
            continue
        row = {k.strip() if isinstance(k, str) else k: v for k, v in row.items() if k is not None}
        oid = row_id(row)
        try:
            inp = order_input(settings, {**row, "order_id": oid}, created_by, policies, frozen)
        except Rejected as err:
            results.append({"row": number, "status": "rejected", "error": one_line(err.message)})
            continue
        result = {"row": number, "order_id": inp.order_id, "status": "exists"}
        results.append(result)
        if inp.order_id not in first_row_of:
            first_row_of[inp.order_id] = result
            pending.append((result, inp))
    return results, pending


async def start_rows(client: OrderClient, settings: Any, pending: list[tuple[dict[str, Any], Any]], *,
                     on_done: Any = None) -> None:
    """Start the validated orders, IMPORT_CONCURRENCY in flight; each report says
    "created", or "exists" if the order was there already. One at a time, each
    start is a round trip, and 10,000 rows took minutes."""
    import asyncio

    from bespoke.service import OrderExists, start_order

    slots = asyncio.Semaphore(IMPORT_CONCURRENCY)

    async def start(result: dict[str, Any], inp: Any) -> None:
        async with slots:
            try:
                await client.bounded(start_order(client.client, inp, task_queue=settings.task_queue),
                                     f"row {result['row']}: order {inp.order_id} was not started")
                result["status"] = "created"
            except OrderExists:
                result["status"] = "exists"
        if on_done is not None:
            on_done()

    await asyncio.gather(*(start(result, inp) for result, inp in pending))


def import_counts(results: list[dict[str, Any]]) -> dict[str, int]:
    return {s: sum(1 for r in results if r["status"] == s) for s in ("created", "exists", "rejected")}


def _import_progress(total: int) -> Progress | None:
    """A progress bar on stderr (rows done / total, rate, time left) for a person
    watching a large import; nothing when stderr is not a terminal, so scripts and
    --json output stay clean. Transient: the per-row report follows it."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    err = console(stderr=True)
    if total <= 50 or not err.is_interactive:
        return None
    return Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True)
