"""The socket `bespoke up` and `bespoke api` serve on: every accepted connection
has TCP_NODELAY. Without it (a socket made with protocol 0, which asyncio does
not recognise as TCP), Nagle's algorithm held each response's body behind its
headers until the client's delayed ACK: 40 ms per answer on an idle API, the
whole of `GET /api/orders/{id}`'s p50 in bench/api_bench.py."""

from __future__ import annotations

import asyncio
import socket

from bespoke.cli.app import _ApiServer


async def test_every_connection_the_api_accepts_sends_without_waiting_for_acks(api_settings, client) -> None:
    settings = api_settings.model_copy(update={"api_bind": "127.0.0.1:0"})
    server = await _ApiServer(settings, client).start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(b"GET /api/policies HTTP/1.1\r\nHost: t\r\n\r\n")
            await writer.drain()
            assert (await reader.readline()).startswith(b"HTTP/1.1 200")
            connections = list(server.server.server_state.connections)
            assert len(connections) == 1
            accepted = connections[0].transport.get_extra_info("socket")
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            writer.close()
            await writer.wait_closed()
    finally:
        await server.stop()
