"""`bespoke order override`: platform operations move a running deadline."""

from __future__ import annotations

from typing import Annotated

import typer

from bespoke.cli.errors import Rejected
from bespoke.cli.order.common import AsOpt, JsonOpt, OrderArg, act, app, as_actor, model


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
    from bespoke.domain.models import OverrideDeadlineInput
    from bespoke.rules.durations import parse_duration

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
    payload = model(OverrideDeadlineInput, actor=as_actor(actor), deadline=deadline, extend_seconds=seconds,
                    now=now, reason=reason)
    act(order_id, "override_deadline", payload, as_json)
