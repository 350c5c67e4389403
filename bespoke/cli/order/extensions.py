"""`bespoke order extend-inspection | ask-more-time | answer-more-time`: the extra
time the parties may ask for, as the order's policy `[extensions]` allows."""

from __future__ import annotations

from typing import Annotated

import typer

from bespoke.cli.errors import Rejected
from bespoke.cli.order.common import AsOpt, JsonOpt, OrderArg, act, app, as_actor, model


def _seconds(option: str, text: str) -> int:
    from bespoke.rules.durations import parse_duration

    try:
        seconds = int(parse_duration(text).total_seconds())
    except ValueError as err:
        raise Rejected(f"{option}: {err}") from None
    if seconds <= 0:
        raise Rejected(f"{option} must be longer than zero")
    return seconds


@app.command("extend-inspection")
def extend_inspection(
    order_id: OrderArg,
    actor: AsOpt,
    by: Annotated[str | None, typer.Option(help='Seller only: how long, an ISO-8601 duration ("P5D"). The buyer '
                                                'extends by the policy\'s fixed amount and gives none.')] = None,
    reason: Annotated[str, typer.Option(help="Why; shown on the timeline.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Extend the inspection window: the buyer once, when little of it is left; the
    seller for the buyer, within the policy's cap."""
    from bespoke.domain.extensions import ExtendInspectionInput

    seconds = _seconds("--by", by) if by is not None else 0
    act(order_id, "extend_inspection",
        model(ExtendInspectionInput, actor=as_actor(actor), extend_seconds=seconds, reason=reason), as_json)


@app.command("ask-more-time")
def ask_more_time(
    order_id: OrderArg,
    actor: AsOpt,
    by: Annotated[str, typer.Option(help='How much more production time, an ISO-8601 duration ("P5D").')],
    reason: Annotated[str, typer.Option(help="Why; the buyer sees it on the timeline.")],
    as_json: JsonOpt = False,
) -> None:
    """The seller asks the buyer for more production time (before the promised date)."""
    from bespoke.domain.extensions import AskMoreTimeInput

    act(order_id, "ask_more_time",
        model(AskMoreTimeInput, actor=as_actor(actor), extend_seconds=_seconds("--by", by), reason=reason), as_json)


@app.command("answer-more-time")
def answer_more_time(
    order_id: OrderArg,
    actor: AsOpt,
    accept: Annotated[bool, typer.Option("--accept/--refuse", help="Accept (the promised date moves) or refuse.")],
    note: Annotated[str, typer.Option(help="A note for the seller, on the timeline.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """The buyer answers the seller's request for more production time."""
    from bespoke.domain.extensions import AnswerMoreTimeInput

    act(order_id, "answer_more_time", model(AnswerMoreTimeInput, actor=as_actor(actor), accept=accept, note=note),
        as_json)
