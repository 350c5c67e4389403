"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for the
email tests: no mock of smtplib anywhere. It can be stopped and started again on
the same port (an SMTP outage), made to answer 4xx/5xx, and speak STARTTLS with a
self-signed certificate made here."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def body(self) -> str:
        return self.message.get_content()


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refuse = self._sink.refuse_rcpt.get(address)
        if refuse:
            return refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        sink = self._sink
        with sink.lock:
            if sink.answer_data:
                return sink.answer_data.pop(0)
            msg = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
            sink.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 Message accepted"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1:`port`. `answer_data`: replies to give to the
    next DATA commands instead of accepting ("451 try later"); `refuse_rcpt`: an
    address → reply ("550 no such user")."""

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None, tls_context: ssl.SSLContext | None = None,
                 require_starttls: bool = False, login: tuple[str, str] | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.received: list[Received] = []
        self.answer_data: list[str] = []
        self.refuse_rcpt: dict[str, str] = {}
        self.lock = threading.Lock()
        self._tls, self._require_tls, self._login = tls_context, require_starttls, login
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def _auth(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(), auth_data.password.decode()) == self._login
        return AuthResult(success=ok, handled=False)

    def start(self) -> SmtpSink:
        kwargs = {}
        if self._tls is not None:
            kwargs.update(tls_context=self._tls, require_starttls=self._require_tls)
        if self._login is not None:
            kwargs.update(authenticator=self._auth, auth_required=True, auth_require_tls=self._tls is not None)
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port,
                                      server_hostname="localhost", ready_timeout=10, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def messages_to(self, address: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if address in r.rcpt_tos]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Block until at least `count` messages arrived (then return them all)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.received)} messages arrived, expected {count}")


def self_signed(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A certificate for localhost/127.0.0.1 made now: (the server's context, a
    client context that trusts exactly it)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp / "smtp-cert.pem", tmp / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client
