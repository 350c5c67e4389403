"""The `bespoke` command: root app, `up` and `worker`; `order` and `policy` are
mounted from their own modules."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated

import typer

from bespoke.cli.errors import BespokeGroup, CliError, report, run_async
from bespoke.settings import Settings, get_settings

app = typer.Typer(
    name="bespoke",
    cls=BespokeGroup,
    help="Made-to-order purchases as durable Temporal workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

RunWorker = Callable[..., Awaitable[None]]


def _mount(module: str, name: str, attr: str = "app") -> None:
    """Add a sub-app if its module exists, so a half-built tree still has a CLI."""
    try:
        sub = getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as err:
        if err.name and module.startswith(err.name):
            return  # not written yet
        _mount_broken(name, err)
    except Exception as err:  # noqa: BLE001 - one broken sub-app must not take down `up`
        _mount_broken(name, err)
    else:
        app.add_typer(sub, name=name)


def _mount_broken(name: str, err: BaseException) -> None:
    # A stand-in that accepts any arguments and explains why the real one is missing.
    @app.command(
        name=name,
        help=f"(unavailable: {type(err).__name__})",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    )
    def _unavailable() -> None:
        raise CliError(f"`bespoke {name}` is unavailable: {type(err).__name__}: {err}")


def _load_run_worker() -> RunWorker:
    try:
        from bespoke.worker import run_worker
    except ModuleNotFoundError as err:
        if err.name in ("bespoke.worker", "bespoke"):
            raise CliError("the worker is not available: bespoke.worker is not installed") from err
        raise
    return run_worker


@contextlib.contextmanager
def _shutdown_on_signals(shutdown: asyncio.Event) -> Iterator[None]:
    """First Ctrl-C/SIGTERM asks for a clean stop; a second one forces it."""
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    # SIGHUP too: the server runs in its own session, so a closed terminal would
    # otherwise orphan it.
    signals = [signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]

    def on_signal() -> None:
        if shutdown.is_set():
            typer.echo("Forced stop.", err=True)
            if main_task is not None:
                main_task.cancel()
            return
        typer.echo("Stopping (Ctrl-C again to force)...", err=True)
        shutdown.set()

    installed = []
    for sig in signals:
        try:
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # Windows: no loop signal handlers
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(on_signal))
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _up(settings: Settings, *, in_memory: bool, headless: bool) -> None:
    from bespoke.runtime.client import connect, ensure_search_attributes
    from bespoke.runtime.embedded import EmbeddedServer

    server = EmbeddedServer(settings, in_memory=in_memory, headless=headless)
    server.preflight()  # say "already running" before anything else
    run_worker = _load_run_worker()
    shutdown = asyncio.Event()
    with _shutdown_on_signals(shutdown):
        async with server:
            client = await connect(server.settings)
            await ensure_search_attributes(client, server.namespace)
            store = "in memory (lost on exit)" if server.db_path is None else str(server.db_path)
            typer.echo(
                "\n".join(
                    [
                        f"Temporal server ready in {server.startup_seconds:.1f}s",
                        f"  gRPC address:  {server.address}  (namespace {server.namespace})",
                        f"  Web UI:        {server.ui_url or 'disabled (--headless)'}",
                        f"  Workflow data: {store}",
                        f"  Server log:    {server.log_path}",
                        f"  Read model:    {server.settings.effective_database_url}",
                        f"Worker polling task queue {server.settings.task_queue!r}. Press Ctrl-C to stop.",
                    ]
                )
            )
            sys.stdout.flush()
            if not shutdown.is_set():
                await run_worker(client, server.settings, shutdown=shutdown)
            typer.echo("Worker stopped; stopping Temporal server...", err=True)
    typer.echo("Stopped.", err=True)


async def _worker(settings: Settings) -> None:
    from bespoke.runtime.client import connect

    client = await connect(settings)
    run_worker = _load_run_worker()
    shutdown = asyncio.Event()
    with _shutdown_on_signals(shutdown):
        typer.echo(
            f"Worker connected to {settings.temporal_address} (namespace {settings.temporal_namespace}), "
            f"polling task queue {settings.task_queue!r}. Press Ctrl-C to stop."
        )
        sys.stdout.flush()
        await run_worker(client, settings, shutdown=shutdown)
    typer.echo("Worker stopped.", err=True)


@app.command()
def up(
    in_memory: Annotated[
        bool,
        typer.Option("--in-memory", help="Keep workflow state in memory instead of the SQLite file (lost on exit)."),
    ] = False,
    headless: Annotated[bool, typer.Option("--headless", help="Do not start the Temporal Web UI.")] = False,
) -> None:
    """Start the embedded Temporal server and a worker in this process.

    Workflow state persists in a SQLite file under BESPOKE_HOME (default .bespoke/);
    the Web UI and gRPC addresses are printed. Ctrl-C stops the worker, then the server.
    """
    run_async(_up(get_settings(), in_memory=in_memory, headless=headless))


@app.command()
def worker() -> None:
    """Run only a worker, against the Temporal at TEMPORAL_ADDRESS.

    TEMPORAL_ADDRESS defaults to localhost:7233 (a running `bespoke up`). Start several
    workers to share the load; Ctrl-C lets in-flight tasks finish, then exits.
    """
    run_async(_worker(get_settings()))


_mount("bespoke.cli.order", "order")
_mount("bespoke.cli.policy", "policy")
_mount("bespoke.cli.accounts", "buyer", "buyer_app")
_mount("bespoke.cli.accounts", "bank", "bank_app")
_mount("bespoke.cli.db", "db")
_mount("bespoke.cli.ops", "ops")


def main() -> None:
    """Console entry point."""
    try:
        app()
    except Exception as exc:  # errors outside any command (rare: the group catches the rest)
        code = report(exc)
        if code is None:
            raise
        sys.exit(code)


if __name__ == "__main__":
    main()
