"""The SMTP connection email goes out through (`BESPOKE_SMTP_URL`).

    smtp://[USER:PASS@]HOST[:PORT][?starttls=auto|require|never]   (port 587 by default)
    smtps://[USER:PASS@]HOST[:PORT]                                  (TLS from the start, port 465)

`smtp://` upgrades with STARTTLS whenever the server offers it (`auto`); `require`
refuses a server that does not, `never` talks plain text (a relay on loopback).
Credentials never travel unencrypted: a login over plain text is refused unless the
server is on loopback. Certificates are checked against the system's roots.

Errors are sorted for the retry logic: `SmtpPermanent` (a 5xx answer to this
recipient or this message: trying again gives the same answer) and `SmtpTransient`
(anything else: the server is down, busy, answered 4xx, or refused our login or our
sender address, which is our configuration's fault, not the message's: the
messages wait until it is fixed instead of being dropped one by one).
"""

from __future__ import annotations

import ipaddress
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

STARTTLS_MODES = ("auto", "require", "never")
DEFAULT_TIMEOUT = 30.0  # seconds for connecting and for each SMTP command


class SmtpConfigError(ValueError):
    """A BESPOKE_SMTP_URL that cannot be used (the message names the problem)."""


class SmtpTransient(Exception):
    """Sending failed in a way that may pass: retry later."""


class SmtpPermanent(Exception):
    """The server refused the message or the recipient for good (5xx)."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    implicit_tls: bool
    starttls: str  # auto | require | never (smtp:// only)
    username: str | None = None
    password: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    def __repr__(self) -> str:  # never the password
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{self.username}:***@" if self.username else ""
        return f"SmtpConfig({scheme}://{user}{self.host}:{self.port}, starttls={self.starttls})"

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_smtp_url(url: str) -> SmtpConfig:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise SmtpConfigError("BESPOKE_SMTP_URL must be smtp://[USER:PASS@]HOST[:PORT] or smtps://...")
    try:
        port = parts.port
    except ValueError:
        raise SmtpConfigError("BESPOKE_SMTP_URL has a port that is not a number from 0 to 65535") from None
    implicit = parts.scheme == "smtps"
    query = parse_qs(parts.query)
    unknown = sorted(set(query) - {"starttls", "timeout"})
    if unknown:
        raise SmtpConfigError(f"BESPOKE_SMTP_URL: unknown parameter {unknown[0][:40]!r} (known: starttls, timeout)")
    starttls = query.get("starttls", ["auto"])[-1].lower()
    if starttls not in STARTTLS_MODES:
        raise SmtpConfigError(f"BESPOKE_SMTP_URL: starttls must be one of {', '.join(STARTTLS_MODES)}")
    if implicit and "starttls" in query:
        raise SmtpConfigError("BESPOKE_SMTP_URL: smtps:// is TLS from the start; starttls is for smtp://")
    try:
        timeout = float(query.get("timeout", [DEFAULT_TIMEOUT])[-1])
    except ValueError:
        raise SmtpConfigError("BESPOKE_SMTP_URL: timeout must be a number of seconds") from None
    if not 0 < timeout <= 600:
        raise SmtpConfigError("BESPOKE_SMTP_URL: timeout must be more than 0 and at most 600 seconds")
    return SmtpConfig(
        host=parts.hostname, port=port or (465 if implicit else 587), implicit_tls=implicit,
        starttls="never" if implicit else starttls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        timeout=timeout,
    )


def send(config: SmtpConfig, message: EmailMessage, *, tls_context: ssl.SSLContext | None = None) -> None:
    """Hand `message` to the server for its To addresses; raises SmtpTransient or
    SmtpPermanent. Returns once the server has accepted it (250 after DATA)."""
    context = tls_context or ssl.create_default_context()
    try:
        if config.implicit_tls:
            server: smtplib.SMTP = smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout,
                                                    context=context)
        else:
            server = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
        with server:
            server.ehlo()
            encrypted = config.implicit_tls
            if not encrypted and config.starttls != "never":
                if server.has_extn("starttls"):
                    server.starttls(context=context)
                    server.ehlo()
                    encrypted = True
                elif config.starttls == "require":
                    raise SmtpTransient(f"{config.host}:{config.port} does not offer STARTTLS (starttls=require)")
            if config.username:
                if not encrypted and not config.loopback:
                    raise SmtpTransient(f"refusing to send the SMTP password to {config.host} unencrypted "
                                        "(the server offers no STARTTLS; use smtps://)")
                server.login(config.username, config.password or "")
            refused = server.send_message(message)
            if refused:  # some recipients refused, the rest accepted: we send to one at a time
                code, text = next(iter(refused.values()))
                raise SmtpPermanent(f"recipient refused: {code} {_text(text)}")
    except (SmtpTransient, SmtpPermanent):
        raise
    except smtplib.SMTPRecipientsRefused as err:
        code, text = next(iter(err.recipients.values()))
        raise (SmtpPermanent if code >= 500 else SmtpTransient)(f"recipient refused: {code} {_text(text)}") from None
    except smtplib.SMTPDataError as err:  # the message itself refused
        kind = SmtpPermanent if err.smtp_code >= 500 else SmtpTransient
        raise kind(f"message refused: {err.smtp_code} {_text(err.smtp_error)}") from None
    except smtplib.SMTPResponseException as err:  # login or sender refused, server closing, ...
        raise SmtpTransient(f"{err.smtp_code} {_text(err.smtp_error)}") from None
    except (smtplib.SMTPException, OSError, socket.timeout) as err:  # refused, reset, timed out, TLS failure
        raise SmtpTransient(f"{type(err).__name__}: {str(err)[:300]}") from None


def _text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return text.strip()[:300]
