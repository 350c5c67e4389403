"""The `bespoke` command: root app, `up` and `worker`; the other commands live in
their own modules, loaded only when used.

Start-up cost is part of the contract for scripts that call `bespoke` in a loop:
`bespoke --help` imports no sub-command module, `bespoke order list` no Temporal
SDK, and every run ends in a flushed `os._exit` (see `main`).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.core
import typer.main

from bespoke.cli.errors import BespokeGroup, CliError, SuggestingGroup, long_running, report, run_async

if TYPE_CHECKING:
    import asyncio

    from bespoke.settings import Settings

# The sub-commands, by name: (module, attribute, the help line `bespoke --help`
# shows without importing the module). tests/runtime/test_cli.py keeps each line
# equal to the sub-app's own help.
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "order": ("bespoke.cli.order", "app", "Create orders, act on them, and read their state."),
    "policy": ("bespoke.cli.policy", "app", "Rule policies: list them, read one in plain words, check a policy file."),
    "buyer": ("bespoke.cli.accounts", "buyer_app", "Buyer payment accounts: credit lines and collection accounts."),
    "bank": ("bespoke.cli.bank", "bank_app", "Incoming bank transfers to dedicated collection accounts."),
    "db": ("bespoke.cli.db", "app",
           "Database schema (migrate, show the revision); rebuild the read model from the workflows."),
    "ops": ("bespoke.cli.ops", "app", "Operator commands: ledger reconciliation."),
    "portal": ("bespoke.cli.portal", "app", "Web portal sign-in: set a person's password or send an invitation link."),
    "principal": ("bespoke.cli.principal", "app",
                  "HTTP API principals: add one (its token is printed once), list, revoke, rotate."),
    "webhook": ("bespoke.cli.webhook", "app",
                "Outbound webhooks: list subscriptions, read a delivery log, redeliver."),
    "demo": ("bespoke.cli.demo", "app", "Create the portal's demo accounts (printed passwords) and demo orders."),
}


class SubcommandUnavailable(CliError):
    """A sub-command's module failed to import: a bug or a broken install, shown as
    such (with the real error and where it happened), never hidden."""


class RootGroup(SuggestingGroup, BespokeGroup):
    """The root group, loading each sub-command's module when it is invoked.

    Loading on use keeps `--help` and `up` working when one module is broken, which
    is what the old import-everything-and-tolerate-failures mounting was for, without
    hiding the failure: invoking the broken command prints its real error."""

    _listing = False  # formatting --help: describe sub-commands, do not load them

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in SUBCOMMANDS if n not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in SUBCOMMANDS:
            return command
        module, attr, short = SUBCOMMANDS[cmd_name]
        if self._listing:
            return typer.core.TyperGroup(name=cmd_name, help=short)
        group = typer.main.get_group(_load(cmd_name, module, attr))
        group.name = cmd_name
        self.commands[cmd_name] = group
        return group

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def _load(name: str, module: str, attr: str) -> typer.Typer:
    try:
        return getattr(importlib.import_module(module), attr)
    except Exception as err:
        if os.environ.get("BESPOKE_DEBUG"):
            raise
        tb = err.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = f" ({tb.tb_frame.f_code.co_filename}:{tb.tb_lineno})" if tb is not None else ""
        raise SubcommandUnavailable(
            f"`bespoke {name}` cannot start: {type(err).__name__}: {err}{where}; "
            "set BESPOKE_DEBUG=1 for the traceback"
        ) from None


app = typer.Typer(
    name="bespoke",
    cls=RootGroup,
    help="Made-to-order purchases as durable Temporal workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

RunWorker = Callable[..., Awaitable[None]]


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
    import asyncio

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


def _check_mail(settings: Settings) -> None:
    """Email settings that cannot work (an SMTP URL without a sender) stop the
    command before anything starts, with the variable named (exit 1)."""
    if settings.smtp_url is not None:
        from bespoke.mail.outbox import mail_config

        mail_config(settings)


async def _up(settings: Settings, *, in_memory: bool, headless: bool, demo: bool = False) -> None:
    import asyncio

    from bespoke.runtime.client import connect, ensure_search_attributes
    from bespoke.runtime.embedded import EmbeddedServer

    server = EmbeddedServer(settings, in_memory=in_memory, headless=headless)
    server.preflight()  # say "already running" before anything else
    _check_mail(settings)
    run_worker = _load_run_worker()
    shutdown = asyncio.Event()
    with _shutdown_on_signals(shutdown):
        async with server:
            client = await connect(server.settings, worker=True)
            await ensure_search_attributes(client, server.namespace)
            store = "in memory (lost on exit)" if server.db_path is None else str(server.db_path)
            api = await _start_api(server.settings, client)
            if server.all_interfaces:
                typer.echo(
                    f"warning: the Temporal server (and its Web UI) listens on ALL network interfaces "
                    f"({server.bind_address}, from TEMPORAL_ADDRESS): anyone who can reach this machine can "
                    "read and change every order; use 127.0.0.1 unless that is what you want",
                    err=True,
                )
            typer.echo(
                "\n".join(
                    [
                        f"Temporal server ready in {server.startup_seconds:.1f}s",
                        f"  gRPC address:  {server.listening}  (namespace {server.namespace})",
                        f"  Web UI:        {server.ui_listening or 'disabled (--headless)'}",
                        f"  Workflow data: {store}",
                        f"  Server log:    {server.log_path}",
                        f"  Read model:    {server.settings.effective_database_url}",
                        f"  HTTP API:      {api.url}  (docs {api.url}/docs, portal {api.url}/)",
                        f"Worker polling task queue {server.settings.task_queue!r}. Press Ctrl-C to stop.",
                    ]
                )
            )
            sys.stdout.flush()
            seeding = asyncio.get_running_loop().create_task(_seed_demo(server.settings, client, api.url)) \
                if demo else None
            try:
                if not shutdown.is_set():
                    await run_worker(client, server.settings, shutdown=shutdown)
            finally:
                if seeding is not None and not seeding.done():
                    seeding.cancel()
                await api.stop()
            typer.echo("Worker stopped; stopping Temporal server...", err=True)
    typer.echo("Stopped.", err=True)


def _server_class() -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn without its own signal handling: Ctrl-C is this process's
        (`_shutdown_on_signals`), which stops the API and the worker in order;
        uvicorn's would re-raise SIGINT after serving and exit 130."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Server


async def _seed_demo(settings: Settings, client: Any, url: str) -> None:
    """`up --demo`: the portal's demo accounts and orders, once the worker runs
    (the orders' actions need it); prints the accounts' passwords."""
    from bespoke.portal.demo import banner, demo_passwords, seed_orders
    from bespoke.store.db import get_engine

    try:
        created = await seed_orders(client, settings)
        passwords = demo_passwords(get_engine(settings.effective_database_url))
    except Exception as err:  # noqa: BLE001 - the server keeps running; say why the demo is missing
        typer.echo(f"error: the demo could not be set up: {err}", err=True)
        return
    typer.echo(f"Demo orders: {', '.join(created) if created else 'already there'}")
    typer.echo(banner(passwords, url))
    sys.stdout.flush()


class _ApiServer:
    """The HTTP API served by uvicorn inside this process's event loop."""

    def __init__(self, settings: Settings, client: Any) -> None:
        import uvicorn

        from bespoke.api.app import create_app, parse_bind

        try:
            self.host, self.port = parse_bind(settings.api_bind)
        except ValueError as err:
            raise CliError(str(err)) from None
        config = uvicorn.Config(create_app(settings, client=client), host=self.host, port=self.port,
                                log_level="warning", lifespan="off", access_log=False)
        self.server = _server_class()(config)
        self.task: Any = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> _ApiServer:
        import asyncio
        import socket

        # Bound here, not by uvicorn: a port in use is an OSError we can report,
        # where uvicorn would sys.exit inside the event loop.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets
        # that say they are TCP. Without it, Nagle's algorithm held each response's
        # body (uvicorn writes the headers first) until the client's delayed ACK,
        # so every answer took 40 ms however idle the API was.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as err:
            sock.close()
            raise CliError(f"the HTTP API cannot listen on {self.host}:{self.port}: {err.strerror} "
                           "(BESPOKE_API_BIND sets the address)") from None
        self.port = sock.getsockname()[1]
        self.task = asyncio.get_running_loop().create_task(self.server.serve(sockets=[sock]))
        while not self.server.started:
            if self.task.done():
                self.task.result()
                raise CliError("the HTTP API stopped while starting")
            await asyncio.sleep(0.02)
        return self

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task

    async def serve_until(self, shutdown: Any) -> None:
        await shutdown.wait()
        await self.stop()


async def _start_api(settings: Settings, client: Any) -> _ApiServer:
    return await _ApiServer(settings, client).start()


async def _api(settings: Settings) -> None:
    import asyncio

    shutdown = asyncio.Event()
    with _shutdown_on_signals(shutdown):
        server = await _start_api(settings, None)  # connects to Temporal on first use
        typer.echo(f"HTTP API listening on {server.url} (docs {server.url}/docs), Temporal at "
                   f"{settings.temporal_address}. Press Ctrl-C to stop.")
        sys.stdout.flush()
        await server.serve_until(shutdown)
    typer.echo("API stopped.", err=True)


async def _worker(settings: Settings) -> None:
    import asyncio

    from bespoke.runtime.client import connect

    _check_mail(settings)
    client = await connect(settings, worker=True)
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
    demo: Annotated[bool, typer.Option("--demo", help="Also create the portal's demo accounts (passwords printed) "
                                       "and demo orders.")] = False,
) -> None:
    """Start the embedded Temporal server and a worker in this process.

    Workflow state persists in a SQLite file under BESPOKE_HOME (default .bespoke/);
    the Web UI and gRPC addresses are printed. Ctrl-C stops the worker, then the server.
    """
    from bespoke.settings import get_settings

    long_running()
    run_async(_up(get_settings(), in_memory=in_memory, headless=headless, demo=demo))


@app.command()
def api() -> None:
    """Serve only the HTTP API (and portal) on BESPOKE_API_BIND (default 127.0.0.1:8000).

    Stateless: it keeps nothing but what is in the database and Temporal, so run
    several behind a load balancer. Talks to the Temporal at TEMPORAL_ADDRESS.
    """
    from bespoke.settings import get_settings

    long_running()
    run_async(_api(get_settings()))


@app.command()
def worker() -> None:
    """Run only a worker, against the Temporal at TEMPORAL_ADDRESS.

    TEMPORAL_ADDRESS defaults to localhost:7233 (a running `bespoke up`). Start several
    workers to share the load; Ctrl-C lets in-flight tasks finish, then exits.
    """
    from bespoke.settings import get_settings

    long_running()
    run_async(_worker(get_settings()))


def run(argv: list[str] | None = None) -> int:
    """Run the command line `argv` and return its exit code (tests call this to
    look inside the process afterwards; `main` exits with it)."""
    try:
        app(args=argv, prog_name="bespoke")
    except SystemExit as stop:
        code = stop.code
        if code is None or isinstance(code, int):
            return code or 0
        typer.echo(str(code), err=True)
        return 1
    except Exception as exc:  # errors outside any command (rare: the group catches the rest)
        code = report(exc)
        if code is None:
            raise
        return code
    return 0


def main() -> None:
    """Console entry point: run, flush, and leave without interpreter teardown.

    `os._exit` skips finalization: the Temporal SDK's Rust threads could otherwise
    abort a short-lived process while Python shuts down (SIGABRT,
    temporalio/sdk-python#300), and tearing down the modules of a command that ran
    for 300 ms took 100-300 ms more. Nothing of ours needs it: output is flushed
    here, logging handlers are closed, and every file and connection a command
    opens is closed by the command itself.

    The cyclic garbage collector is off until a long-running command turns it on
    (errors.long_running): its passes over start-up's objects cost more than the
    garbage a short command leaves.
    """
    gc.disable()
    code = run(sys.argv[1:])
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`bespoke order list | head -1`)
            pass
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    os._exit(code)


if __name__ == "__main__":
    main()
