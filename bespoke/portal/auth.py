"""Sign-in for people: passwords (argon2id), sessions, one-time invitations and
the failed-sign-in rate limit. Machines keep using the API's bearer tokens.

A principal is `role:name` as an actor is (`buyer:alice`). Nothing secret is
stored: passwords as argon2id hashes, session and invitation tokens as sha256 of
the random value the browser or the link holds.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bespoke.domain.models import Actor, Role
from bespoke.store.tables import ApiPrincipal, PortalInvitation, PortalPassword, PortalSession, PortalSignInFailure

SESSION_LIFETIME = timedelta(days=7)
INVITATION_LIFETIME = timedelta(days=7)
# Failed sign-ins allowed in the window, per account and per client address.
FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_CLIENT = 20
MIN_PASSWORD = 10
MAX_PASSWORD = 256
# People sign in; carriers, integrations and the system use API tokens.
PEOPLE_ROLES = (Role.BUYER, Role.SELLER, Role.OPS)

_hasher = PasswordHasher()  # argon2id, the library's RFC 9106 low-memory profile
# Verified against when the account has no password, so a missing account costs
# the same time as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AuthError(ValueError):
    """A sign-in, password or invitation refused; the message is safe to show."""


class RateLimited(AuthError):
    """Too many failed sign-ins; `retry_after` seconds until the next try."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Principal:
    role: str
    name: str

    @property
    def ref(self) -> str:
        return f"{self.role}:{self.name}"

    @property
    def actor(self) -> Actor:
        return Actor.parse(self.ref)


def parse_principal(text: str) -> Principal:
    """`role:name` for a person (buyer, seller or ops), validated as an actor is."""
    text = (text or "").strip()
    if len(text) > 250:
        raise AuthError("account: at most 250 characters")
    try:
        actor = Actor.parse(text)
    except ValueError as err:
        raise AuthError(f"account: {err}") from None
    if actor.role not in PEOPLE_ROLES or actor.for_party is not None:
        raise AuthError("account: a person signs in as buyer:NAME, seller:NAME or ops:NAME")
    return Principal(actor.role.value, actor.name)


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"password: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AuthError(f"password: at most {MAX_PASSWORD} characters")


def _live(s: Session, principal: Principal) -> bool:
    """The principal exists in the API's registry and is not revoked: a password
    belongs to a principal, and revoking it ends sign-in and sessions too."""
    row = s.get(ApiPrincipal, principal.ref)
    return row is not None and not row.revoked


def ensure_principal(engine: Engine, principal: Principal, *, created_by: str) -> bool:
    """Add the principal to the API's registry if it is missing (its API token is
    not shown: `bespoke principal rotate` issues one); True if added."""
    from bespoke.api import principals

    with Session(engine) as s:
        if s.get(ApiPrincipal, principal.ref) is not None:
            return False
    principals.add(engine, principal.ref, scopes=[], created_by=created_by)
    return True


def set_password(engine: Engine, principal: Principal, password: str, *, set_by: str) -> None:
    """Set (or replace) a principal's password; signs out its other sessions."""
    check_password_strength(password)
    digest = _hasher.hash(password)
    with Session(engine) as s:
        if not _live(s, principal):
            raise AuthError(f"no principal {principal.ref} (or it is revoked): add it with `bespoke principal add`")
        row = s.get(PortalPassword, principal.ref)
        if row is None:
            row = PortalPassword(principal=principal.ref, password_hash=digest, set_by=set_by, updated_at=_now())
        else:
            row.password_hash, row.set_by, row.updated_at = digest, set_by, _now()
        s.add(row)
        s.exec(delete(PortalSession).where(PortalSession.principal == principal.ref))
        s.commit()


def has_password(engine: Engine, principal: Principal) -> bool:
    with Session(engine) as s:
        return s.get(PortalPassword, principal.ref) is not None


def _failures(s: Session, key: str, since: datetime) -> tuple[int, datetime | None]:
    count, oldest = s.exec(
        select(func.count(), func.min(PortalSignInFailure.at)).where(
            PortalSignInFailure.key == key, PortalSignInFailure.at >= since
        )
    ).one()
    return int(count), _aware(oldest) if oldest is not None else None


def sign_in(engine: Engine, account: str, password: str, *, client: str) -> tuple[Principal, str, str]:
    """Check the password; returns (principal, session token, CSRF token).

    Refused with one message whatever was wrong (no account, no password, wrong
    password), and rate-limited: the account and the client address each get a
    few failures per window."""
    now = _now()
    since = now - FAILURE_WINDOW
    keys = [f"client:{client[:200]}"]
    try:
        principal: Principal | None = parse_principal(account)
        keys.insert(0, f"account:{principal.ref}")
    except AuthError:
        principal = None
    with Session(engine) as s:
        for key, limit in zip(keys, (MAX_FAILURES_PER_ACCOUNT, MAX_FAILURES_PER_CLIENT) if principal else
                              (MAX_FAILURES_PER_CLIENT,)):
            count, oldest = _failures(s, key, since)
            if count >= limit:
                wait = int(((oldest or now) + FAILURE_WINDOW - now).total_seconds()) + 1
                raise RateLimited(f"too many failed sign-ins; try again in {max(wait // 60, 1)} minute(s)", wait)
        row = s.get(PortalPassword, principal.ref) if principal and _live(s, principal) else None
        try:
            ok = _hasher.verify(row.password_hash if row else _DUMMY_HASH, password[:MAX_PASSWORD]) and row is not None
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or principal is None:
            for key in keys:
                s.add(PortalSignInFailure(key=key, at=now))
            s.exec(delete(PortalSignInFailure).where(PortalSignInFailure.at < now - 4 * FAILURE_WINDOW))
            s.commit()
            raise AuthError("wrong account or password")
        if _hasher.check_needs_rehash(row.password_hash):
            row.password_hash = _hasher.hash(password)
            s.add(row)
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        s.add(PortalSession(token_sha256=_sha(token), principal=principal.ref, csrf_token=csrf, created_at=now,
                            expires_at=now + SESSION_LIFETIME))
        s.exec(delete(PortalSession).where(PortalSession.expires_at < now))
        s.commit()
    return principal, token, csrf


def session_for(engine: Engine, token: str | None) -> tuple[Principal, str] | None:
    """The signed-in principal and its CSRF token, or None."""
    if not token or len(token) > 100:
        return None
    with Session(engine) as s:  # one query on every signed-in page: the session and its principal
        found = s.exec(select(PortalSession.principal, PortalSession.csrf_token, PortalSession.expires_at,
                              ApiPrincipal.revoked)
                       .join(ApiPrincipal, ApiPrincipal.principal == PortalSession.principal)
                       .where(PortalSession.token_sha256 == _sha(token))).first()
    if found is None:
        return None
    principal, csrf_token, expires_at, revoked = found
    if revoked or _aware(expires_at) <= _now():  # (a principal that is gone: no row joined)
        return None
    role, _, name = principal.partition(":")
    return Principal(role, name), csrf_token


def sign_out(engine: Engine, token: str | None) -> None:
    if not token or len(token) > 100:
        return
    with Session(engine) as s:
        s.exec(delete(PortalSession).where(PortalSession.token_sha256 == _sha(token)))
        s.commit()


def invite(engine: Engine, principal: Principal, *, created_by: str) -> str:
    """A one-time invitation token (valid INVITATION_LIFETIME) to choose a password."""
    token = secrets.token_urlsafe(32)
    now = _now()
    with Session(engine) as s:
        if not _live(s, principal):
            raise AuthError(f"no principal {principal.ref} (or it is revoked): add it with `bespoke principal add`")
        s.add(PortalInvitation(token_sha256=_sha(token), principal=principal.ref, created_by=created_by,
                               created_at=now, expires_at=now + INVITATION_LIFETIME))
        s.commit()
    return token


def invitation_for(engine: Engine, token: str) -> Principal:
    if not token or len(token) > 100:
        raise AuthError("this invitation link is not valid")
    with Session(engine) as s:
        row = s.get(PortalInvitation, _sha(token))
        if row is None or row.used_at is not None or _aware(row.expires_at) <= _now():
            raise AuthError("this invitation link is not valid, was used already, or has expired")
        role, _, name = row.principal.partition(":")
        return Principal(role, name)


def accept_invitation(engine: Engine, token: str, password: str) -> Principal:
    """Use the invitation once: set the password; the link stops working."""
    principal = invitation_for(engine, token)
    check_password_strength(password)
    with Session(engine) as s:
        row = s.get(PortalInvitation, _sha(token))
        if row is None or row.used_at is not None:  # raced with another use
            raise AuthError("this invitation link was used already")
        row.used_at = _now()
        by = row.created_by
        s.add(row)
        s.commit()
    set_password(engine, principal, password, set_by=f"invitation by {by}")
    return principal
