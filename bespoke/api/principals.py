"""API principals: who may call the HTTP API, and with which bearer token.

A principal is a party with a role and a name (`seller:acme`), as an actor is.
`add` and `rotate` return a new token once; the database keeps only its SHA-256.

Why a plain SHA-256 and not a password hash (argon2, bcrypt): the token is 256
bits from `secrets`, not something a person chose. A slow hash exists to make
guessing a low-entropy password from a leaked hash expensive; against 2**256
possible tokens a fast hash already makes guessing hopeless, and it lets every
request be checked with one indexed lookup instead of a deliberately slow hash
per request. A leaked `api_principals` table therefore gives no usable token.

Integration principals (a carrier's delivery feed, a bank's transfer notices)
also get a Standard Webhooks secret for their signed callbacks; it must be kept
as is (an HMAC is checked with the secret itself), so it is shown once like the
token and stored in the database, which only the service reads.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bespoke.domain.models import Actor, Role, clean_name
from bespoke.store.tables import ApiPrincipal

TOKEN_PREFIX = "bsk_"
TOKEN_BYTES = 32  # 256 bits
MAX_TOKEN_LENGTH = 100
API_ROLES = (Role.BUYER, Role.SELLER, Role.CARRIER, Role.OPS, Role.INTEGRATION)
# Scopes: `read` (GET only); an integration's `carrier:NAME` (acts for that carrier:
# deliveries and carrier events) or `bank` (bank-transfer callbacks).
_SCOPE = re.compile(r"^(read|bank|carrier:[A-Za-z0-9][A-Za-z0-9._-]{0,99})$")
MAX_SCOPES = 20
# An address email can go to: one mailbox, no display name, no spaces or header
# characters (the RFC's full grammar admits quoted forms no party needs here).
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
MAX_EMAIL = 254


class PrincipalError(ValueError):
    """A principal command refused; the message is safe to show."""


@dataclass(frozen=True)
class ApiCaller:
    """The authenticated principal of one request."""

    role: Role
    name: str
    scopes: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.role.value}:{self.name}"

    @property
    def actor(self) -> Actor:
        return Actor(role=self.role, name=self.name)

    @property
    def carriers(self) -> tuple[str, ...]:
        """The carriers an integration acts for (a carrier acts for itself)."""
        if self.role is Role.CARRIER:
            return (self.name,)
        if self.role is Role.INTEGRATION:
            return tuple(s.removeprefix("carrier:") for s in self.scopes if s.startswith("carrier:"))
        return ()

    @property
    def read_only(self) -> bool:
        return "read" in self.scopes


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def parse_principal(text: str) -> tuple[Role, str]:
    """`ROLE:NAME` for an API principal (buyer, seller, carrier, ops, integration)."""
    role_text, sep, name = (text or "").strip().partition(":")
    if not sep or not name.strip():
        raise PrincipalError(f"a principal is ROLE:NAME (e.g. seller:acme), got {text[:80]!r}")
    try:
        role = Role(role_text.strip().lower())
    except ValueError:
        role = None
    if role not in API_ROLES:
        raise PrincipalError(f"unknown role {role_text[:20]!r} (roles: {', '.join(r.value for r in API_ROLES)})")
    try:
        return role, clean_name(name, "name", max_length=200)
    except ValueError as err:
        raise PrincipalError(str(err)) from None


def parse_scopes(role: Role, scopes: list[str]) -> tuple[str, ...]:
    cleaned = tuple(dict.fromkeys(s.strip() for s in scopes if s.strip()))
    if len(cleaned) > MAX_SCOPES:
        raise PrincipalError(f"at most {MAX_SCOPES} scopes")
    for scope in cleaned:
        if not _SCOPE.match(scope):
            raise PrincipalError(f"unknown scope {scope[:60]!r} (scopes: read, bank, carrier:NAME)")
        if scope != "read" and role is not Role.INTEGRATION:
            raise PrincipalError(f"scope {scope} is for integration principals only")
    if role is Role.INTEGRATION and not any(s != "read" for s in cleaned):
        raise PrincipalError("an integration principal needs --scope carrier:NAME or --scope bank")
    return cleaned


def parse_email(text: str | None) -> str | None:
    """An email address (`alice@example.com`), or None for an empty one."""
    address = (text or "").strip()
    if not address:
        return None
    if len(address) > MAX_EMAIL or not _EMAIL.match(address):
        raise PrincipalError(f"not an email address (name@example.com): {address[:80]!r}")
    return address


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Issued:
    principal: str
    token: str
    webhook_secret: str | None


def add(engine: Engine, text: str, *, scopes: list[str], created_by: str, email: str | None = None) -> Issued:
    role, name = parse_principal(text)
    scope_tuple = parse_scopes(role, scopes)
    address = parse_email(email)
    ref = f"{role.value}:{name}"
    token = new_token()
    secret = new_webhook_secret() if role is Role.INTEGRATION else None
    with Session(engine) as s:
        if s.get(ApiPrincipal, ref) is not None:
            raise PrincipalError(f"principal {ref} already exists (rotate its token, or revoke it)")
        s.add(ApiPrincipal(principal=ref, role=role.value, name=name, token_sha256=token_sha256(token),
                           scopes=" ".join(scope_tuple), webhook_secret=secret, email=address,
                           created_by=created_by, created_at=_now()))
        s.commit()
    return Issued(ref, token, secret)


def rotate(engine: Engine, text: str, *, secret_too: bool = False) -> Issued:
    """A new token (and, asked, a new callback secret); the old token stops working at once."""
    role, name = parse_principal(text)
    ref = f"{role.value}:{name}"
    token = new_token()
    with Session(engine) as s:
        row = s.get(ApiPrincipal, ref)
        if row is None:
            raise PrincipalError(f"no principal {ref}")
        row.token_sha256, row.rotated_at, row.revoked, row.revoked_at = token_sha256(token), _now(), False, None
        if secret_too and row.role == Role.INTEGRATION.value:
            row.webhook_secret = new_webhook_secret()
        secret = row.webhook_secret if secret_too else None
        s.add(row)
        s.commit()
    return Issued(ref, token, secret)


def set_email(engine: Engine, text: str, email: str | None) -> str | None:
    """Set (or, with None or "", remove) the address the principal's email goes to."""
    role, name = parse_principal(text)
    address = parse_email(email)
    with Session(engine) as s:
        row = s.get(ApiPrincipal, f"{role.value}:{name}")
        if row is None:
            raise PrincipalError(f"no principal {role.value}:{name}")
        row.email = address
        s.add(row)
        s.commit()
    return address


def revoke(engine: Engine, text: str) -> None:
    role, name = parse_principal(text)
    with Session(engine) as s:
        row = s.get(ApiPrincipal, f"{role.value}:{name}")
        if row is None:
            raise PrincipalError(f"no principal {role.value}:{name}")
        row.revoked, row.revoked_at = True, _now()
        s.add(row)
        s.commit()


def list_all(engine: Engine, *, offset: int = 0, limit: int | None = None) -> list[ApiPrincipal]:
    """Principals by name (a page of them with `offset` and `limit`)."""
    with Session(engine) as s:
        query = select(ApiPrincipal).order_by(ApiPrincipal.principal).offset(offset)
        return list(s.exec(query.limit(limit) if limit is not None else query))


def count_all(engine: Engine) -> int:
    from sqlalchemy import func

    with Session(engine) as s:
        return int(s.exec(select(func.count()).select_from(ApiPrincipal)).one())


# One Core statement (compiled once, cached by SQLAlchemy): every request runs it,
# and an ORM session per request cost more than the lookup itself.
_BY_DIGEST = select(ApiPrincipal.token_sha256, ApiPrincipal.role, ApiPrincipal.name, ApiPrincipal.scopes,
                    ApiPrincipal.revoked).where(ApiPrincipal.token_sha256 == bindparam("digest"))


def authenticate(engine: Engine, token: str) -> ApiCaller | None:
    """The live principal holding `token`, or None (unknown, malformed or revoked).

    The lookup is by the token's hash, so timing reveals nothing about stored
    tokens; the final comparison is constant-time anyway. Nothing is cached:
    every request reads the row, so a revoke or rotate (from any process) refuses
    the very next request."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
        return None
    digest = token_sha256(token)
    with engine.connect() as connection:
        row = connection.execute(_BY_DIGEST, {"digest": digest}).first()
    if row is None or not hmac.compare_digest(row.token_sha256, digest) or row.revoked:
        return None
    return ApiCaller(Role(row.role), row.name, tuple(row.scopes.split()))


def webhook_secret(engine: Engine, caller: ApiCaller) -> str | None:
    with Session(engine) as s:
        row = s.get(ApiPrincipal, caller.ref)
        return row.webhook_secret if row is not None and not row.revoked else None
