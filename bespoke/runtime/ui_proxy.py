"""A read-only front for the embedded server's Temporal Web UI.

The dev server (`temporal server start-dev`, CLI 1.9) has no flag that turns the
UI's write actions off, and its UI answers terminate, cancel, signal, reset,
update and batch requests from anyone who can open the page: terminating an
order from the UI strands its escrow. So `bespoke up` binds the UI itself on
loopback at a port of its own and serves the address it announces through this
proxy, which

- passes reads (GET, HEAD) and workflow queries (POST .../query/NAME, which
  cannot change an order: queries are read-only by Temporal's contract);
- refuses every other request with 403 before it reaches the UI;
- tells the UI's pages that write actions are disabled (`/api/v1/settings`), so
  they hide the buttons instead of offering actions that fail.

Standard library only, one thread per request (a person's browser).
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Reads that the UI sends as POST: a workflow query (the stack trace, `status`).
_QUERY_PATH = re.compile(r"^/api/v1/namespaces/[^/?]+/workflows/[^/?]+/query/[^/?]+(?:\?.*)?$")
_SETTINGS_PATH = re.compile(r"^/api/v1/settings(?:\?.*)?$")
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
               "transfer-encoding", "upgrade", "content-length"}
MAX_BODY = 1 << 20  # a query's arguments; nothing the UI sends is larger


def read_only_settings(body: bytes) -> bytes:
    """The UI's settings with every write action switched off."""
    try:
        settings = json.loads(body)
    except ValueError:
        return body
    if not isinstance(settings, dict):
        return body
    settings["DisableWriteActions"] = True
    for key in list(settings):
        if key.endswith("Disabled") and key not in ("RefreshWorkflowCountsDisabled",):
            settings[key] = True
    return json.dumps(settings).encode()


class ReadOnlyUIProxy:
    """Serves `bind:port`, forwarding allowed requests to the UI at `upstream`
    (`host:port`). `start()` returns once it listens; `stop()` closes it."""

    def __init__(self, bind: str, port: int, upstream: str) -> None:
        self.upstream_host, _, upstream_port = upstream.rpartition(":")
        self.upstream_port = int(upstream_port)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # TCP_NODELAY on each connection: the headers and the body go out in
            # separate writes, and on a kept-alive connection Nagle's algorithm
            # would hold the body until the browser's delayed ACK (40 ms a request).
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib's name
                pass  # the banner and the server log say what matters; no per-request lines on our stdout

            def do_GET(self) -> None:  # noqa: N802 - stdlib's naming
                proxy._forward(self, body=None)

            def do_HEAD(self) -> None:  # noqa: N802
                proxy._forward(self, body=None)

            def do_POST(self) -> None:  # noqa: N802
                if not _QUERY_PATH.match(self.path):
                    proxy._refuse(self)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    proxy._refuse(self, 413, "request too large")
                    return
                proxy._forward(self, body=self.rfile.read(length))

            def _refused(self) -> None:
                proxy._refuse(self)

            do_PUT = do_PATCH = do_DELETE = _refused  # noqa: N815

        self._server = ThreadingHTTPServer((bind, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="bespoke-ui-proxy", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _refuse(self, handler: BaseHTTPRequestHandler, status: int = 403,
                message: str = "the embedded Web UI is read-only: act on orders with the `bespoke` command") -> None:
        body = json.dumps({"code": 7, "message": message}).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes | None) -> None:
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["Host"] = f"{self.upstream_host}:{self.upstream_port}"
        if _SETTINGS_PATH.match(handler.path):
            headers.pop("Accept-Encoding", None)  # rewritten below: plain JSON, please
            headers.pop("accept-encoding", None)
        if body is not None:
            headers["Content-Length"] = str(len(body))
        connection = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            connection.request(handler.command, handler.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except OSError:
            self._refuse(handler, 502, "the embedded Web UI is not answering")
            return
        finally:
            connection.close()
        if handler.command == "GET" and _SETTINGS_PATH.match(handler.path) and response.status == 200:
            data = read_only_settings(data)
        handler.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in _HOP_BY_HOP:
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)
