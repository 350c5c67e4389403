"""Process configuration, read once from the environment.

Every setting has a ``BESPOKE_`` environment variable. The Temporal connection
settings also honour the plain ``TEMPORAL_*`` names the Temporal CLI and SDKs use, so
pointing bespoke at a production cluster or Temporal Cloud needs no bespoke-specific
knowledge; the ``BESPOKE_`` name wins when both are set.

Plain Python, not pydantic-settings (STYLE.md's "one Settings(BaseSettings)"): every
`bespoke` command reads the settings, and importing pydantic-settings alone took
~140-200 ms of a command meant to answer in well under 250 ms. The contract is the
same: one frozen object, constructor keywords win over the environment, the
environment over the defaults, a bad value is an error naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """A setting whose value cannot be used (named, with the variable to fix)."""


class Secret:
    """A value that is never printed (an API key, payload keys); duck-compatible
    with pydantic's SecretStr, which callers may also pass in."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _text(value: Any) -> str:
    return str(value)


def _path(value: Any) -> Path:
    return value if isinstance(value, Path) else Path(str(value))


def _secret(value: Any) -> Any:
    return value if hasattr(value, "get_secret_value") else Secret(str(value))


def _integer(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError(f"must be a whole number, got {value!r}")
        try:
            number = int(value.strip()) if isinstance(value, str) else value
        except ValueError:
            raise ValueError(f"must be a whole number, got {value!r}") from None
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}, got {number}")
        return number

    return parse


def _choice(*allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, got {value!r}")
        return text

    return parse


def _seconds_upto(limit: float) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"must be a number of seconds, got {value!r}") from None
        if not 0 < number <= limit:
            raise ValueError(f"must be more than 0 and at most {limit:g} seconds, got {value!r}")
        return number

    return parse


_seconds = _seconds_upto(86_400)


def _smtp_url(value: Any) -> Any:
    # Checked here so a typo fails at start-up; bespoke.mail.smtp parses it for use
    # (urllib only: nothing heavy is imported for a setting every command reads).
    from urllib.parse import urlsplit

    text = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("must be smtp://[USER:PASS@]HOST[:PORT] or smtps://..., got a URL without "
                         + ("a host" if parts.scheme in ("smtp", "smtps") else "that scheme"))
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError("has a port that is not a number from 0 to 65535") from None
    return value if hasattr(value, "get_secret_value") else Secret(text)


def _address(value: Any) -> str:
    text = str(value).strip()
    if len(text) > 300 or "@" not in text or any(c in text for c in "\r\n"):
        raise ValueError(f"must be an email address (name@example.com), got {text[:60]!r}")
    return text


def _public_url(value: Any) -> str:
    text = str(value).strip().rstrip("/")
    if not text.startswith(("https://", "http://")) or len(text) > 500:
        raise ValueError(f"must be an http(s):// URL, got {text[:60]!r}")
    return text




def _switch(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "on", "yes"):
        return True
    if text in ("0", "false", "off", "no"):
        return False
    raise ValueError(f"must be on or off (1/0, true/false), got {value!r}")


_DAYS_30 = 30 * 86_400.0


class _Field:
    # A plain class, not a dataclass: every command builds these at start-up.
    __slots__ = ("default", "description", "env_names", "name", "optional", "parse")

    def __init__(self, name: str, parse: Callable[[Any], Any], default: Any, description: str, *,
                 optional: bool = False, plain_env: bool = False) -> None:
        self.name, self.parse, self.default, self.description, self.optional = (
            name, parse, default, description, optional)
        prefixed = f"BESPOKE_{name.upper()}"
        # plain_env: also the unprefixed TEMPORAL_* name the Temporal tools use.
        self.env_names = (prefixed, name.upper()) if plain_env else (prefixed,)


FIELDS: tuple[_Field, ...] = (
    _Field("home", _path, Path(".bespoke"),
           "State directory: the embedded Temporal database, its log and the SQLite read model."),
    _Field("database_url", _text, None,
           "SQLAlchemy URL of the read model, ledger and audit tables; default is a SQLite file in `home`.",
           optional=True),
    _Field("temporal_address", _text, "localhost:7233", "host:port of the Temporal frontend (gRPC).",
           plain_env=True),
    _Field("temporal_namespace", _text, "default", "Temporal namespace the orders live in.", plain_env=True),
    _Field("temporal_tls_cert", _path, None, "Client certificate (PEM) for mTLS.", optional=True, plain_env=True),
    _Field("temporal_tls_key", _path, None, "Client private key (PEM) for mTLS.", optional=True, plain_env=True),
    _Field("temporal_tls_ca", _path, None,
           "CA bundle (PEM) that signed the server certificate; system roots when unset.",
           optional=True, plain_env=True),
    _Field("temporal_api_key", _secret, None, "API key (Temporal Cloud); implies TLS.", optional=True,
           plain_env=True),
    _Field("payload_key", _secret, None,
           "AES-GCM key(s) encrypting Temporal payloads: `[KEY_ID:]BASE64`, comma-separated, first encrypts.",
           optional=True),
    _Field("payload_key_file", _path, None,
           "File holding payload keys in the same format, one per line (added after `payload_key`).",
           optional=True),
    _Field("payload_plaintext", _choice("refuse", "accept"), "refuse",
           "With payload keys: `refuse` plaintext payloads (a client without the key), or `accept` them while "
           "orders started before encryption was turned on are still open."),
    _Field("task_queue", _text, "bespoke-orders", "Task queue the workers poll."),
    _Field("ui_port", _integer(0, 65535), 8233, "Port of the embedded server's Web UI."),
    _Field("api_bind", _text, "127.0.0.1:8000",
           "host:port the HTTP API (and the portal) listens on: `bespoke up` and `bespoke api`."),
    _Field("policy_dir", _path, None, "Extra directory of policy TOML files, searched before the bundled ones.",
           optional=True),
    _Field("default_policy", _text, "default", "Policy new orders pin when none is given."),
    _Field("metrics_bind", _text, None,
           "host:port where a worker serves Prometheus metrics (Temporal runtime telemetry); unset = off.",
           optional=True),
    _Field("worker_cache_size", _integer(0, 1_000_000), 1000,
           "Orders a worker keeps in memory between tasks (Temporal's sticky cache); about 1 MiB each. "
           "Evicted orders are replayed from history on their next task."),
    _Field("cli_timeout", _seconds, 30.0,
           "Seconds a `bespoke` command waits for an order to answer a query or an action before it "
           "gives up (exit 4): a worker that is down or stuck must not hang a script."),
    _Field("evidence_dir", _path, None,
           "Where uploaded evidence files are kept, content-addressed by sha256; default `evidence/` in `home`.",
           optional=True),
    _Field("smtp_url", _smtp_url, None,
           "SMTP server email goes out through: `smtp://[USER:PASS@]HOST[:PORT]` (STARTTLS when offered; "
           "`?starttls=require` or `never`) or `smtps://` (TLS from the start); unset = no email.",
           optional=True),
    _Field("email_from", _address, None,
           "Sender of the emails (`orders@example.com` or `Bespoke <orders@example.com>`); needed with `smtp_url`.",
           optional=True),
    _Field("public_url", _public_url, None,
           "Base URL people reach the portal at (`https://orders.example.com`); emails link to the order there.",
           optional=True),
    # Outbound webhooks (bespoke/notifications, README "Notifications").
    _Field("webhook_allow_http_loopback", _switch, False,
           "Let webhooks use plain http to a loopback host (tests and development only)."),
    _Field("webhook_poll", _seconds_upto(60), 0.5,
           "Seconds the webhook dispatcher waits between looks at the delivery queue when nothing is due."),
    _Field("webhook_timeout", _seconds_upto(60), 10.0, "Seconds a webhook endpoint has to answer one delivery."),
    _Field("webhook_retry_base", _seconds_upto(3600), 5.0,
           "First retry delay of a failed webhook delivery; each further retry waits twice as long."),
    _Field("webhook_retry_max", _seconds_upto(86_400), 3600.0, "Longest wait between two retries of a delivery."),
    _Field("webhook_give_up_after", _seconds_upto(_DAYS_30), 3 * 86_400.0,
           "Seconds after which a delivery still failing is given up (3 days)."),
    _Field("webhook_disable_after", _seconds_upto(_DAYS_30), 3 * 86_400.0,
           "A webhook failing without a success for this long is disabled when it gives a delivery up."),
    _Field("webhook_heartbeat", _seconds_upto(600), 30.0,
           "Heartbeat timeout of the delivery activity: how soon a killed worker's deliveries resume elsewhere."),
)
_BY_NAME = {f.name: f for f in FIELDS}


class Settings:
    """All of bespoke's configuration. Construct directly in tests; use
    :func:`get_settings` everywhere else."""

    __slots__ = ("_values",)

    home: Path
    database_url: str | None
    temporal_address: str
    temporal_namespace: str
    temporal_tls_cert: Path | None
    temporal_tls_key: Path | None
    temporal_tls_ca: Path | None
    temporal_api_key: Any  # Secret | pydantic.SecretStr | None
    payload_key: Any
    payload_key_file: Path | None
    payload_plaintext: str
    task_queue: str
    ui_port: int
    api_bind: str
    policy_dir: Path | None
    default_policy: str
    metrics_bind: str | None
    worker_cache_size: int
    cli_timeout: float
    evidence_dir: Path | None
    smtp_url: Any  # Secret | None (it may hold a password)
    email_from: str | None
    public_url: str | None
    webhook_allow_http_loopback: bool
    webhook_poll: float
    webhook_timeout: float
    webhook_retry_base: float
    webhook_retry_max: float
    webhook_give_up_after: float
    webhook_disable_after: float
    webhook_heartbeat: float

    def __init__(self, *, _environ: Mapping[str, str] | None = None, **given: Any) -> None:
        unknown = sorted(set(given) - set(_BY_NAME))
        if unknown:
            raise TypeError(f"unknown setting {unknown[0]!r}")
        environ = os.environ if _environ is None else _environ
        values: dict[str, Any] = {}
        for field in FIELDS:
            if field.name in given:
                values[field.name] = _parsed(field, given[field.name], field.name)
                continue
            for env in field.env_names:
                raw = environ.get(env)
                # An empty variable is an unset one (`FOO= bespoke ...` is how a shell unsets).
                if raw is not None and raw != "":
                    values[field.name] = _parsed(field, raw, env)
                    break
            else:
                values[field.name] = field.default
        object.__setattr__(self, "_values", values)

    def __getattr__(self, name: str) -> Any:
        try:
            return object.__getattribute__(self, "_values")[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Settings are frozen: use model_copy(update={...})")

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"Settings({shown})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Settings) and other._values == self._values

    def __hash__(self) -> int:
        return hash(tuple(self._values.items()))

    def model_copy(self, *, update: Mapping[str, Any] | None = None) -> Settings:
        """A copy with some fields replaced (the name pydantic models use)."""
        return Settings(_environ={}, **{**self._values, **(update or {})})

    @property
    def effective_database_url(self) -> str:
        """`database_url`, or the SQLite file under `home` when unset."""
        if self.database_url:
            return self.database_url
        # Absolute, so a worker started from another directory finds the same file.
        return f"sqlite:///{(self.home.expanduser().resolve() / 'bespoke.db').as_posix()}"

    @property
    def temporal_tls_enabled(self) -> bool:
        """Whether the Temporal connection uses TLS (any TLS file or an API key)."""
        return any(
            (self.temporal_tls_cert, self.temporal_tls_key, self.temporal_tls_ca, self.temporal_api_key)
        )


def _parsed(field: _Field, value: Any, source: str) -> Any:
    if value is None:
        if field.optional:
            return None
        raise SettingsError(f"{source}: {field.name} cannot be empty")
    try:
        return field.parse(value)
    except ValueError as err:
        where = source if source == field.name else f"{source} ({field.name})"
        raise SettingsError(f"{where} {err}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use.

    Tests that change the environment call ``get_settings.cache_clear()``.
    """
    return Settings()
