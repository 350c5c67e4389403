"""Prometheus metrics from the worker: the Temporal SDK core's own telemetry
(task slots, poll and schedule-to-start latencies, activity and workflow task
counts and failures, sticky cache, RPC latencies), exposed on
``BESPOKE_METRICS_BIND`` (e.g. ``127.0.0.1:9464``) at ``/metrics``.

Telemetry belongs to a `temporalio.runtime.Runtime`, which a client is bound to
when it connects; the worker's client is reconnected on a Runtime with a
Prometheus exporter, keeping every other connection setting (address, TLS, API
key, namespace, payload codec).
"""

from __future__ import annotations

import dataclasses
import functools

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import ServiceClient

from bespoke.settings import Settings, get_settings

ENV = "BESPOKE_METRICS_BIND"


def metrics_bind(settings: Settings | None = None) -> str | None:
    """host:port to serve /metrics on, or None (metrics off)."""
    value = (settings or get_settings()).metrics_bind or ""
    value = value.strip()
    if not value:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"{ENV} must be host:port (e.g. 127.0.0.1:9464), not {value!r}")
    return value


@functools.cache
def metrics_runtime(bind: str) -> Runtime:
    """One Runtime per bind address per process (each owns an HTTP listener)."""
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind)))


async def client_with_metrics(client: Client, bind: str) -> Client:
    """A client like `client`, on a Runtime that serves Prometheus metrics at `bind`."""
    service = await ServiceClient.connect(
        dataclasses.replace(client.service_client.config, runtime=metrics_runtime(bind))
    )
    config = client.config()
    config["service_client"] = service
    return Client(**config)
