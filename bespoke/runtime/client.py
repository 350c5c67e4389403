"""The one way every bespoke process connects to Temporal.

Workers, the CLI and tests all go through :func:`connect` so they share the payload
converter (pydantic), TLS/API-key handling and the friendly "unreachable" error.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket

from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.runtime import LogForwardingConfig, LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from bespoke.runtime.errors import TemporalUnreachable
from bespoke.settings import Settings, get_settings

DEFAULT_CONNECT_TIMEOUT = 5.0


def data_converter(settings: Settings, *, worker: bool = False) -> DataConverter:
    """The converter every client and worker uses: pydantic JSON, plus AES-GCM payload
    encryption when a payload key is configured (see :mod:`bespoke.runtime.codec`),
    enforced: with keys, no plaintext payload is read; without, an encrypted one is
    a clear error. `worker`: refuse an unreadable payload by failing the order or
    the update (a client raises instead)."""
    from bespoke.runtime.codec import KeylessCodec, RefusingPayloadConverter, codec_from_sources

    codec = None
    if settings.payload_key or settings.payload_key_file:
        codec = codec_from_sources(
            settings.payload_key.get_secret_value() if settings.payload_key else None,
            settings.payload_key_file,
            worker=worker,
            accept_plaintext=settings.payload_plaintext == "accept",
        )
    return DataConverter(payload_converter_class=RefusingPayloadConverter,
                         payload_codec=codec or KeylessCodec(worker=worker))


def tls_config(settings: Settings) -> TLSConfig | bool:
    """TLS for the Temporal connection: mTLS files, server CA, or plain TLS for an API key."""
    if not settings.temporal_tls_enabled:
        return False
    if not (settings.temporal_tls_cert or settings.temporal_tls_key or settings.temporal_tls_ca):
        return True  # API key only: TLS with system roots
    if bool(settings.temporal_tls_cert) != bool(settings.temporal_tls_key):
        raise ValueError("TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY must be set together")
    return TLSConfig(
        server_root_ca_cert=settings.temporal_tls_ca.read_bytes() if settings.temporal_tls_ca else None,
        client_cert=settings.temporal_tls_cert.read_bytes() if settings.temporal_tls_cert else None,
        client_private_key=settings.temporal_tls_key.read_bytes() if settings.temporal_tls_key else None,
    )


@functools.cache
def runtime() -> Runtime:
    """The Temporal runtime our clients (and so our workers) use: the SDK's default,
    except that the core's log lines go to Python logging, so to stderr, instead of
    the console: the SDK's console is stdout, where one WARN line broke a script's
    `--json`."""
    return Runtime(telemetry=telemetry())


def telemetry(core_level: str = "WARN") -> TelemetryConfig:
    """The SDK's default filter (core WARN, the rest ERROR), forwarded to the
    `temporalio.core` logger."""
    return TelemetryConfig(
        logging=LoggingConfig(
            filter=TelemetryFilter(core_level=core_level, other_level="ERROR"),
            forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
        )
    )


def client_identity() -> str:
    """Temporal records the sending client's identity on every update and signal
    event. The SDK's default is pid@host; bespoke adds the OS user, so the history
    says which login sent an action, next to the actor (`--as`) the action names."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
        user = f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown user"
    return f"{os.getpid()}@{socket.gethostname()} ({user})"


async def connect(
    settings: Settings | None = None,
    *,
    address: str | None = None,
    timeout: float = DEFAULT_CONNECT_TIMEOUT,
    worker: bool = False,
) -> Client:
    """Connect to the Temporal frontend named by ``settings`` (or ``address``);
    ``worker``: the client a worker runs on (see :func:`data_converter`).

    Raises :class:`TemporalUnreachable` if nothing answers within ``timeout`` seconds.
    """
    settings = settings or get_settings()
    target = address or settings.temporal_address
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    try:
        return await asyncio.wait_for(
            Client.connect(
                target,
                namespace=settings.temporal_namespace,
                data_converter=data_converter(settings, worker=worker),
                tls=tls_config(settings),
                api_key=api_key,
                identity=client_identity(),
                runtime=runtime(),
            ),
            timeout,
        )
    except TimeoutError as err:
        raise TemporalUnreachable(target, f"no answer within {timeout:g}s") from err
    except RuntimeError as err:
        # The core SDK reports every connect failure as a RuntimeError("Failed client connect: ...").
        raise TemporalUnreachable(target, _short_reason(str(err))) from err
    except RPCError as err:
        if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise TemporalUnreachable(target, err.message) from err
        raise


def _short_reason(message: str) -> str:
    lowered = message.lower()
    for needle, reason in (
        ("connection refused", "connection refused"),
        ("dns error", "host not found"),
        ("certificate", "TLS certificate problem"),
        ("tls", "TLS handshake failed"),
        ("unauthenticated", "unauthenticated"),
        ("permission", "permission denied"),
    ):
        if needle in lowered:
            return reason
    first = message.splitlines()[0] if message else "connect failed"
    return first[:200]


async def ensure_search_attributes(client: Client, namespace: str | None = None) -> list[str]:
    """Register bespoke's custom search attributes (all Keyword) in ``namespace``.

    Idempotent: attributes that already exist are left alone (also when another process
    registers them concurrently). Returns the names it asked the server to add.
    """
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest

    from bespoke.domain.search_attributes import ALL_KEYS

    namespace = namespace or client.namespace
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        present = set(existing.custom_attributes) | set(existing.system_attributes)
    except RPCError as err:
        # The time-skipping test server implements add but not list.
        if err.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        present = set()
    missing = {
        key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in ALL_KEYS if key.name not in present
    }
    if not missing:
        return []
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    except RPCError as err:
        # Another process registering at the same time is fine.
        if err.status != RPCStatusCode.ALREADY_EXISTS:
            raise
    return sorted(missing)
