import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import Worker

from bespoke.domain.search_attributes import ALL_KEYS
from bespoke.runtime.client import connect, ensure_search_attributes
from bespoke.runtime.embedded import EmbeddedServer, find_temporal_binary, is_listening, parse_address
from bespoke.runtime.errors import RuntimeLayerError, ServerAlreadyRunning
from bespoke.settings import Settings

from .helpers import WaitForGo


async def _custom_attributes(client: Client) -> dict[str, int]:
    resp = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    return dict(resp.custom_attributes)


def test_temporal_binary_is_found_next_to_the_interpreter() -> None:
    binary = find_temporal_binary()
    assert binary.is_file() and os.access(binary, os.X_OK)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("localhost:7233", ("localhost", 7233)),
        ("127.0.0.1:17233", ("127.0.0.1", 17233)),
        ("[::1]:7000", ("::1", 7000)),
        ("localhost", ("localhost", 7233)),
    ],
)
def test_parse_address(address: str, expected: tuple[str, int]) -> None:
    assert parse_address(address) == expected


def test_embedded_server_refuses_a_remote_address(tmp_path: Path) -> None:
    with pytest.raises(RuntimeLayerError, match="not this machine"):
        EmbeddedServer(Settings(home=tmp_path, temporal_address="temporal.example.com:7233"))


async def test_embedded_server_starts_registers_search_attributes_and_stops(embedded_settings: Settings) -> None:
    server = EmbeddedServer(embedded_settings)
    async with server:
        assert server.running
        assert server.startup_seconds is not None and server.startup_seconds < 30
        assert server.ui_url == f"http://localhost:{embedded_settings.ui_port}"
        client = await connect(server.settings)
        attributes = await _custom_attributes(client)
        for key in ALL_KEYS:
            assert attributes[key.name] == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        # Already registered by the server flags: registering again is a no-op.
        assert await ensure_search_attributes(client, server.namespace) == []
        assert is_listening(server.ip, server.port)
    assert not server.running
    assert not is_listening(server.ip, server.port)
    assert (embedded_settings.home / "temporal.db").is_file()
    assert "start-dev" in (embedded_settings.home / "temporal.log").read_text()


async def test_second_server_on_same_address_says_one_is_already_running(embedded_settings: Settings) -> None:
    async with EmbeddedServer(embedded_settings, headless=True):
        with pytest.raises(ServerAlreadyRunning, match="already listening"):
            await EmbeddedServer(embedded_settings, headless=True).start()


async def test_busy_ui_port_is_reported_before_starting(embedded_settings: Settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", embedded_settings.ui_port))
        sock.listen()
        with pytest.raises(ServerAlreadyRunning, match="BESPOKE_UI_PORT"):
            await EmbeddedServer(embedded_settings).start()


async def test_workflow_started_before_a_server_restart_is_still_running_after(embedded_settings: Settings) -> None:
    task_queue = f"tq-{uuid.uuid4()}"
    workflow_id = f"wf-{uuid.uuid4()}"

    async with EmbeddedServer(embedded_settings, headless=True) as server:
        client = await connect(server.settings)
        async with Worker(client, task_queue=task_queue, workflows=[WaitForGo]):
            handle = await client.start_workflow(WaitForGo.run, "hello", id=workflow_id, task_queue=task_queue)
            assert await handle.query(WaitForGo.waiting) is True  # first task ran: timer is durable

    async with EmbeddedServer(embedded_settings, headless=True) as server:
        client = await connect(server.settings)
        handle = client.get_workflow_handle(workflow_id)
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        async with Worker(client, task_queue=task_queue, workflows=[WaitForGo]):
            await handle.signal(WaitForGo.go, "world")
            assert await handle.result() == "hello, world"


async def test_in_memory_server_writes_no_database_file(embedded_settings: Settings) -> None:
    async with EmbeddedServer(embedded_settings, in_memory=True, headless=True) as server:
        assert server.db_path is None
        client = await connect(server.settings)
        assert {key.name for key in ALL_KEYS} <= set(await _custom_attributes(client))
    assert not (embedded_settings.home / "temporal.db").exists()
    assert (embedded_settings.home / "temporal.log").is_file()


async def test_a_second_start_names_the_running_server_and_its_bespoke_up(embedded_settings: Settings) -> None:
    first = EmbeddedServer(embedded_settings, headless=True, in_memory=True)
    await first.start()
    try:
        assert first.pid_path.read_text().split() == [str(first.pid), first.address, str(os.getpid())]
        with pytest.raises(ServerAlreadyRunning, match=f"pid {first.pid}.* another `bespoke up` that is still running"):
            EmbeddedServer(embedded_settings, headless=True).preflight()
        # Its `bespoke up` gone (a pid that is no process): an orphan, named with the way to stop it.
        first.pid_path.write_text(f"{first.pid} {first.address} {_dead_pid()}\n")
        with pytest.raises(ServerAlreadyRunning) as info:
            EmbeddedServer(embedded_settings, headless=True, stop_timeout=0.5).preflight()
        assert f"an earlier `bespoke up` that did not stop it; stop it with `kill {first.pid}`" in str(info.value)
    finally:
        await first.stop()
    assert not first.pid_path.exists()


def test_a_server_we_did_not_start_is_not_blamed_on_bespoke_up(embedded_settings: Settings) -> None:
    host, port = embedded_settings.temporal_address.split(":")
    with socket.socket() as sock:
        sock.bind((host, int(port)))
        sock.listen()
        with pytest.raises(ServerAlreadyRunning, match="not one started from this BESPOKE_HOME"):
            EmbeddedServer(embedded_settings, headless=True).preflight()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
