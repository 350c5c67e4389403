"""The event catalogue: what an outbound event is called and what its body holds.

Every timeline entry and every decision becomes one event. Its `type` is
`GROUP.NAME`, from the timeline kind (bespoke/domain/events.py) by `TYPE_BY_KIND`;
decisions are `decision.made`. Type names are a contract (subscriptions match
them, receivers switch on them): add, never rename.

The body (`payload`) is what a webhook POSTs, and what the outbox stores:

    {"id": "ORD-1:12", "type": "order.stage_changed", "order_id": "ORD-1", "seq": 12,
     "at": "2026-…Z", "data": {...}}

Pure functions: no database, no Temporal.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from bespoke.domain.events import EventKind as K

DECISION_TYPE = "decision.made"

TYPE_BY_KIND: dict[str, str] = {
    # the order as a whole
    K.CREATED: "order.created",
    K.STAGE: "order.stage_changed",
    K.ACCEPTED: "order.accepted",
    K.CONSENTED: "order.consented",
    K.CANCELLED: "order.cancelled",
    K.GOODS_RETURNING: "order.goods_returning",
    K.CONFIRMED: "order.confirmed",
    K.AUTO_CONFIRMED: "order.auto_confirmed",
    K.AFTERSALES_CLOSED: "order.aftersales_closed",
    # money in
    K.PAYMENT: "payment.received",
    K.CREDIT_RESERVED: "payment.credit_reserved",
    K.BALANCE_DUE: "payment.balance_due",
    K.RETENTION_DUE: "payment.retention_due",
    K.RETENTION_OVERDUE: "payment.retention_overdue",
    K.CREDIT_REPAYMENT: "payment.credit_repayment",
    K.CREDIT_OVERDUE: "payment.credit_overdue",
    K.CREDIT_REMINDER: "payment.credit_reminder",
    K.CREDIT_REPAID: "payment.credit_repaid",
    # money out
    K.SETTLEMENT: "funds.settled",
    K.RETENTION: "funds.retention_released",
    K.REFUNDED: "funds.refunded",
    # production
    K.MILESTONE: "production.milestone",
    K.SALVAGE: "production.salvage",
    K.PRODUCTION_FINISHED: "production.finished",
    K.QC_PASSED: "production.qc_passed",
    K.QC_FAILED: "production.qc_failed",
    K.PROMISED_DATE_PASSED: "production.promised_date_passed",
    K.GRACE_PERIOD_OVER: "production.grace_period_over",
    # delivery
    K.SHIPPED: "delivery.shipped",
    K.DELIVERED: "delivery.delivered",
    K.REFUSED: "delivery.refused",
    K.COD_REMITTED: "delivery.cod_remitted",
    K.COD_REMITTANCE_OVERDUE: "delivery.cod_remittance_overdue",
    # after-sales cases
    K.CASE_OPENED: "case.opened",
    K.CASE_NOTE: "case.note",
    K.CASE_CLOSED: "case.closed",
    K.RETURN_RESPONSE: "case.return_response",
    K.RETURN_AUTO_APPROVED: "case.return_auto_approved",
    K.OFFER_ANSWER: "case.offer_answered",
    K.RETURN_SHIPPED: "case.return_shipped",
    K.RETURN_RECEIVED: "case.return_received",
    K.RETURN_AUTO_REFUND: "case.return_auto_refund",
    K.RESHIPPED: "case.reshipped",
    K.DISPUTE_OPENED: "case.dispute_opened",
    K.EVIDENCE: "case.evidence",
    K.DISPUTE_DEFAULT: "case.dispute_default",
    K.ARBITRATED: "case.arbitrated",
    # deadlines
    K.DEADLINE_REMINDER: "deadline.reminder",
    K.DEADLINE_EXTENDED: "deadline.extended",
    K.DEADLINE_OVERRIDDEN: "deadline.overridden",
    K.MORE_TIME_ASKED: "deadline.more_time_asked",
    K.MORE_TIME_ANSWERED: "deadline.more_time_answered",
    # decisions
    K.DECISION_BLOCKED: "decision.blocked",
    K.DECISION_UNBLOCKED: "decision.unblocked",
}
EVENT_TYPES: tuple[str, ...] = tuple(sorted({*TYPE_BY_KIND.values(), DECISION_TYPE}))
GROUPS: tuple[str, ...] = tuple(sorted({t.split(".")[0] for t in EVENT_TYPES}))

# A decision's explanation (facts, every matched condition) can be long; past this
# the event carries what was decided without it (GET /api/orders/{id} has it all).
MAX_EXPLANATION_CHARS = 16_000
MAX_DATA_CHARS = 8_000
_STAGE_MESSAGE = re.compile(r"^stage → ([a-z_]+)$")


def event_type(kind: str) -> str:
    """The catalogue type for a timeline kind (a kind added later without a type
    yet still goes out, as `order.<kind>`)."""
    return TYPE_BY_KIND.get(kind, f"order.{kind}")


def timeline_event_id(order_id: str, seq: int) -> str:
    return f"{order_id}:{seq}"


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _bounded(data: dict[str, Any] | None, limit: int) -> dict[str, Any] | None:
    if data is None:
        return None
    if len(json.dumps(data, default=str)) <= limit:
        return data
    return {"truncated": True}


def timeline_payload(*, order_id: str, seq: int, entry: Any) -> dict[str, Any]:
    """The body of the event for one timeline entry (a TimelineEntry)."""
    data: dict[str, Any] = {"timeline_seq": entry.seq, "kind": str(entry.kind), "actor": entry.actor,
                            "message": entry.message}
    stage = _STAGE_MESSAGE.match(entry.message) if entry.kind == K.STAGE else None
    if stage:  # the workflow's own wording (core.py `_set_stage`), so the new stage is a field too
        data["stage"] = stage.group(1)
    if entry.data is not None:
        data["detail"] = _bounded(entry.data, MAX_DATA_CHARS)
    return {"id": timeline_event_id(order_id, entry.seq), "type": event_type(entry.kind), "order_id": order_id,
            "seq": seq, "at": _iso(entry.at), "data": data}


def decision_payload(*, order_id: str, seq: int, at: datetime, explanation: dict[str, Any]) -> dict[str, Any]:
    """The body of the event for one decision (its audit explanation)."""
    data = {
        "decision_id": explanation["decision_id"],
        "kind": explanation.get("kind", ""),
        "as_of": explanation.get("as_of"),
        "summary": str(explanation.get("summary", ""))[:2000],
        "amounts": explanation.get("amounts", {}),
        "results": explanation.get("results", {}),
    }
    if len(json.dumps(explanation, default=str)) <= MAX_EXPLANATION_CHARS:
        data["explanation"] = explanation
    else:
        data["explanation_truncated"] = True
    return {"id": explanation["decision_id"], "type": DECISION_TYPE, "order_id": order_id, "seq": seq,
            "at": _iso(at), "data": data}


# ------------------------------------------------------------------ patterns

MAX_PATTERNS = 20


def parse_patterns(patterns: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Subscription patterns, checked: `*`, `GROUP.*` or a type from the catalogue.
    Raises ValueError with a line to show."""
    cleaned = tuple(dict.fromkeys(p.strip() for p in patterns if p and p.strip()))
    if not cleaned:
        raise ValueError("give at least one event type pattern (e.g. order.*, deadline.reminder, *)")
    if len(cleaned) > MAX_PATTERNS:
        raise ValueError(f"at most {MAX_PATTERNS} event type patterns")
    for p in cleaned:
        if p == "*" or p in EVENT_TYPES:
            continue
        if p.endswith(".*") and p[:-2] in GROUPS:
            continue
        raise ValueError(f"unknown event type pattern {p[:80]!r} (use *, GROUP.* with GROUP one of "
                         f"{', '.join(GROUPS)}, or a type such as deadline.reminder)")
    return cleaned


def matches(patterns: tuple[str, ...] | list[str], type_: str) -> bool:
    for p in patterns:
        if p == "*" or p == type_ or (p.endswith(".*") and type_.startswith(p[:-1])):
            return True
    return False
