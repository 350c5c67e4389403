"""What an email says: one plain-text message (UTF-8, a subject, no HTML) per
reminder and per decision, to one party.

Pure functions of a `Notice` (what happened, to whom, on which order); nothing
here reads a clock or a database, so a retried activity renders the same bytes.
Amounts are shown in major units as everywhere else (`format_amount`: "1,200.50
CNY"), times in UTC as the timeline shows them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

from bespoke.domain.money import format_amount
from bespoke.rules.durations import duration_words, parse_duration

# Bounds: a subject line, one quoted text (a because, a summary), a whole body.
MAX_SUBJECT = 200
MAX_TEXT = 1000
MAX_BODY = 20_000
MAX_RULES = 20
MAX_AMOUNTS = 30

# What the party is asked to do before each deadline falls due.
TO_DO = {
    "seller_acceptance": "accept the order (or decline it)",
    "deposit": "pay the deposit",
    "balance": "pay the balance",
    "retention": "pay the retention",
    "inspection_window": "inspect the goods: confirm receipt, or open a return",
    "cod_remittance": "remit the cash collected on delivery",
    "credit_settlement": "repay what the order owes on credit",
    "aftersales_window": "open a return, repair or dispute if anything is wrong",
    "return_response": "answer the buyer's return request",
    "offer_response": "answer the seller's offer",
    "escalation": "open a dispute if you do not accept the seller's rejection",
    "return_ship": "ship the goods back",
    "return_receive": "confirm the returned goods arrived",
    "repair": "ship the repaired goods back",
    "dispute_evidence": "send your evidence for the dispute",
}


@dataclass(frozen=True)
class OrderFacts:
    """What the read model knows of the order (its `orders` row)."""

    order_id: str
    title: str = ""
    currency: str = "CNY"
    price: int | None = None
    paid: int | None = None
    refunded: int | None = None
    released_to_seller: int | None = None


@dataclass(frozen=True)
class Reminder:
    deadline: str
    due_at: datetime
    before: str  # the lead as the policy wrote it (P3D)
    default_action: str
    late: bool = False


@dataclass(frozen=True)
class Decision:
    decision_id: str
    kind: str
    summary: str
    as_of: datetime | None
    amounts: dict[str, int] = field(default_factory=dict)
    because: tuple[tuple[str, str], ...] = ()  # (rule id, its because text)
    policy: str = ""  # name@version


@dataclass(frozen=True)
class Notice:
    """One message: an event about an order, for one recipient ("role:name")."""

    event_id: str
    recipient: str
    order: OrderFacts
    what: Reminder | Decision
    at: datetime | None = None  # when it happened (workflow time)


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


def _utc(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _clip(text: Any, limit: int = MAX_TEXT) -> str:
    text = " ".join(str(text).split())  # one line: no header or layout injection
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _role(recipient: str) -> str:
    return recipient.partition(":")[0] or "party"


def _order_lines(order: OrderFacts, public_url: str | None) -> list[str]:
    lines = [f"Order {order.order_id}" + (f": {_clip(order.title, 200)}" if order.title else "")]
    for label, amount in (("Price", order.price), ("Paid", order.paid), ("Refunded", order.refunded),
                          ("Released to the seller", order.released_to_seller)):
        if amount is not None and (amount or label in ("Price", "Paid")):
            lines.append(f"  {label + ':':<24}{format_amount(amount, order.currency)}")
    if public_url:
        lines += ["", f"Open the order: {public_url.rstrip('/')}/orders/{order.order_id}"]
    return lines


def _reminder(notice: Notice, r: Reminder) -> Rendered:
    order = notice.order
    label = r.deadline.replace("_", " ")
    try:
        lead = duration_words(parse_duration(r.before))
    except ValueError:
        lead = r.before
    subject = (f"{'Late reminder' if r.late else 'Reminder'}: order {order.order_id}, "
               f"{label} due {_utc(r.due_at)}")
    todo = TO_DO.get(r.deadline, f"act before the {label} deadline")
    lines = [
        f"Hello {notice.recipient},",
        "",
        f"Order {order.order_id} is waiting for you to {todo}.",
        "",
        f"Deadline:  {label}",
        f"Due:       {_utc(r.due_at)}" + ("" if r.late else f" (in {lead})"),
        f"If nothing is done by then: {_clip(r.default_action)}",
    ]
    if r.late:
        lines.append("(This reminder is late: bespoke could not send it on time.)")
    return Rendered(subject, "\n".join(lines))


def _decision(notice: Notice, d: Decision) -> Rendered:
    order = notice.order
    kind = d.kind.replace("_", " ") or "decision"
    subject = f"Decision on order {order.order_id}: {kind}"
    lines = [
        f"Hello {notice.recipient},",
        "",
        f"A decision was made on order {order.order_id}: {kind}.",
        "",
        _clip(d.summary),
    ]
    # Only what moves money: a rule table's zero outputs (no penalty, no charge) are noise here.
    amounts = [(k, v) for k, v in d.amounts.items() if v][:MAX_AMOUNTS]
    if amounts:
        width = max(len(k) for k, _ in amounts) + 2
        lines += ["", "Amounts:"]
        lines += [f"  {(k.replace('_', ' ') + ':'):<{width}}{format_amount(v, order.currency)}" for k, v in amounts]
    if d.because:
        lines += ["", "Because:"]
        lines += [f"  - {_clip(text)} (rule {_clip(rule, 100)})" for rule, text in d.because[:MAX_RULES]]
    when = f" on {_utc(d.as_of)}" if d.as_of else ""
    policy = f" under policy {d.policy}" if d.policy else ""
    lines += ["", f"Decided{when}{policy} (decision {d.decision_id})."]
    return Rendered(subject, "\n".join(lines))


def render(notice: Notice, *, public_url: str | None = None) -> Rendered:
    """The subject and plain-text body of `notice`."""
    what = notice.what
    core = _reminder(notice, what) if isinstance(what, Reminder) else _decision(notice, what)
    tail = "\n".join(["", "", *_order_lines(notice.order, public_url), "",
                      f"You receive this as the {_role(notice.recipient)} on this order. -- bespoke", ""])
    head = core.body
    if len(head) + len(tail) > MAX_BODY:  # the order and the link always fit; long reasons give way
        head = head[: MAX_BODY - len(tail) - 1] + "…"
    return Rendered(_clip(core.subject, MAX_SUBJECT), head + tail)


def message_id(event_id: str, recipient: str, sender: str) -> str:
    """A Message-ID that is the same on every attempt of one (event, recipient), so a
    receiver that already has the message can tell a repeat (after a crash between
    the server's acceptance and our record of it) from a new one."""
    digest = hashlib.sha256(f"{event_id}\n{recipient}".encode()).hexdigest()[:32]
    domain = parseaddr(sender)[1].rpartition("@")[2] or "bespoke.invalid"
    return f"<{digest}@{domain}>"


def build_message(*, sender: str, to: str, subject: str, body: str, event_id: str, recipient: str,
                  date: datetime) -> EmailMessage:
    """The message as sent: text/plain; charset=utf-8, with From, To, Subject, Date and
    a stable Message-ID."""
    # Lines up to RFC 5322's 998: a subject (at most MAX_SUBJECT) is never folded,
    # which some readers then show with a leading space.
    msg = EmailMessage(policy=policy.SMTP.clone(max_line_length=998))
    name, address = parseaddr(sender)
    msg["From"] = Address(display_name=name, addr_spec=address) if name else address
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date.astimezone(UTC))
    msg["Message-ID"] = message_id(event_id, recipient, sender)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    msg.set_content(body, subtype="plain", charset="utf-8")
    return msg
