"""Sending through a real SMTP server on loopback (aiosmtpd): accepted, refused for
good (5xx), refused for now (4xx, down), STARTTLS, and a login never sent in clear."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bespoke.mail.render import build_message
from bespoke.mail.smtp import SmtpConfigError, SmtpPermanent, SmtpTransient, parse_smtp_url, send
from tests.helpers_smtp import SmtpSink, free_port, self_signed


def _message(to: str = "alice@example.com", body: str = "Grüße: 1,200.50 CNY") -> object:
    return build_message(sender="Bespoke <orders@example.com>", to=to, subject="Reminder: order T1", body=body,
                         event_id="T1:7", recipient="buyer:alice", date=datetime(2026, 12, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def sink():
    server = SmtpSink().start()
    yield server
    server.stop()


def test_a_message_reaches_the_server_as_utf8_plain_text(sink):
    send(parse_smtp_url(sink.url + "?starttls=never"), _message())
    got, = sink.wait_for(1)
    assert got.rcpt_tos == ["alice@example.com"] and got.mail_from == "orders@example.com"
    assert got.message["Subject"] == "Reminder: order T1"
    assert got.message.get_content_type() == "text/plain" and got.message.get_content_charset() == "utf-8"
    assert got.body.strip() == "Grüße: 1,200.50 CNY"
    assert got.message["Message-ID"] == _message()["Message-ID"]  # stable across attempts


def test_auto_starttls_talks_plain_to_a_server_that_offers_none(sink):
    send(parse_smtp_url(sink.url), _message())
    assert len(sink.wait_for(1)) == 1


def test_a_refused_recipient_is_permanent_and_a_4xx_is_transient(sink):
    sink.refuse_rcpt["nobody@example.com"] = "550 5.1.1 no such user"
    with pytest.raises(SmtpPermanent, match="550"):
        send(parse_smtp_url(sink.url), _message(to="nobody@example.com"))
    sink.answer_data.append("451 4.3.0 try again later")
    with pytest.raises(SmtpTransient, match="451"):
        send(parse_smtp_url(sink.url), _message())
    sink.answer_data.append("554 5.6.0 message refused")
    with pytest.raises(SmtpPermanent, match="554"):
        send(parse_smtp_url(sink.url), _message())
    assert sink.received == []


def test_a_server_that_is_down_is_transient():
    with pytest.raises(SmtpTransient, match="ConnectionRefused"):
        send(parse_smtp_url(f"smtp://127.0.0.1:{free_port()}?timeout=5"), _message())


def test_starttls_is_used_and_the_login_goes_over_it(tmp_path):
    server_ctx, client_ctx = self_signed(tmp_path)
    sink = SmtpSink(tls_context=server_ctx, require_starttls=True, login=("bespoke", "s3cr:t")).start()
    try:
        send(parse_smtp_url(f"smtp://bespoke:s3cr%3At@localhost:{sink.port}?starttls=require"), _message(),
             tls_context=client_ctx)
        assert len(sink.wait_for(1)) == 1
        with pytest.raises(SmtpTransient, match="535"):  # a wrong password: our configuration, not the message
            send(parse_smtp_url(f"smtp://bespoke:wrong@localhost:{sink.port}"), _message(), tls_context=client_ctx)
        with pytest.raises(SmtpTransient, match="certificate verify failed"):  # system roots do not know it
            send(parse_smtp_url(f"smtp://bespoke:s3cr%3At@localhost:{sink.port}"), _message())
    finally:
        sink.stop()


def test_starttls_required_but_not_offered_is_refused(sink):
    with pytest.raises(SmtpTransient, match="does not offer STARTTLS"):
        send(parse_smtp_url(sink.url + "?starttls=require"), _message())
    assert sink.received == []


def _own_address() -> str | None:
    """This machine's address on its default route (not loopback), if it has one:
    a UDP socket 'connected' to a TEST-NET address sends nothing."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.123", 9))
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") else address


def test_a_password_is_never_sent_unencrypted_off_loopback():
    address = _own_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to serve SMTP on")
    sink = SmtpSink(host=address).start()
    try:
        with pytest.raises(SmtpTransient, match="unencrypted"):
            send(parse_smtp_url(f"smtp://u:pw@{address}:{sink.port}"), _message())
        assert sink.received == []
        send(parse_smtp_url(f"smtp://{address}:{sink.port}"), _message())  # no login: plain text is fine
        assert len(sink.wait_for(1)) == 1
    finally:
        sink.stop()
    assert parse_smtp_url("smtp://u:p@127.0.0.1").loopback and parse_smtp_url("smtp://localhost").loopback
    assert "pw" not in repr(parse_smtp_url(f"smtp://u:pw@{address}")) and "***" in repr(parse_smtp_url("smtp://u:pw@h"))


@pytest.mark.parametrize(("url", "match"), [
    ("http://mail.example.com", "must be smtp://"),
    ("smtp://", "must be smtp://"),
    ("smtp://mail.example.com:99999", "port"),
    ("smtp://mail.example.com?starttls=maybe", "starttls must be one of"),
    ("smtps://mail.example.com?starttls=require", "TLS from the start"),
    ("smtp://mail.example.com?tls=1", "unknown parameter"),
    ("smtp://mail.example.com?timeout=0", "timeout"),
])
def test_bad_smtp_urls_are_refused_with_a_reason(url, match):
    with pytest.raises(SmtpConfigError, match=match):
        parse_smtp_url(url)


def test_ports_default_by_scheme():
    assert parse_smtp_url("smtp://mail.example.com").port == 587
    smtps = parse_smtp_url("smtps://a%40b:pw@mail.example.com")
    assert (smtps.port, smtps.implicit_tls, smtps.username, smtps.password) == (465, True, "a@b", "pw")
