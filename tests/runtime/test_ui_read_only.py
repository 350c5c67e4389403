"""The embedded server's Web UI is read-only (issue 10.5c): terminating an order
from the UI stranded its escrow. The real dev server and its real UI run here;
through the UI port `bespoke up` announces, pages, lists, histories and queries
work, every write request is refused before it reaches the UI, and the UI is told
to hide its write actions. The same terminate request sent to the dev server's own
UI (loopback, unannounced) does terminate: the request is a real one."""

from __future__ import annotations

import asyncio
import http.client
import json
import uuid

from temporalio.client import WorkflowExecutionStatus

from bespoke.runtime.client import connect
from bespoke.runtime.embedded import EmbeddedServer
from bespoke.settings import Settings


def request(port: int, method: str, path: str, body: dict | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def csrf(port: int) -> dict[str, str]:
    """The UI's CSRF cookie and header, as its pages send them with a write."""
    _, headers, _ = request(port, "GET", "/api/v1/settings")
    token = headers["Set-Cookie"].split("_csrf=", 1)[1].split(";", 1)[0]
    return {"Cookie": f"_csrf={token}", "X-CSRF-TOKEN": token}


async def eventually(port: int, path: str, needle: bytes) -> tuple[int, bytes]:
    """GET `path` until it answers with `needle` (the UI's own connection to the
    frontend, and the visibility index, take a moment on a loaded machine)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        status, _, body = await asyncio.to_thread(request, port, "GET", path)
        if (status == 200 and needle in body) or loop.time() > deadline:
            return status, body
        await asyncio.sleep(0.3)


async def test_the_web_ui_reads_but_refuses_every_write(embedded_settings: Settings) -> None:
    async with EmbeddedServer(embedded_settings) as server:
        client = await connect(server.settings)
        wid = f"ui-{uuid.uuid4().hex[:8]}"
        handle = await client.start_workflow("NobodyRunsThis", id=wid, task_queue=f"none-{wid}")
        ui = embedded_settings.ui_port
        ns = server.namespace

        status, _, page = await asyncio.to_thread(request, ui, "GET", "/")
        assert status == 200 and b"<html" in page.lower()
        status, _, body = await asyncio.to_thread(request, ui, "GET", "/api/v1/settings")
        settings = json.loads(body)
        assert status == 200 and settings["DisableWriteActions"] is True
        assert settings["WorkflowTerminateDisabled"] is True and settings["BatchActionsDisabled"] is True
        status, body = await eventually(ui, f"/api/v1/namespaces/{ns}/workflows", wid.encode())
        assert status == 200, body
        status, body = await eventually(ui, f"/api/v1/namespaces/{ns}/workflows/{wid}/history", b"NobodyRunsThis")
        assert status == 200, body

        token = await asyncio.to_thread(csrf, ui)
        writes = [
            ("POST", f"/api/v1/namespaces/{ns}/workflows/{wid}/terminate", {"reason": "from the UI"}),
            ("POST", f"/api/v1/namespaces/{ns}/workflows/{wid}/cancel", {}),
            ("POST", f"/api/v1/namespaces/{ns}/workflows/{wid}/signal/anything", {}),
            ("POST", f"/api/v1/namespaces/{ns}/workflows/{wid}/reset", {}),
            ("POST", f"/api/v1/namespaces/{ns}/workflows/{wid}/update/pay", {}),
            ("POST", f"/api/v1/namespaces/{ns}/batch-operations/b1", {}),
            ("DELETE", f"/api/v1/namespaces/{ns}/workflows/{wid}", None),
            ("PUT", f"/api/v1/namespaces/{ns}/schedules/s1", {}),
        ]
        for method, path, body in writes:
            status, _, answer = await asyncio.to_thread(request, ui, method, path, body, token)
            assert status == 403 and b"read-only" in answer, (method, path, status, answer)
        assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING

        # The identical request to the dev server's own UI terminates the workflow.
        upstream = server._ui_upstream_port
        assert upstream is not None and upstream != ui
        token = await asyncio.to_thread(csrf, upstream)
        status, _, _ = await asyncio.to_thread(request, upstream, "POST", writes[0][1], writes[0][2], token)
        assert status == 200
        assert (await handle.describe()).status is WorkflowExecutionStatus.TERMINATED


def test_the_proxy_sets_tcp_nodelay_on_its_connections() -> None:
    """The proxy writes a response's headers and body separately over kept-alive
    connections; without TCP_NODELAY each body would wait for the browser's
    delayed ACK (the 40 ms the API paid per answer; tests/api/test_socket.py).
    socketserver sets it on every accepted connection when the handler asks."""
    from bespoke.runtime.ui_proxy import ReadOnlyUIProxy

    proxy = ReadOnlyUIProxy("127.0.0.1", 0, "127.0.0.1:9")
    try:
        assert proxy._server.RequestHandlerClass.disable_nagle_algorithm is True
    finally:
        proxy._server.server_close()
