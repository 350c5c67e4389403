"""A real webhook receiver on loopback for the tests: `http.server` in a thread,
answering from a script of status codes (then 200), verifying every request's
Standard Webhooks signature with the `standardwebhooks` library, and recording
what it accepted."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook


@dataclass
class Received:
    event_id: str
    status: int
    body: dict[str, Any]
    at: float  # time.time() when it arrived


@dataclass
class Receiver:
    port: int
    secret: str | None = None  # set once the subscription is made; then every request is verified
    script: list[int] = field(default_factory=list)  # status codes to answer first
    delay: float = 0.0  # seconds each answer takes (a slow endpoint)
    requests: list[Received] = field(default_factory=list)
    bad_signatures: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                time.sleep(receiver.delay)
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    if receiver.secret is not None:
                        try:
                            Webhook(receiver.secret).verify(raw, headers)
                        except Exception:  # noqa: BLE001 - any failure is a bad signature
                            receiver.bad_signatures += 1
                    status = receiver.script.pop(0) if receiver.script else 200
                    receiver.requests.append(Received(headers.get("webhook-id", ""), status, json.loads(raw),
                                                      time.time()))
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def accepted(self) -> list[str]:
        """Event ids answered 2xx, in arrival order."""
        with self._lock:
            return [r.event_id for r in self.requests if 200 <= r.status < 300]
