"""What crosses the workflow boundary for email: the dispatch workflow's input and
its activities' inputs and results (bespoke/workflows/email.py)."""

from __future__ import annotations

from pydantic import Field

from bespoke.domain.vocabulary import Frozen


class EmailDispatchInput(Frozen):
    poll_seconds: float = Field(default=15.0, gt=0, le=3600)  # how often the outbox is read when idle
    batch: int = Field(default=100, ge=1, le=1000)  # events read per round
    sends_per_round: int = Field(default=10, ge=1, le=100)  # messages sent at once
    rounds_per_run: int = Field(default=200, ge=1, le=10_000)  # then the workflow continues as new


class CollectInput(Frozen):
    limit: int = Field(default=100, ge=1, le=1000)
    due_limit: int = Field(default=10, ge=1, le=100)


class CollectResult(Frozen):
    read: int = 0  # events read this time
    queued: int = 0  # messages added to the log this time
    more: bool = False  # the outbox has more events after these
    due: list[int] = Field(default_factory=list)  # email_messages ids to send now


class SendInput(Frozen):
    message_id: int


class SendResult(Frozen):
    # sent | failed | given_up | retry (still pending, a later attempt) | done (nothing to do:
    # handled already, not due yet, or another attempt holds it)
    status: str
    detail: str = ""
