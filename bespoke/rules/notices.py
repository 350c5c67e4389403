"""Policy sections for telling parties before a default action happens, and for the
extra time the parties may ask for: `[reminders]` and `[extensions]`.

Both are optional. A policy without them behaves as policies did before they
existed (no reminders, no party-requested extensions), so a pinned policy written
earlier still validates and runs as it did.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import Field, PlainSerializer, PlainValidator, field_validator

from bespoke.domain.vocabulary import Frozen

from .durations import format_duration, parse_duration

# Deadlines a reminder can be set for: the ones the order workflow waits on (the
# names `order status` shows; `offer_response` and `repair` are the running names
# of the policy's `partial_offer_response` and `repair_reship`).
REMINDABLE_DEADLINES = (
    "seller_acceptance", "deposit", "balance", "retention", "inspection_window", "cod_remittance",
    "credit_settlement", "aftersales_window", "return_response", "offer_response", "escalation",
    "return_ship", "return_receive", "repair", "dispute_evidence",
)
MAX_REMINDERS_PER_DEADLINE = 6
MAX_REMINDER_LEAD = timedelta(days=90)


def _positive_duration(value: Any) -> timedelta:
    td = value if isinstance(value, timedelta) else parse_duration(value)
    if td <= timedelta(0) or td.microseconds:
        raise ValueError("expected a positive duration of whole seconds")
    if td > MAX_REMINDER_LEAD:
        raise ValueError(f"expected at most {MAX_REMINDER_LEAD.days} days")
    return td


Lead = Annotated[
    timedelta,
    PlainValidator(_positive_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
Leads = Annotated[tuple[Lead, ...], Field(max_length=MAX_REMINDERS_PER_DEADLINE)]


class Reminders(Frozen):
    """Per deadline, how long before it falls due the party who must act is
    reminded (ISO-8601 durations, e.g. `inspection_window = ["P3D", "P1D"]`).
    A deadline not named here gets no reminder."""

    seller_acceptance: Leads = ()
    deposit: Leads = ()
    balance: Leads = ()
    retention: Leads = ()
    inspection_window: Leads = ()
    cod_remittance: Leads = ()
    credit_settlement: Leads = ()
    aftersales_window: Leads = ()
    return_response: Leads = ()
    offer_response: Leads = ()
    escalation: Leads = ()
    return_ship: Leads = ()
    return_receive: Leads = ()
    repair: Leads = ()
    dispute_evidence: Leads = ()

    @field_validator(*REMINDABLE_DEADLINES)
    @classmethod
    def _distinct(cls, v: tuple[timedelta, ...]) -> tuple[timedelta, ...]:
        if len(set(v)) != len(v):
            raise ValueError("expected each duration at most once")
        # Longest lead first: the order the reminders fall due in.
        return tuple(sorted(v, reverse=True))

    def leads(self, deadline: str) -> tuple[timedelta, ...]:
        """The reminder lead times for `deadline`, longest first."""
        return getattr(self, deadline, ()) if deadline in REMINDABLE_DEADLINES else ()


Extension = Annotated[
    timedelta,
    PlainValidator(_positive_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
Count = Annotated[int, Field(strict=True, ge=0, le=10)]


class Extensions(Frozen):
    """Extra time the parties may ask for (Taobao, JD). Absent: none."""

    # The buyer may extend the inspection window `buyer_inspection_times` times by
    # `buyer_inspection`, only when at most `buyer_inspection_within` is left
    # (Taobao: once by 3 days when 3 days or less remain; JD: once by 5 days).
    buyer_inspection: Extension = timedelta(days=3)
    buyer_inspection_within: Extension = timedelta(days=3)
    buyer_inspection_times: Count = 1
    # The seller may extend the window on the buyer's behalf (Taobao: 3/5/7/10
    # days), at most `seller_inspection_max` in total over `seller_inspection_times`.
    seller_inspection_max: Extension = timedelta(days=10)
    seller_inspection_times: Count = 1
    # The seller may ask for more production time; the buyer accepts or refuses.
    # Accepted, the promised date (and so the late penalty) moves.
    production_max: Extension = timedelta(days=30)
    production_requests: Count = 2
