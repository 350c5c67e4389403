"""`bespoke order create`, and the validation of one order's fields that it shares
with `bespoke order import` (options, CSV cells and JSON values alike)."""

from __future__ import annotations

import json
import re
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bespoke.cli.errors import Rejected
from bespoke.cli.order.common import AsOpt, JsonOpt, app, as_actor, minor_units, out
from bespoke.cli.output import text
from bespoke.domain.names import ORDER_ID_PATTERN, ORDER_ID_RULE
from bespoke.settings import Settings, get_settings

if TYPE_CHECKING:
    from bespoke.cli.order.client import OrderClient
    from bespoke.domain.models import Actor, OrderInput

# The fields of an order row (CLI options, CSV columns, JSON keys). Anything else is
# refused: a misspelt optional column ("curency") would otherwise be ignored and the
# order created in the default currency.
ORDER_FIELDS = ("order_id", "buyer", "seller", "price", "currency", "plan", "production_days", "title",
                "earnest", "policy")
REQUIRED_FIELDS = ("buyer", "seller", "price")
_TRUE = ("1", "true", "yes", "y")
_FALSE = ("0", "false", "no", "n", "")
_ORDER_ID = re.compile(ORDER_ID_PATTERN)


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
    from bespoke.cli.order.client import run
    from bespoke.domain.models import Stage
    from bespoke.domain.money import format_amount

    if order_id is not None and not order_id.strip():
        # An empty --id (an unset shell variable) must not quietly become a random id.
        raise Rejected("--id is empty: give an order id, or leave --id out to have one generated")
    settings = get_settings()
    inp = order_input(
        settings,
        {
            "order_id": order_id if order_id is not None else f"ORD-{uuid.uuid4().hex[:10].upper()}",
            "buyer": buyer, "seller": seller, "price": price, "currency": currency, "plan": plan,
            "production_days": production_days, "title": title, "earnest": earnest, "policy": policy,
        },
        as_actor(actor),
    )

    async def go(client: OrderClient) -> None:
        from bespoke.service import OrderExists, start_order

        try:
            await client.bounded(start_order(client.client, inp, task_queue=settings.task_queue),
                                 f"order {inp.order_id} was not started")
        except OrderExists as err:
            raise Rejected(str(err)) from None

    run(go, settings)
    if as_json:
        typer.echo(json.dumps({"order_id": inp.order_id, "stage": Stage.AWAITING_ACCEPTANCE.value,
                               "policy": {"name": inp.pin["name"], "version": inp.pin["version"]}}))
    else:
        out.print(text("created ", (inp.order_id, "bold"), f": {format_amount(inp.price, inp.currency)}, ",
                       f"plan {inp.plan.label()}, policy {inp.pin['name']}@{inp.pin['version']} — awaiting seller acceptance"))


def order_input(settings: Settings, row: dict[str, Any], created_by: Actor,
                policies: dict[str, Any] | None = None, frozen: dict[str, str] | None = None) -> OrderInput:
    """Validate one order's fields (from options or an import row). `policies`
    caches policy lookups across the rows of one import (each lookup reads and
    validates the policy files: ~25 ms, four minutes over 10,000 rows)."""
    from pydantic import ValidationError

    from bespoke.domain.models import PaymentPlan, PlanKind
    from bespoke.domain.money import MoneyError, check_currency
    from bespoke.rules import PolicyError, find_policy
    from bespoke.service import OrderRejected, build_order_input, pydantic_message

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
        price = minor_units(row["price"], currency, what="price")
        days = _days(row.get("production_days"))
        earnest = _flag(row.get("earnest"), "earnest")
        inp = build_order_input(
            order_id=order_id, buyer=buyer or "", seller=seller or "",
            price=price, currency=currency, plan=plan, production_days=days, policy=policy,
            created_by=created_by, title=title or "", earnest_deposit=earnest,
            store=_policy_store(settings),
        )
    except (MoneyError, OrderRejected, PolicyError) as err:
        raise Rejected(str(err)) from None
    except ValidationError as err:
        raise Rejected(pydantic_message(err)) from None
    except ValueError as err:
        raise Rejected(str(err)) from None
    if inp.plan.kind is PlanKind.CREDIT:
        _refuse_frozen_credit(settings, inp.buyer, frozen)
    return inp


def _policy_store(settings: Settings) -> Any:
    """The database whose policy store the order's pinned policy goes into (the
    worker's rules look it up there by the pin)."""
    from bespoke.store.db import get_engine

    return get_engine(settings.effective_database_url)


def _refuse_frozen_credit(settings: Settings, buyer: str, cache: dict[str, str] | None) -> None:
    """A credit order for a buyer whose credit is frozen would only be cancelled at
    acceptance, when the reservation is refused: refuse it now, saying since which
    order. `cache` keeps the answer per buyer across the rows of one import."""
    if cache is None or buyer not in cache:
        from bespoke.store.db import get_engine
        from bespoke.store.tables import BuyerAccount
        from sqlmodel import Session

        with Session(get_engine(settings.effective_database_url)) as session:
            account = session.get(BuyerAccount, buyer)
            reason = (account.frozen_reason or "frozen by ops") if account is not None and account.frozen else ""
        if cache is None:
            cache = {}
        cache[buyer] = reason
    if cache[buyer]:
        raise Rejected(f"buyer {buyer}'s credit is frozen ({cache[buyer]}): no credit order until ops "
                       f"lifts the freeze (`bespoke buyer credit {buyer} --unfreeze ...`); another plan works")


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
    raw = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
    return f"{raw} ({kind})" if kind else raw


def _days(value: Any) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        return 14
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal)):
        raise Rejected(f"production_days must be a whole number of days, got {_shown(value)}")
    raw = str(value).strip()
    if not raw.isascii() or not raw.lstrip("+-").isdigit():
        raise Rejected(f"production_days must be a whole number of days, got {_shown(value)}")
    if len(raw) > 4 or not 1 <= int(raw) <= 365:
        raise Rejected(f"production_days must be between 1 and 365, got {_shown(value)}")
    return int(raw)


def _flag(value: Any, key: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise Rejected(f"{key} must be true or false (yes/no, 1/0), got {_shown(value)}")
