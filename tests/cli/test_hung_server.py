"""A Temporal server that accepts the connection and then stops answering (a
stuck persistence layer, a frozen host) must end a command with exit 4 within
BESPOKE_CLI_TIMEOUT, never hang it. The server here is the real one behind a
TCP relay the test freezes once the CLI's client is connected."""

from __future__ import annotations

import socket
import threading
import time
import uuid

import pytest

from bespoke.cli.errors import EXIT_UNREACHABLE, CliError
from bespoke.cli.order.client import OrderClient, run
from bespoke.domain.models import Actor, ActorInput, PaymentPlan
from bespoke.rules import find_policy
from bespoke.service import build_order_input, start_order
from bespoke.settings import Settings

from .conftest import Bespoke


class FreezableRelay:
    """Relays 127.0.0.1:port to `target`; `freeze()` stops passing bytes both ways
    while keeping every connection open (what a hung server looks like)."""

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self.target = (host, int(port))
        self.frozen = threading.Event()
        self.closed = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        self.frozen.set()

    def close(self) -> None:
        self.closed.set()
        self.listener.close()
        for sock in self.sockets:
            sock.close()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(0.2)
        while not self.closed.is_set():
            if self.frozen.is_set():
                time.sleep(0.05)
                continue
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            while self.frozen.is_set() and not self.closed.is_set():
                time.sleep(0.05)  # hold what arrived during the freeze
            try:
                dst.sendall(data)
            except OSError:
                return


@pytest.fixture
def relay(bespoke: Bespoke):
    relay = FreezableRelay(bespoke.env["TEMPORAL_ADDRESS"])
    yield relay
    relay.close()


def test_a_server_that_stops_answering_ends_start_update_and_query_with_exit_4(bespoke: Bespoke, relay) -> None:
    oid = f"HUNG-{uuid.uuid4().hex[:8].upper()}"
    bespoke.ok("order", "create", "--id", oid, "--buyer", "alice", "--seller", "acme", "--price", "10.00")
    settings = Settings(_environ={**bespoke.env, "TEMPORAL_ADDRESS": relay.address, "BESPOKE_CLI_TIMEOUT": "2"})
    other = build_order_input(order_id=f"{oid}-2", buyer="alice", seller="acme", price=1_000, currency="CNY",
                              plan=PaymentPlan.parse("full_prepayment"), production_days=14,
                              policy=find_policy("default"), created_by=Actor.parse("ops:olga"), title="")
    calls = {
        "start": lambda c: c.bounded(start_order(c.client, other, task_queue=settings.task_queue),
                                     f"order {other.order_id} was not started"),
        "update": lambda c: c.update(oid, "accept", ActorInput(actor=Actor.parse("seller:acme"))),
        "query": lambda c: c.view(oid),
    }
    for name, call in calls.items():
        async def work(client: OrderClient, call=call) -> float:
            assert (await client.view(oid)).order_id == oid  # connected, and answering
            relay.freeze()
            try:
                await call(client)
            finally:
                relay.frozen.clear()
            raise AssertionError(f"{name} returned although the server was frozen")

        began = time.monotonic()
        with pytest.raises(CliError) as info:
            run(work, settings)
        waited = time.monotonic() - began
        assert info.value.code == EXIT_UNREACHABLE, (name, info.value)
        assert "within 2s" in info.value.message and "BESPOKE_CLI_TIMEOUT" in info.value.message, info.value.message
        assert waited < 30, (name, waited)  # bounded: the 2 s wait plus a loaded machine
