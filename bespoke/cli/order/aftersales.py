"""After-sales actions, from delivery on: a return or repair case (request,
respond, answer an offer, ship the goods back, receive them, reship a repair)
and disputes (escalate, evidence, arbitration)."""

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


def _items(values: list[str] | None, what: str) -> tuple[str, ...]:
    return tuple(identifier(v, what, max_length=2000) for v in values or ())


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
    from bespoke.domain.models import ReturnRequestInput

    payload = model(ReturnRequestInput, actor=as_actor(actor), reason=reason, remedy=remedy,
                    description=description, evidence=_items(evidence, "evidence item"))
    act(order_id, "request_return", payload, as_json)


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
    from bespoke.domain.models import ReturnResponseInput

    who = as_actor(actor)
    if not amount:
        act(order_id, "respond_return", model(ReturnResponseInput, actor=who, action=action, amount=None,
                                              reason=reason), as_json)
        return
    act(order_id, "respond_return", None, as_json, priced=lambda cur: model(
        ReturnResponseInput, actor=who, action=action, amount=minor_units(amount, cur), reason=reason))


@app.command("answer-offer")
def answer_offer(
    order_id: OrderArg,
    actor: AsOpt,
    accept: Annotated[bool, typer.Option("--accept/--decline", help="Accept or decline the seller's offer.")],
    as_json: JsonOpt = False,
) -> None:
    """Buyer accepts or declines a partial-refund or repair offer."""
    from bespoke.domain.models import OfferAnswerInput

    act(order_id, "answer_offer", model(OfferAnswerInput, actor=as_actor(actor), accept=accept), as_json)


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
    from bespoke.domain.models import ShipReturnInput

    who, by, number = as_actor(actor), identifier(carrier, "carrier"), identifier(tracking, "tracking")
    act(order_id, "ship_return", None, as_json, priced=lambda cur: model(
        ShipReturnInput, actor=who, carrier=by, tracking=number,
        shipping_cost=minor_units(shipping_cost, cur, positive=False)))


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
    from bespoke.domain.models import ReceiveReturnInput

    who = as_actor(actor)
    act(order_id, "receive_return", None, as_json, priced=lambda cur: model(
        ReceiveReturnInput, actor=who, disposition=disposition,
        salvage_value=minor_units(salvage_value, cur, positive=False), note=note))


@app.command()
def reship(
    order_id: OrderArg,
    actor: AsOpt,
    carrier: CarrierOpt,
    tracking: TrackingOpt,
    as_json: JsonOpt = False,
) -> None:
    """Seller ships the repaired goods back to the buyer."""
    ship_action(order_id, "reship", actor, carrier, tracking, as_json)


@app.command()
def dispute(
    order_id: OrderArg,
    actor: AsOpt,
    claim: Annotated[str | None, typer.Option(help="Buyer: the refund claimed, major units.")] = None,
    statement: Annotated[str, typer.Option(help="The party's account of the problem.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Either party escalates a rejected or stuck case to platform operations."""
    from bespoke.domain.models import DisputeInput

    who = as_actor(actor)
    if not claim:
        act(order_id, "dispute", model(DisputeInput, actor=who, claim=None, statement=statement), as_json)
        return
    act(order_id, "dispute", None, as_json,
        priced=lambda cur: model(DisputeInput, actor=who, claim=minor_units(claim, cur), statement=statement))


@app.command()
def evidence(
    order_id: OrderArg,
    actor: AsOpt,
    item: Annotated[list[str] | None, typer.Option(help="Evidence reference; repeatable.")] = None,
    final: Annotated[bool, typer.Option("--final", help="Finalise this party's evidence (no more after this).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """A party to the dispute submits evidence (staged, then --final)."""
    from bespoke.domain.models import EvidenceInput

    payload = model(EvidenceInput, actor=as_actor(actor), items=_items(item, "evidence item"), final=final)
    act(order_id, "evidence", payload, as_json)


@app.command()
def arbitrate(
    order_id: OrderArg,
    actor: AsOpt,
    refund: Annotated[str, typer.Option(help="Refund to the buyer decided by ops, major units (0 = none).")],
    note: Annotated[str, typer.Option(help="The reasoning, shown on the timeline.")],
    as_json: JsonOpt = False,
) -> None:
    """Platform operations decide a dispute."""
    from bespoke.domain.models import ArbitrateInput

    who = as_actor(actor)

    def payload(cur: str) -> ArbitrateInput:
        minor = minor_units(refund, cur, positive=False)
        if minor < 0:
            raise Rejected("refund cannot be negative")
        return model(ArbitrateInput, actor=who, refund=minor, note=note)

    act(order_id, "arbitrate", None, as_json, priced=payload)
