import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from typer.testing import CliRunner

import bespoke.cli.app as cli_app
from bespoke.cli.errors import (
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_REJECTED,
    EXIT_UNREACHABLE,
    BespokeGroup,
    NotFound,
    Rejected,
    classify,
)
from bespoke.runtime.embedded import is_listening
from bespoke.settings import Settings

from .conftest import free_port


def bespoke_command() -> list[str]:
    """The installed console script, or the module when running from a bare checkout."""
    script = shutil.which("bespoke", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "bespoke.cli.app"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BESPOKE_", "TEMPORAL_"))}
    env["BESPOKE_API_BIND"] = "127.0.0.1:0"  # `bespoke up` serves the API: any free port
    env.update(extra)
    return env


def test_worker_with_nothing_listening_exits_4_with_one_line_on_stderr(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    proc = subprocess.run(
        [*bespoke_command(), "worker"],
        env=_env(TEMPORAL_ADDRESS=address, BESPOKE_HOME=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == EXIT_UNREACHABLE
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert address in lines[0] and "bespoke up" in lines[0]
    assert "Traceback" not in proc.stderr


def _error_app() -> typer.Typer:
    app = typer.Typer(cls=BespokeGroup, pretty_exceptions_enable=False)
    sub = typer.Typer()

    @app.command()
    def boom(kind: str) -> None:
        """Raise the error named by KIND."""
        if kind == "rejected":
            raise Rejected("deposit must be positive")
        if kind == "unavailable":
            raise RPCError("connection reset", RPCStatusCode.UNAVAILABLE, b"")
        if kind == "bug":
            raise KeyError("oops")
        typer.echo("fine")

    @sub.command()
    def show(order_id: str) -> None:
        """Look up ORDER_ID."""
        raise NotFound(f"order {order_id} not found")

    app.add_typer(sub, name="order")
    return app


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["boom", "rejected"], EXIT_REJECTED, "deposit must be positive"),
        (["boom", "unavailable"], EXIT_UNREACHABLE, "bespoke up"),
        (["boom", "bug"], EXIT_ERROR, "KeyError"),
        (["order", "show", "o-1"], EXIT_NOT_FOUND, "order o-1 not found"),
    ],
)
def test_errors_become_one_stderr_line_and_the_contract_exit_code(
    args: list[str], code: int, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BESPOKE_DEBUG", raising=False)
    result = CliRunner().invoke(_error_app(), args)
    assert result.exit_code == code
    assert result.stderr.strip().count("\n") == 0 and text in result.stderr
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.output


def test_successful_command_exits_0() -> None:
    result = CliRunner().invoke(_error_app(), ["boom", "none"])
    assert result.exit_code == 0 and result.stdout == "fine\n"


def test_usage_errors_keep_the_cli_library_behaviour() -> None:
    result = CliRunner().invoke(_error_app(), ["boom"])
    assert result.exit_code == 2 and "Missing argument" in result.stderr


def test_update_rejected_by_a_validator_maps_to_exit_2() -> None:
    err = WorkflowUpdateFailedError(ApplicationError("not allowed in stage shipped", type="InvalidTransition"))
    assert classify(err) == ("rejected: not allowed in stage shipped", EXIT_REJECTED)


def test_up_refuses_to_start_a_second_server(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        clean_env.setenv("TEMPORAL_ADDRESS", f"127.0.0.1:{sock.getsockname()[1]}")
        clean_env.setenv("BESPOKE_HOME", str(tmp_path))
        result = CliRunner().invoke(cli_app.app, ["up"])
    assert result.exit_code == EXIT_ERROR
    assert "already listening" in result.stderr and result.stderr.count("\n") == 1


def test_help_lists_up_and_worker() -> None:
    result = CliRunner().invoke(cli_app.app, ["--help"])
    assert result.exit_code == 0
    assert "up" in result.stdout and "worker" in result.stdout


async def test_up_serves_then_stops_worker_before_server_on_sigterm(
    embedded_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    events: list[str] = []

    async def fake_run_worker(client, settings: Settings, *, shutdown: asyncio.Event) -> None:  # noqa: ANN001
        assert settings.temporal_address == client.service_client.config.target_host
        events.append("worker started")
        signal.raise_signal(signal.SIGTERM)  # as `kill` or a service manager would
        await shutdown.wait()
        assert is_listening(*settings.temporal_address.split(":")[0:1], int(settings.temporal_address.split(":")[1]))
        events.append("worker drained")

    monkeypatch.setattr(cli_app, "_load_run_worker", lambda: fake_run_worker)
    await cli_app._up(embedded_settings, in_memory=False, headless=False)
    out = capsys.readouterr()
    assert events == ["worker started", "worker drained"]
    assert f"http://localhost:{embedded_settings.ui_port}" in out.out
    assert embedded_settings.temporal_address in out.out
    assert "Stopped." in out.err
    host, port = embedded_settings.temporal_address.split(":")
    assert not is_listening(host, int(port))


def test_bespoke_up_runs_until_ctrl_c_then_exits_0(tmp_path: Path) -> None:
    pytest.importorskip("bespoke.worker")
    port = free_port()
    proc = subprocess.Popen(
        [*bespoke_command(), "up", "--headless"],
        env=_env(TEMPORAL_ADDRESS=f"127.0.0.1:{port}", BESPOKE_HOME=str(tmp_path / "home")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready = ""
        deadline = time.monotonic() + 60
        while "Press Ctrl-C" not in ready and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            ready += line
        assert "Press Ctrl-C" in ready, (ready, proc.stderr.read() if proc.poll() is not None else "")
        assert f"127.0.0.1:{port}" in ready
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert not is_listening("127.0.0.1", port)


def _in_process(code: str, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `bespoke ARGV` through bespoke.cli.app.run in a fresh interpreter, then
    `code` (which can look at what the command imported), printing on stdout."""
    script = (
        "import sys, io, contextlib\n"
        "from bespoke.cli import app as cli_app\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    code = cli_app.run({list(argv)!r})\n"
        f"{code}\n"
    )
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env=env or _env())


def _imported(prefixes: tuple[str, ...]) -> str:
    return f"print(code, sorted({{m.split('.')[0] for m in sys.modules if m.startswith({prefixes!r})}}))"


def test_help_imports_no_sub_command_module_and_no_temporal_sdk() -> None:
    out = _in_process(
        "import bespoke.cli.app as a; "
        "print(code, sorted(m for m in sys.modules if m.startswith(('temporalio', 'sqlalchemy', 'pydantic')) "
        "or m.split('.')[-1] in {'order', 'policy', 'accounts', 'db', 'ops'} and m.startswith('bespoke.cli')))",
        "--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0 []", out.stdout


def test_order_list_reads_the_read_model_without_the_temporal_sdk_or_sqlalchemy(tmp_path: Path) -> None:
    env = _env(BESPOKE_HOME=str(tmp_path))
    first = _in_process(_imported(("temporalio",)), "order", "list", "--json", env=env)
    # The first run finds no database and has the store create it (SQLAlchemy, migrations).
    assert first.returncode == 0 and first.stdout.strip() == "0 []", first.stdout + first.stderr
    again = _in_process(_imported(("temporalio", "sqlalchemy", "sqlmodel", "alembic")), "order", "list", env=env)
    assert again.returncode == 0 and again.stdout.strip() == "0 []", again.stdout + again.stderr


def test_a_broken_sub_command_shows_its_real_error_and_the_rest_still_work(tmp_path: Path) -> None:
    (tmp_path / "broken_cli.py").write_text("import typer\nimport no_such_dependency\napp = typer.Typer()\n")
    register = ("from bespoke.cli import app as cli_app\n"
                "cli_app.SUBCOMMANDS['broken'] = ('broken_cli', 'app', 'A sub-command that cannot load.')\n")
    env = _env(PYTHONPATH=str(tmp_path))

    def bespoke(*argv: str) -> subprocess.CompletedProcess[str]:
        code = register + f"import sys; sys.argv = ['bespoke', *{list(argv)!r}]; cli_app.main()"
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)

    used = bespoke("broken", "anything")
    assert used.returncode == EXIT_ERROR
    assert used.stderr.count("\n") == 1 and "Traceback" not in used.stderr, used.stderr
    assert used.stderr.startswith("error: `bespoke broken` cannot start: ModuleNotFoundError: "
                                  "No module named 'no_such_dependency'"), used.stderr
    assert f"{tmp_path / 'broken_cli.py'}:2" in used.stderr
    listed = bespoke("--help")
    assert listed.returncode == 0 and "A sub-command that cannot load." in listed.stdout, listed.stderr
    assert bespoke("policy", "list", "--json").returncode == 0


def test_the_help_line_of_each_sub_command_is_its_sub_app_help() -> None:
    import importlib

    for name, (module, attr, short) in cli_app.SUBCOMMANDS.items():
        sub = getattr(importlib.import_module(module), attr)
        assert sub.info.help.splitlines()[0] == short, name


def test_every_sub_command_is_listed_by_help_and_answers_its_own_help() -> None:
    runner = CliRunner()
    listed = runner.invoke(cli_app.app, ["--help"]).stdout
    for name in cli_app.SUBCOMMANDS:
        assert name in listed
        result = runner.invoke(cli_app.app, [name, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.stdout, (name, result.output)


def _start_up(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """`bespoke up --headless` until its banner; (the process, the banner)."""
    proc = subprocess.Popen([*bespoke_command(), "up", "--headless"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    banner = ""
    deadline = time.monotonic() + 60
    while "Press Ctrl-C" not in banner and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        banner += line
    assert "Press Ctrl-C" in banner, (banner, proc.poll())
    return proc, banner


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    state = Path(f"/proc/{pid}/stat")
    return not (state.exists() and state.read_text().rsplit(")", 1)[1].split()[0] == "Z")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_embedded_server_dies_with_a_killed_bespoke_up_and_the_next_up_starts(tmp_path: Path) -> None:
    port = free_port()
    env = _env(TEMPORAL_ADDRESS=f"127.0.0.1:{port}", BESPOKE_HOME=str(tmp_path / "home"))
    first, _ = _start_up(env)
    server_pid = int((tmp_path / "home" / "temporal.pid").read_text().split()[0])
    first.kill()  # SIGKILL: no chance to stop the server itself
    first.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while _alive(server_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(server_pid), "the embedded server outlived its bespoke up"
    second, banner = _start_up(env)  # a clean start, not "already listening"
    err = _stop(second)
    assert second.returncode == 0 and f"127.0.0.1:{port}" in banner, err


def test_up_on_all_interfaces_says_so_and_binds_them(tmp_path: Path) -> None:
    port, ui_port = free_port(), free_port()
    env = _env(TEMPORAL_ADDRESS=f"0.0.0.0:{port}", BESPOKE_UI_PORT=str(ui_port), BESPOKE_HOME=str(tmp_path))
    proc = subprocess.Popen([*bespoke_command(), "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        banner = ""
        while "Press Ctrl-C" not in banner:
            line = proc.stdout.readline()
            if not line:
                break
            banner += line
        listening = _listening_ports() if sys.platform.startswith("linux") else None
    finally:
        err = _stop(proc)
    assert f"gRPC address:  0.0.0.0:{port}, ALL interfaces (clients on this machine: 127.0.0.1:{port})" in banner
    assert f"http://localhost:{ui_port}, listening on ALL interfaces" in banner, banner
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "ALL network interfaces" in warnings[0] and "127.0.0.1" in warnings[0], err
    if listening is not None:  # what the banner says is what the server bound
        assert ("*", port) in listening and ("*", ui_port) in listening, sorted(listening)


def _listening_ports() -> set[tuple[str, int]]:
    """(IP, port) of every listening TCP socket; "*" for all interfaces (0.0.0.0, or
    :: where Go listens dual-stack)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            ip_hex, port_hex = fields[1].split(":")
            ip = "*" if set(ip_hex) == {"0"} else ip_hex
            found.add((ip, int(port_hex, 16)))
    return found


def test_a_mistyped_command_is_matched_against_commands_not_loaded_yet() -> None:
    runner = CliRunner()
    result = runner.invoke(cli_app.app, ["ordr"])
    assert result.exit_code == EXIT_REJECTED and "Did you mean 'order', 'worker'?" in result.stderr
    result = runner.invoke(cli_app.app, ["order", "lst"])
    assert result.exit_code == EXIT_REJECTED and "Did you mean 'list'?" in result.stderr


def test_commands_that_run_long_turn_the_garbage_collector_back_on(tmp_path: Path) -> None:
    """`main` starts with the cyclic GC off (a short command exits before garbage
    matters); `up`, `worker` and `order import` must not run without it."""
    rows = tmp_path / "rows.csv"
    rows.write_text("buyer,seller,price\nalice,acme,abc\n")  # one rejected row (then no server to start the rest)
    check = "import gc; print(code, gc.isenabled())"
    env = _env(BESPOKE_HOME=str(tmp_path))
    short = _in_process("import gc; gc.disable()\n" + check, "policy", "list", "--json", env=env)
    assert short.stdout.split() == ["0", "False"], short.stdout + short.stderr
    script = ("import gc, sys, io, contextlib\ngc.disable()\nfrom bespoke.cli import app as cli_app\n"
              "with contextlib.redirect_stdout(io.StringIO()):\n"
              f"    code = cli_app.run(['order', 'import', {str(rows)!r}])\n{check}\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert out.stdout.split()[1:] == ["True"], out.stdout + out.stderr
    source = Path(cli_app.__file__).read_text()
    for command in ("def up(", "def worker("):
        body = source.split(command, 1)[1].split("\n\n\n", 1)[0]
        assert "long_running()" in body, command
