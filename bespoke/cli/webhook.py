"""`bespoke webhook ...`: operators' view of outbound webhooks (every principal's):
the subscriptions, a delivery log, and sending deliveries again.

Parties manage their own webhooks through the API (`/api/webhooks`); this is the
trusted side, with database access. An unknown webhook or event is exit 2
(rejected, nothing changed), as an unknown principal is."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from bespoke.cli.errors import Rejected
from bespoke.settings import get_settings

app = typer.Typer(help="Outbound webhooks: list subscriptions, read a delivery log, redeliver.",
                  no_args_is_help=True)
WebhookArg = Annotated[str, typer.Argument(help="The webhook id (wh_…), from `bespoke webhook list`.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _engine():
    from bespoke.store.db import get_engine

    return get_engine(get_settings().effective_database_url)


def _when(at) -> str | None:
    return at.isoformat() if at is not None else None


@app.command("list")
def list_webhooks(
    principal: Annotated[str | None, typer.Option("--principal", help="Only this principal's (ROLE:NAME).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every webhook subscription (never a secret), oldest first."""
    from bespoke.notifications import subscriptions as subs

    rows = [{"id": r.id, "principal": r.principal, "url": r.url, "event_types": r.event_types.split(),
             "enabled": r.enabled, "disabled_reason": r.disabled_reason, "failing_since": _when(r.failing_since),
             "last_success_at": _when(r.last_success_at), "created_at": _when(r.created_at)}
            for r in subs.list_for(_engine(), principal.strip() if principal else None)]
    if as_json:
        typer.echo(json.dumps({"webhooks": rows}, ensure_ascii=False))
        return
    from rich.table import Table

    from bespoke.cli.order.common import out
    from bespoke.cli.output import cell

    table = Table("id", "principal", "url", "events", "state")
    for r in rows:
        state = "enabled" if r["enabled"] else f"disabled: {r['disabled_reason']}"
        if r["enabled"] and r["failing_since"]:
            state = f"failing since {r['failing_since'][:16].replace('T', ' ')}"
        table.add_row(cell(r["id"]), cell(r["principal"]), cell(r["url"]), cell(" ".join(r["event_types"])),
                      cell(state))
    out.print(table)


@app.command("deliveries")
def deliveries(
    webhook: WebhookArg,
    status: Annotated[str | None, typer.Option("--status", help="pending, delivered or given_up.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=200, help="How many, newest first.")] = 50,
    before: Annotated[int | None, typer.Option("--before", min=1, help="Older than this delivery id (paging).")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """The webhook's delivery log: each event's status, attempts, last status code and error."""
    from bespoke.notifications import subscriptions as subs

    if status is not None and status not in (subs.PENDING, subs.DELIVERED, subs.GIVEN_UP):
        raise Rejected(f"--status must be pending, delivered or given_up, got {status[:40]!r}")
    try:
        rows, next_before = subs.deliveries(_engine(), webhook, status=status, limit=limit, before=before)
    except subs.NoSuchSubscription as err:
        raise Rejected(str(err)) from None
    items = [{"id": r.id, "event_id": r.event_id, "order_id": r.order_id, "event_type": r.event_type,
              "status": r.status, "attempts": r.attempts, "last_status_code": r.last_status_code,
              "last_error": r.last_error, "pending_since": _when(r.pending_since),
              "next_attempt_at": _when(r.next_attempt_at), "last_attempt_at": _when(r.last_attempt_at),
              "delivered_at": _when(r.delivered_at)} for r in rows]
    if as_json:
        typer.echo(json.dumps({"deliveries": items, "next_before": next_before}, ensure_ascii=False))
        return
    from rich.table import Table

    from bespoke.cli.order.common import out
    from bespoke.cli.output import cell

    table = Table("id", "event", "type", "status", "attempts", "last", "error")
    for d in items:
        table.add_row(str(d["id"]), cell(d["event_id"]), d["event_type"], d["status"], str(d["attempts"]),
                      str(d["last_status_code"] or ""), cell(d["last_error"]))
    out.print(table)
    if next_before is not None:
        out.print(f"older: --before {next_before}")


@app.command("redeliver")
def redeliver(
    webhook: WebhookArg,
    event: Annotated[str | None, typer.Option("--event", help="One event id to send again; default: every "
                                                             "delivery given up.")] = None,
) -> None:
    """Send deliveries again (and enable the webhook if it was disabled)."""
    from bespoke.notifications import subscriptions as subs

    try:
        n = subs.redeliver(_engine(), webhook, event_id=event)
    except subs.NoSuchSubscription as err:
        raise Rejected(str(err)) from None
    typer.echo(f"{n} deliver{'y' if n == 1 else 'ies'} of {webhook} pending again; the webhook is enabled.")
