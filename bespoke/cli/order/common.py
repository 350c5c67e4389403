"""What the `bespoke order` modules share: the Typer app, the options every action
takes, and sending one action (parsing what people type is bespoke/cli/parsing.py).

Importing this (and the command modules) must stay cheap: `bespoke order list`
imports the modules up to the one defining `list` (OrderGroup), and answers in
under 250 ms only if the domain models, the rules and temporalio load inside the
commands that use them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.main

from bespoke.cli.errors import SuggestingGroup
from bespoke.cli.output import LazyConsole, text
from bespoke.cli.parsing import as_actor, identifier, minor_units, model

if TYPE_CHECKING:
    from bespoke.cli.order.client import OrderClient

__all__ = ["AsOpt", "CarrierOpt", "JsonOpt", "OrderArg", "TrackingOpt", "act", "app", "as_actor", "identifier",
           "minor_units", "model", "out", "ship_action"]

# The modules defining `bespoke order` commands, in the order `--help` lists them.
MODULES = ("create", "importer", "reads", "actions", "aftersales", "deadlines", "extensions")


class OrderGroup(SuggestingGroup):
    """`bespoke order`, building only the command that runs: modules are imported in
    MODULES order until one has registered it. Typer would otherwise build all 28
    commands (signatures, type hints) for every `bespoke order ...` call."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = self.commands.get(cmd_name)
        for module in MODULES:
            if command is not None:
                break
            importlib.import_module(f"{__package__}.{module}")
            command = self._build(cmd_name)
        return command

    def list_commands(self, ctx: Any) -> list[str]:
        for module in MODULES:
            importlib.import_module(f"{__package__}.{module}")
        names = [self._name(info) for info in app.registered_commands]
        for name in names:
            self.get_command(ctx, name)
        order = {f"{__package__}.{m}": i for i, m in enumerate(MODULES)}
        by_module = {self._name(info): order.get(info.callback.__module__, len(order))
                     for info in app.registered_commands if info.callback}
        return sorted(names, key=lambda n: by_module.get(n, len(order)))  # stable: registration order within

    def _build(self, cmd_name: str) -> Any:
        for info in app.registered_commands:
            if self._name(info) == cmd_name:
                command = typer.main.get_command_from_info(
                    info, pretty_exceptions_short=app.pretty_exceptions_short, rich_markup_mode=app.rich_markup_mode)
                self.commands[cmd_name] = command
                return command
        return None

    @staticmethod
    def _name(info: Any) -> str:
        return info.name or typer.main.get_command_name(info.callback.__name__)


app = typer.Typer(cls=OrderGroup, help="Create orders, act on them, and read their state.", no_args_is_help=True)
out = LazyConsole()

AsOpt = Annotated[str, typer.Option("--as", help="Who acts, as ROLE:NAME (roles: buyer, seller, ops, carrier, system).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")]
OrderArg = Annotated[str, typer.Argument(help="The order id.")]
CarrierOpt = Annotated[str, typer.Option(help="Carrier name.")]
TrackingOpt = Annotated[str, typer.Option(help="Tracking number.")]


# ---------------------------------------------------------------- sending an action

Payload = Callable[[str], Any]  # the order's currency -> the update's payload


def ship_action(order_id: str, update: str, actor: str, carrier: str, tracking: str, as_json: bool) -> None:
    """`ship` and after-sales `reship`: the same payload (who, carrier, tracking)."""
    from bespoke.domain.models import ShipInput

    payload = model(ShipInput, actor=as_actor(actor), carrier=identifier(carrier, "carrier"),
                    tracking=identifier(tracking, "tracking"))
    act(order_id, update, payload, as_json)


def act(order_id: str, update: str, payload: Any, as_json: bool = False, *, priced: Payload | None = None) -> None:
    """Send one action and print its result. `priced` builds the payload from the
    order's currency (for amounts), looked up on the same connection."""
    from bespoke.cli.order.client import run

    async def go(client: OrderClient) -> Any:
        body = priced(await client.currency(order_id)) if priced is not None else payload
        return await client.update(order_id, update, body)

    result = run(go)
    if as_json:
        typer.echo(result.model_dump_json())
    else:
        out.print(text((result.order_id, "bold"), " ", (result.stage.value, "cyan"), ": ", result.message))
