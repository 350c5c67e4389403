"""The message log: each message is sent from its row while pending, once; SMTP
down leaves it pending with a backoff, a 5xx fails it, days of failure give up;
reading the outbox waits on a gap in its ids that may still commit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlmodel import Session

from bespoke.mail.outbox import GAP_WAIT, MailConfig, _readable, mail_config, send_one
from bespoke.mail.smtp import parse_smtp_url
from bespoke.settings import Settings, SettingsError
from bespoke.store.tables import EmailMessageRow
from tests.helpers_smtp import SmtpSink


def _config(sink: SmtpSink, **kw) -> MailConfig:
    return MailConfig(smtp=parse_smtp_url(sink.url + "?timeout=5"), sender="Bespoke <orders@example.com>",
                      first_retry=timedelta(seconds=1), **kw)


def _row(engine, **kw) -> int:
    now = datetime.now(UTC)
    values = dict(event_id="T1:19", recipient="buyer:alice", address="alice@example.com", order_id="T1",
                  subject="Reminder: order T1", body="Due: 2026-12-17 13:55 UTC\n", status="pending",
                  created_at=now, next_attempt_at=now)
    values.update(kw)
    with Session(engine) as s:
        row = EmailMessageRow(**values)
        s.add(row)
        s.commit()
        return row.id


def _due_now(engine, message_id: int) -> None:
    """Skip the backoff: the message is due again now."""
    with Session(engine) as s:
        row = s.get(EmailMessageRow, message_id)
        row.next_attempt_at = datetime.now(UTC) - timedelta(seconds=1)
        s.add(row)
        s.commit()


def _get(engine, message_id: int) -> EmailMessageRow:
    with Session(engine) as s:
        return s.get(EmailMessageRow, message_id)


def test_smtp_down_leaves_the_message_pending_with_a_backoff_then_it_is_sent_once(engine):
    sink = SmtpSink()  # not started: nothing listens on its port
    message = _row(engine)
    assert send_one(engine, _config(sink), message).status == "retry"
    row = _get(engine, message)
    assert (row.status, row.attempts) == ("pending", 1) and "Connection" in row.last_error
    first_wait = row.next_attempt_at - row.created_at
    assert send_one(engine, _config(sink), message).status == "done"  # not due again yet: nothing tried
    _due_now(engine, message)
    assert send_one(engine, _config(sink), message).status == "retry"
    assert _get(engine, message).next_attempt_at - datetime.now(UTC) > first_wait - timedelta(seconds=1)  # backs off
    sink.start()
    try:
        _due_now(engine, message)
        assert send_one(engine, _config(sink), message).status == "sent"
        assert send_one(engine, _config(sink), message).status == "done"  # a retried activity sends nothing
        got, = sink.wait_for(1)
        assert got.rcpt_tos == ["alice@example.com"] and "2026-12-17 13:55 UTC" in got.body
        row = _get(engine, message)
        assert (row.status, row.attempts, row.last_error) == ("sent", 3, "") and row.sent_at is not None
    finally:
        sink.stop()


def test_an_attempt_holds_the_message_so_a_second_one_at_the_same_time_sends_nothing(engine):
    from bespoke.mail.outbox import LEASE, _claim

    sink = SmtpSink().start()
    try:
        message = _row(engine)
        now = datetime.now(UTC)
        assert _claim(engine, message, now)  # a first attempt (another dispatcher) is sending it
        assert send_one(engine, _config(sink), message).status == "done"
        assert sink.received == [] and _get(engine, message).status == "pending"
        assert _aware_utc(_get(engine, message).next_attempt_at) >= now + LEASE - timedelta(seconds=1)
    finally:
        sink.stop()


def _aware_utc(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def test_a_refused_recipient_fails_the_message_and_an_old_one_is_given_up(engine):
    sink = SmtpSink().start()
    try:
        sink.refuse_rcpt["gone@example.com"] = "550 5.1.1 mailbox unavailable"
        refused = _row(engine, address="gone@example.com")
        assert send_one(engine, _config(sink), refused).status == "failed"
        assert "550" in _get(engine, refused).last_error
        old = _row(engine, event_id="T1:20", created_at=datetime.now(UTC) - timedelta(days=4))
        assert send_one(engine, _config(sink), old).status == "given_up"
        assert send_one(engine, None, _row(engine, event_id="T1:21")).status == "retry"  # no SMTP on this worker
        assert sink.received == []
    finally:
        sink.stop()


def test_reading_stops_at_a_fresh_gap_in_the_ids_and_passes_an_old_one():
    now = datetime.now(UTC)
    rows = [SimpleNamespace(id=i, recorded_at=now) for i in (1, 2, 4, 5)]
    assert [r.id for r in _readable(rows, 0, now)] == [1, 2]  # 3 may still commit
    assert [r.id for r in _readable(rows, 0, now + GAP_WAIT)] == [1, 2, 4, 5]  # 3 never will
    assert [r.id for r in _readable(rows[2:], 3, now)] == [4, 5]


def test_email_settings_must_name_a_sender():
    assert mail_config(Settings(_environ={})) is None
    with pytest.raises(SettingsError, match="BESPOKE_EMAIL_FROM"):
        mail_config(Settings(_environ={}, smtp_url="smtp://127.0.0.1:2525"))
    config = mail_config(Settings(_environ={}, smtp_url="smtps://u:p@mail.example.com",
                                  email_from="orders@example.com", public_url="https://o.example.com"))
    assert (config.smtp.port, config.sender, config.public_url) == (465, "orders@example.com", "https://o.example.com")


def test_a_worker_with_an_smtp_url_but_no_sender_stops_with_one_line(tmp_path, monkeypatch, capsys):
    from bespoke.cli.app import run
    from bespoke.settings import get_settings

    monkeypatch.setenv("BESPOKE_HOME", str(tmp_path))
    monkeypatch.setenv("BESPOKE_SMTP_URL", "smtp://127.0.0.1:2525")
    monkeypatch.delenv("BESPOKE_EMAIL_FROM", raising=False)
    get_settings.cache_clear()
    try:
        assert run(["worker"]) == 1
    finally:
        get_settings.cache_clear()
    assert capsys.readouterr().err.strip() == (
        "error: configuration: BESPOKE_EMAIL_FROM must be set when BESPOKE_SMTP_URL is (the sender address)")


def _reminder_event(engine, event_id: str, due_at: datetime) -> None:
    from bespoke.store.tables import EventRow

    now = datetime.now(UTC)
    detail = {"deadline": "inspection_window", "due_at": due_at.isoformat(), "before": "P1D",
              "to": "buyer:alice", "default_action": "receipt is confirmed", "late": False}
    with Session(engine) as s:
        s.add(EventRow(event_id=event_id, order_id="T1", seq=int(event_id.split(":")[1]), type="deadline.reminder",
                       kind="deadline_reminder", actor="system:timer", at=now, buyer="alice", seller="acme",
                       carrier=None, recorded_at=now, payload={"data": {"detail": detail}}))
        s.commit()


def test_a_reminder_whose_deadline_passed_while_smtp_was_down_is_not_sent(engine):
    sink = SmtpSink().start()
    try:
        _reminder_event(engine, "T1:30", datetime.now(UTC) - timedelta(minutes=1))
        _reminder_event(engine, "T1:31", datetime.now(UTC) + timedelta(days=1))
        passed, coming = _row(engine, event_id="T1:30"), _row(engine, event_id="T1:31")
        assert send_one(engine, _config(sink), passed).status == "given_up"
        assert _get(engine, passed).last_error == "the deadline passed before it could be sent"
        assert send_one(engine, _config(sink), coming).status == "sent"
        assert len(sink.wait_for(1)) == 1
    finally:
        sink.stop()
