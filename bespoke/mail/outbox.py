"""Email from the events outbox: read the events in `id` order with email's own
cursor, turn each reminder and each decision into one message per recipient with
an email address, and send each message from its row in `email_messages`.

Exactly once, as far as SMTP allows: a message is rendered into its row once, and
(event id, recipient) is unique, so reading the same events again (a retried
activity, a replayed workflow, a cursor that had not moved) never makes a second
message; a message is sent only while its row is `pending` and is marked `sent`
as soon as the server accepted it. The one gap SMTP leaves is a crash between the
server's acceptance and that mark: the next attempt sends it again, with the same
Message-ID (render.message_id), which mail systems use to drop duplicates.

Who gets what: a reminder goes to the party it names (`to`: the buyer, the seller,
the carrier, each dispute side); a decision to the order's buyer and seller. Each
is a principal (`api_principals`); one without an email address gets no email.

Retries: an SMTP failure that may pass (server down, 4xx) leaves the message
pending with `next_attempt_at` pushed back (exponential, capped); one that cannot
(5xx for this recipient or this message) marks it `failed`; a message still
failing after `give_up_after` is `given_up`. Nothing here reads events twice
or skips one: see `_readable` for ids that commit out of order.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, column, select, table, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bespoke.domain.mail import CollectResult, SendResult
from bespoke.mail.render import Decision, Notice, OrderFacts, Reminder, build_message, render
from bespoke.mail.smtp import SmtpConfig, SmtpPermanent, SmtpTransient, parse_smtp_url, send
from bespoke.store.db import session_scope
from bespoke.store.tables import ApiPrincipal, DecisionRow, EmailCursor, EmailMessageRow, EventRow, OrderRow

# The outbox as email reads it (the table is written by bespoke.notifications.outbox
# inside the read-model projection); only the columns email needs.
EVENTS = table("events", column("id"), column("event_id"), column("order_id"), column("type"), column("at"),
               column("payload", JSON), column("recorded_at"))
REMINDER = "deadline.reminder"
DECISION = "decision.made"
CURSOR = "events"
# An id can be taken by a transaction that commits after a later id's (PostgreSQL
# sequences; SQLite writes one at a time): a gap in the ids is waited on this long
# (the projection's activity times out well before) before it is taken as an id
# that was never committed, so no event is passed over while still in flight.
GAP_WAIT = timedelta(minutes=2)
# A decision concerns the buyer and the seller; a reminder one party: never more.
MAX_RECIPIENTS = 4
# How long one attempt holds a message (more than an attempt can take: SMTP steps
# time out after 30 s, the activity after 3 minutes).
LEASE = timedelta(minutes=5)


@dataclass(frozen=True)
class MailConfig:
    """Everything sending needs, built once per worker from the settings."""

    smtp: SmtpConfig
    sender: str
    public_url: str | None = None
    tls_context: ssl.SSLContext | None = None  # None: the system's roots
    first_retry: timedelta = timedelta(seconds=10)
    max_retry: timedelta = timedelta(minutes=30)
    give_up_after: timedelta = timedelta(days=3)
    gap_wait: timedelta = GAP_WAIT
    lease: timedelta = LEASE


def mail_config(settings: Any) -> MailConfig | None:
    """The email configuration from `settings`, or None: email is off (no BESPOKE_SMTP_URL)."""
    from bespoke.mail.smtp import SmtpConfigError
    from bespoke.settings import SettingsError

    if settings.smtp_url is None:
        return None
    if not settings.email_from:
        raise SettingsError("BESPOKE_EMAIL_FROM must be set when BESPOKE_SMTP_URL is (the sender address)")
    try:
        smtp = parse_smtp_url(settings.smtp_url.get_secret_value())
    except SmtpConfigError as err:
        raise SettingsError(str(err)) from None
    return MailConfig(smtp=smtp, sender=settings.email_from, public_url=settings.public_url)


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)  # SQLite hands back naive UTC


def _when(text: Any) -> datetime | None:
    if isinstance(text, datetime):
        return _aware(text)
    try:
        return _aware(datetime.fromisoformat(str(text).replace("Z", "+00:00")))
    except ValueError:
        return None


# ------------------------------------------------------------------ reading


def _readable(rows: list[Any], position: int, now: datetime, gap_wait: timedelta = GAP_WAIT) -> list[Any]:
    """The rows that can be read now: up to the first gap in the ids that is
    younger than `gap_wait` (its transaction may still commit). A gap is also what a
    rolled-back projection leaves (PostgreSQL does not reuse the ids), so email
    after one waits that long once."""
    out, last = [], position
    for row in rows:
        if row.id != last + 1 and now - _aware(row.recorded_at) < gap_wait:
            break
        out.append(row)
        last = row.id
    return out


def _order(session: Session, order_id: str) -> tuple[OrderFacts, OrderRow | None]:
    row = session.get(OrderRow, order_id)
    if row is None:
        return OrderFacts(order_id=order_id), None
    return OrderFacts(order_id=order_id, title=row.title, currency=row.currency, price=row.price, paid=row.paid,
                      refunded=row.refunded, released_to_seller=row.released_to_seller), row


def _reminder(payload: dict[str, Any]) -> tuple[Reminder, list[str]] | None:
    detail = (payload.get("data") or {}).get("detail") or {}
    due = _when(detail.get("due_at"))
    if due is None or not detail.get("to"):
        return None
    what = Reminder(deadline=str(detail.get("deadline", ""))[:64], due_at=due, before=str(detail.get("before", "")),
                    default_action=str(detail.get("default_action", "")), late=bool(detail.get("late")))
    return what, [str(detail["to"])]


def _decision(session: Session, payload: dict[str, Any], order: OrderRow | None) -> tuple[Decision, list[str]] | None:
    data = payload.get("data") or {}
    decision_id = str(data.get("decision_id") or payload.get("id") or "")
    stored = session.get(DecisionRow, decision_id)  # the whole explanation, even when the event was cut short
    explanation = stored.explanation if stored is not None else (data.get("explanation") or data)
    if not decision_id or order is None:
        return None
    pin = explanation.get("pin") or {}
    because = tuple((str(m.get("rule_id", "")), str(m.get("because", "")))
                    for m in explanation.get("matched") or [] if m.get("because"))
    amounts = {str(k): int(v) for k, v in (explanation.get("amounts") or {}).items()
               if isinstance(v, int) and not isinstance(v, bool)}
    what = Decision(decision_id=decision_id, kind=str(explanation.get("kind", "")),
                    summary=str(explanation.get("summary", "")), as_of=_when(explanation.get("as_of")),
                    amounts=amounts, because=because,
                    policy=f"{pin['name']}@{pin['version']}" if pin.get("name") else "")
    return what, [f"buyer:{order.buyer}", f"seller:{order.seller}"]


def notices(session: Session, event: Any) -> list[Notice]:
    """The messages one outbox event makes: one per recipient who has an address
    (not yet checked against the log)."""
    payload = event.payload or {}
    facts, order = _order(session, event.order_id)
    if event.type == REMINDER:
        found = _reminder(payload)
    elif event.type == DECISION:
        found = _decision(session, payload, order)
    else:
        return []
    if found is None:
        return []
    what, recipients = found
    return [Notice(event_id=event.event_id, recipient=r, order=facts, what=what, at=_when(event.at))
            for r in dict.fromkeys(recipients[:MAX_RECIPIENTS])]


def _addresses(session: Session, refs: Iterable[str]) -> dict[str, str]:
    refs = list(dict.fromkeys(refs))
    if not refs:
        return {}
    rows = session.exec(select(ApiPrincipal).where(ApiPrincipal.principal.in_(refs))).scalars().all()
    return {r.principal: r.email for r in rows if r.email and not r.revoked}


def collect(engine: Engine, config: MailConfig | None, *, limit: int, due_limit: int) -> CollectResult:
    """Read up to `limit` new events, add their messages to the log and move the
    cursor past them, in one transaction; then the ids of the messages due now."""
    public_url = config.public_url if config is not None else None
    now = _now()
    queued = 0
    with session_scope(engine) as session:
        cursor = session.exec(select(EmailCursor).where(EmailCursor.name == CURSOR).with_for_update()).scalars().first()
        if cursor is None:
            cursor = EmailCursor(name=CURSOR, position=0, updated_at=now)
            session.add(cursor)
        rows = session.exec(select(EVENTS).where(EVENTS.c.id > cursor.position)
                               .order_by(EVENTS.c.id).limit(limit)).all()
        readable = _readable(rows, cursor.position, now, config.gap_wait if config is not None else GAP_WAIT)
        for event in readable:
            found = notices(session, event)
            addresses = _addresses(session, (n.recipient for n in found))
            for notice in found:
                address = addresses.get(notice.recipient)
                if address is None:
                    continue
                exists = session.exec(select(EmailMessageRow.id).where(
                    EmailMessageRow.event_id == notice.event_id,
                    EmailMessageRow.recipient == notice.recipient)).first()
                if exists is not None:
                    continue
                rendered = render(notice, public_url=public_url)
                session.add(EmailMessageRow(event_id=notice.event_id, recipient=notice.recipient, address=address,
                                            order_id=notice.order.order_id, subject=rendered.subject,
                                            body=rendered.body, status="pending", created_at=now,
                                            next_attempt_at=now))
                queued += 1
        if readable:
            cursor.position, cursor.updated_at = readable[-1].id, now
            session.add(cursor)
    return CollectResult(read=len(readable), queued=queued, more=len(readable) == limit,
                         due=due_messages(engine, limit=due_limit))


def due_messages(engine: Engine, *, limit: int) -> list[int]:
    with Session(engine) as session:
        return list(session.exec(
            select(EmailMessageRow.id).where(EmailMessageRow.status == "pending",
                                             EmailMessageRow.next_attempt_at <= _now())
            .order_by(EmailMessageRow.next_attempt_at, EmailMessageRow.id).limit(limit)).scalars().all())


# ------------------------------------------------------------------ sending


def _backoff(config: MailConfig, attempts: int) -> timedelta:
    return min(config.first_retry * (2 ** max(attempts - 1, 0)), config.max_retry)


def _claim(engine: Engine, message_id: int, now: datetime, lease: timedelta = LEASE) -> bool:
    """Take the message for one attempt: it must be pending and due, and it is then
    not due again for LEASE, so two attempts at once (a second dispatcher, an
    activity retried while the first try still runs) never both send it. A worker
    that dies holding it leaves it to the next round after the lease."""
    with session_scope(engine) as session:
        claimed = session.exec(update(EmailMessageRow).where(
            EmailMessageRow.id == message_id, EmailMessageRow.status == "pending",
            EmailMessageRow.next_attempt_at <= now).values(next_attempt_at=now + lease))
        return claimed.rowcount == 1


def _reminder_passed(session: Session, event_id: str, now: datetime) -> bool:
    event = session.exec(select(EventRow).where(EventRow.event_id == event_id)).scalars().first()
    if event is None or event.type != REMINDER:
        return False
    found = _reminder(event.payload or {})
    return found is not None and found[0].due_at <= now


def send_one(engine: Engine, config: MailConfig | None, message_id: int) -> SendResult:
    """Send one pending message that is due (nothing for one sent, failed, given up,
    not due yet, or being sent by another attempt)."""
    if config is None:  # a worker without BESPOKE_SMTP_URL leaves it to one that has it
        return SendResult(status="retry", detail="email is not configured on this worker")
    now = _now()
    if not _claim(engine, message_id, now, config.lease):
        return SendResult(status="done")
    with Session(engine) as session:
        row = session.get(EmailMessageRow, message_id)
        passed = _reminder_passed(session, row.event_id, now)
        if passed or now - _aware(row.created_at) > config.give_up_after:
            # A reminder is worth sending only before its deadline: after an outage, one
            # saying "due ... (in 3 days)" would arrive when the default action is done.
            row.status = "given_up"
            row.last_error = ("the deadline passed before it could be sent" if passed
                              else (row.last_error or "given up"))[:500]
            session.add(row)
            session.commit()
            return SendResult(status="given_up", detail=row.last_error)
        message = build_message(sender=config.sender, to=row.address, subject=row.subject, body=row.body,
                                event_id=row.event_id, recipient=row.recipient, date=_aware(row.created_at))
        row.attempts += 1
        try:
            send(config.smtp, message, tls_context=config.tls_context)
        except SmtpPermanent as err:
            row.status, row.last_error = "failed", str(err)[:500]
        except SmtpTransient as err:
            row.last_error, row.next_attempt_at = str(err)[:500], now + _backoff(config, row.attempts)
        else:
            row.status, row.sent_at, row.last_error = "sent", _now(), ""
        session.add(row)
        session.commit()
        return SendResult(status="retry" if row.status == "pending" else row.status, detail=row.last_error)
