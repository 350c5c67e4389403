"""Exit codes and user-facing errors of the `bespoke` command.

Commands raise :class:`CliError` subclasses (or let runtime errors through); the root
command group turns them into ONE line on stderr and the contract's exit code, never
a traceback. Set ``BESPOKE_DEBUG=1`` to get the traceback of an unexpected error.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import typer
from typer.core import TyperGroup

from bespoke.runtime.errors import RuntimeLayerError

# The CLI contract (DESIGN.md): scripts depend on these numbers.
EXIT_OK = 0
EXIT_ERROR = 1  # anything the contract does not name (configuration, bugs)
EXIT_REJECTED = 2  # bad input, or action not allowed now; nothing changed
EXIT_NOT_FOUND = 3  # order not found
EXIT_UNREACHABLE = 4  # Temporal unreachable

T = TypeVar("T")


class CliError(Exception):
    """An error to show the user as one line, exiting with ``code``."""

    code: int = EXIT_ERROR

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class Rejected(CliError):
    """Bad input or an action not allowed in the order's current stage (exit 2)."""

    code = EXIT_REJECTED


class NotFound(CliError):
    """No such order (exit 3)."""

    code = EXIT_NOT_FOUND


class Unreachable(CliError):
    """Temporal did not answer (exit 4)."""

    code = EXIT_UNREACHABLE


def classify(exc: BaseException) -> tuple[str, int] | None:
    """The one-line message and exit code for ``exc``, or None if it is not ours to
    translate (Typer's own exit/usage exceptions, KeyboardInterrupt)."""
    if isinstance(exc, (typer.Exit, typer.Abort, typer.TyperException)):
        return None
    if isinstance(exc, CliError):
        return exc.message, exc.code
    from bespoke.settings import SettingsError

    if isinstance(exc, SettingsError):
        return f"configuration: {exc}", EXIT_ERROR
    # Temporal's errors have one mapping, next to the client helper that meets them.
    from bespoke.cli.order.client import temporal_failure

    failure = temporal_failure(exc)
    if failure is not None:
        return failure.message, failure.code
    if isinstance(exc, RuntimeLayerError):
        return str(exc), EXIT_ERROR
    if type(exc).__module__.startswith("pydantic"):
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            errors = exc.errors()
            first = errors[0] if errors else {"loc": (), "msg": str(exc)}
            where = ".".join(str(p) for p in first.get("loc", ()))
            return f"invalid {exc.title}{' ' + where if where else ''}: {first['msg']}", EXIT_REJECTED
    if isinstance(exc, Exception):
        return f"unexpected error: {type(exc).__name__}: {exc}", EXIT_ERROR
    return None


def one_line(message: str) -> str:
    """A message as ONE printable line: whitespace runs (newlines included) become one
    space, and anything a terminal would act on is shown escaped (see cli/output.py)."""
    from bespoke.cli.output import shown

    return shown(" ".join(message.split()))


def error_prefix() -> str:
    """``"error: "`` when running under the `bespoke` command (scripts grep for it),
    empty when a sub-app runs on its own (`bespoke.cli.policy.app` in its tests)."""
    try:
        from click import get_current_context
    except ImportError:  # Typer 0.2x vendors Click
        from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    return "error: " if ctx is not None and isinstance(ctx.find_root().command, BespokeGroup) else ""


def report(exc: BaseException) -> int | None:
    """Print ``exc`` as one line on stderr and return its exit code (None: not ours)."""
    classified = classify(exc)
    if classified is None:
        return None
    message, code = classified
    typer.echo(f"error: {one_line(message)}", err=True)
    return code


class BespokeGroup(TyperGroup):
    """Root command group: every command (sub-apps included) runs inside ``invoke``,
    so this is the single place errors become exit codes."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        # Usage errors (a missing option, a bad flag value) are bad input too: one
        # line and exit 2, like every other rejection, not Typer's usage box.
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except typer.TyperException as err:  # Click's usage errors (exit code 2) and kin
            ctx = getattr(err, "ctx", None)
            where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            message = err.format_message() if hasattr(err, "format_message") else str(err)
            typer.echo(f"error: {one_line(message)}{where}", err=True)
            sys.exit(getattr(err, "exit_code", EXIT_REJECTED))
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            sys.exit(EXIT_ERROR)
        sys.exit(result if isinstance(result, int) else EXIT_OK)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if os.environ.get("BESPOKE_DEBUG") and not isinstance(exc, (CliError, typer.TyperException)):
                raise
            code = report(exc)
            if code is None:
                raise
            raise typer.Exit(code) from None


class SuggestingGroup(TyperGroup):
    """A group whose commands are loaded on use: "Did you mean ...?" for a typo is
    drawn from every command's name, not only from those already loaded."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except typer.TyperException as err:
            message = getattr(err, "message", None)
            if not args or not isinstance(message, str) or not message.startswith("No such command"):
                raise
            from difflib import get_close_matches

            matches = get_close_matches(args[0], self.list_commands(ctx))
            message = message.split(" Did you mean")[0].rstrip(".")
            err.message = f"{message}. Did you mean {', '.join(repr(m) for m in matches)}?" if matches \
                else f"{message}."
            raise


def long_running() -> None:
    """Turn the cyclic garbage collector back on, for a command that runs for long
    or over much data (`up`, `worker`, `order import`). The `bespoke` entry point
    starts with it off: a command that answers in a fraction of a second frees
    everything at exit anyway, and the collector's passes over the ~20 MB of
    objects that importing temporalio and pydantic creates were 10-15% of
    `order status` (bespoke.cli.app.main)."""
    import gc

    gc.enable()


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine to completion (a forced stop exits 130, quietly).

    The Temporal runtime is not shut down here: its Rust threads could touch
    Python during interpreter finalization and abort a short-lived process
    (SIGABRT, "PyGILState_Release", temporalio/sdk-python#300). The `bespoke` entry
    point ends with a flushed ``os._exit`` instead (bespoke.cli.app.main), which
    skips finalization altogether, and 100-300 ms of teardown with it.
    """
    import asyncio

    try:
        return asyncio.run(coro)
    except asyncio.CancelledError:
        raise typer.Exit(130) from None
