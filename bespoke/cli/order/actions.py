"""Actions before and at delivery: accept, pay, production (milestones, salvage,
finish, quality check), ship, deliver, cash on delivery (refuse, remit), confirm
and cancel. Each is one update; the workflow's validator decides whether it is
allowed now (exit 2 with its reason when not)."""

from __future__ import annotations

from typing import Annotated

import typer

from bespoke.cli.errors import Rejected
from bespoke.cli.order.common import (
    AsOpt,
    CarrierOpt,
    JsonOpt,
    OrderArg,
    TrackingOpt,
    act,
    app,
    as_actor,
    identifier,
    minor_units,
    model,
    ship_action,
)


@app.command()
def accept(order_id: OrderArg, actor: AsOpt, as_json: JsonOpt = False) -> None:
    """Seller accepts the order."""
    from bespoke.domain.models import ActorInput

    act(order_id, "accept", model(ActorInput, actor=as_actor(actor)), as_json)


@app.command()
def pay(
    order_id: OrderArg,
    actor: AsOpt,
    amount: Annotated[str, typer.Option(help="Amount in major units, e.g. 3000.00.")],
    reference: Annotated[str, typer.Option(help="Payment reference; each may be used once.")],
    currency: Annotated[str | None, typer.Option(help="Currency; must match the order's.")] = None,
    method: Annotated[str, typer.Option(help="card, wallet, bank_transfer or credit_repayment.")] = "card",
    reason: Annotated[str, typer.Option(
        help="Why ops records this payment by hand (required with --as ops:NAME); at most what is due.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Record a payment toward what is due now (deposit, balance, retention, credit).

    Transfers to a collection account arrive through `bespoke bank receive` (or
    `bank match` for a held one); ops may record one by hand with a reason, up to
    what is due."""
    from bespoke.domain.models import PayInput, Role
    from bespoke.domain.money import MoneyError, check_currency

    who, ref = as_actor(actor), identifier(reference, "reference")
    if who.party.role is Role.SYSTEM:
        raise Rejected("payments by the bank come from `bespoke bank receive` or `bespoke bank match`, "
                       "not from `order pay`")
    reason = reason.strip()
    if who.party.role is Role.OPS and not reason:
        raise Rejected("a payment recorded by ops needs --reason")

    def payload(cur: str) -> PayInput:
        return model(PayInput, actor=who, amount=minor_units(amount, cur), currency=cur, reference=ref,
                     method=method, reason=reason)

    if currency is None:
        act(order_id, "pay", None, as_json, priced=payload)
        return
    try:
        cur = check_currency(currency)
    except MoneyError as err:
        raise Rejected(str(err)) from None
    act(order_id, "pay", payload(cur), as_json)


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
    from bespoke.domain.models import MilestoneInput

    who = as_actor(actor)
    act(order_id, "milestone", None, as_json, priced=lambda cur: model(
        MilestoneInput, actor=who, milestone=name, cost=minor_units(cost, cur, positive=False), note=note))


@app.command()
def salvage(
    order_id: OrderArg,
    actor: AsOpt,
    value: Annotated[str, typer.Option(help="What the made goods resell for as stock, in major units.")],
    as_json: JsonOpt = False,
) -> None:
    """Seller records the salvage value of the goods made so far."""
    from bespoke.domain.models import SalvageInput

    who = as_actor(actor)
    act(order_id, "salvage", None, as_json,
        priced=lambda cur: model(SalvageInput, actor=who, value=minor_units(value, cur, positive=False)))


@app.command()
def finish(order_id: OrderArg, actor: AsOpt, as_json: JsonOpt = False) -> None:
    """Seller finishes production; the order goes to the quality check."""
    from bespoke.domain.models import ActorInput

    act(order_id, "finish_production", model(ActorInput, actor=as_actor(actor)), as_json)


@app.command()
def qc(
    order_id: OrderArg,
    actor: AsOpt,
    passed: Annotated[bool, typer.Option("--pass/--fail", help="Result of the factory quality check.")],
    note: Annotated[str, typer.Option(help="Findings.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Seller records the factory quality check (a fail sends it back to rework)."""
    from bespoke.domain.models import QcInput

    act(order_id, "quality_check", model(QcInput, actor=as_actor(actor), passed=passed, note=note), as_json)


@app.command()
def ship(
    order_id: OrderArg,
    actor: AsOpt,
    carrier: CarrierOpt,
    tracking: TrackingOpt,
    as_json: JsonOpt = False,
) -> None:
    """Seller ships the goods."""
    ship_action(order_id, "ship", actor, carrier, tracking, as_json)


@app.command()
def deliver(
    order_id: OrderArg,
    actor: AsOpt,
    collected: Annotated[str | None, typer.Option(help="Cash on delivery: amount collected at the door.")] = None,
    reference: Annotated[str | None, typer.Option(help="Collection receipt reference.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Carrier records delivery (and, for cash on delivery, the collection)."""
    from bespoke.domain.models import DeliverInput

    who = as_actor(actor)
    ref = identifier(reference, "reference") if reference is not None else None
    if not collected:
        act(order_id, "deliver", model(DeliverInput, actor=who, collected=None, reference=ref), as_json)
        return
    act(order_id, "deliver", None, as_json, priced=lambda cur: model(
        DeliverInput, actor=who, collected=minor_units(collected, cur), reference=ref))


@app.command()
def refuse(
    order_id: OrderArg,
    actor: AsOpt,
    reason: Annotated[str, typer.Option(help="Why the goods were refused.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Cash on delivery: the buyer refuses the goods at the door; they go back."""
    from bespoke.domain.models import ReasonInput

    act(order_id, "refuse", model(ReasonInput, actor=as_actor(actor), reason=reason), as_json)


@app.command()
def remit(
    order_id: OrderArg,
    actor: AsOpt,
    amount: Annotated[str, typer.Option(help="Cash remitted, in major units.")],
    reference: Annotated[str, typer.Option(help="Remittance reference.")],
    as_json: JsonOpt = False,
) -> None:
    """Cash on delivery: the carrier remits what it collected."""
    from bespoke.domain.models import RemitInput

    who, ref = as_actor(actor), identifier(reference, "reference")
    act(order_id, "remit", None, as_json,
        priced=lambda cur: model(RemitInput, actor=who, amount=minor_units(amount, cur), reference=ref))


@app.command()
def confirm(order_id: OrderArg, actor: AsOpt, as_json: JsonOpt = False) -> None:
    """Buyer confirms receipt: escrow is released to the seller."""
    from bespoke.domain.models import ActorInput

    act(order_id, "confirm", model(ActorInput, actor=as_actor(actor)), as_json)


@app.command()
def cancel(
    order_id: OrderArg,
    actor: AsOpt,
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Cancel before delivery; the policy allocates the costs (see quote-cancel)."""
    from bespoke.domain.models import CancelInput

    act(order_id, "cancel", model(CancelInput, actor=as_actor(actor), reason=reason), as_json)
