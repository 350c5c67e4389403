"""Process configuration, read once from the environment.

Every setting has a ``BESPOKE_`` environment variable. The Temporal connection
settings also honour the plain ``TEMPORAL_*`` names the Temporal CLI and SDKs use, so
pointing bespoke at a production cluster or Temporal Cloud needs no bespoke-specific
knowledge; the ``BESPOKE_`` name wins when both are set.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(name: str) -> AliasChoices:
    # A validation alias replaces the prefixed name, so list both explicitly.
    return AliasChoices(f"BESPOKE_{name}", name)


class Settings(BaseSettings):
    """All of bespoke's configuration. Construct directly in tests; use
    :func:`get_settings` everywhere else."""

    model_config = SettingsConfigDict(
        env_prefix="BESPOKE_",
        extra="ignore",
        populate_by_name=True,
        frozen=True,
    )

    home: Path = Field(
        default=Path(".bespoke"),
        description="State directory: the embedded Temporal database, its log and the SQLite read model.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the read model, ledger and audit tables; default is a SQLite file in `home`.",
    )
    temporal_address: str = Field(
        default="localhost:7233",
        validation_alias=_env("TEMPORAL_ADDRESS"),
        description="host:port of the Temporal frontend (gRPC).",
    )
    temporal_namespace: str = Field(
        default="default",
        validation_alias=_env("TEMPORAL_NAMESPACE"),
        description="Temporal namespace the orders live in.",
    )
    temporal_tls_cert: Path | None = Field(
        default=None,
        validation_alias=_env("TEMPORAL_TLS_CERT"),
        description="Client certificate (PEM) for mTLS.",
    )
    temporal_tls_key: Path | None = Field(
        default=None,
        validation_alias=_env("TEMPORAL_TLS_KEY"),
        description="Client private key (PEM) for mTLS.",
    )
    temporal_tls_ca: Path | None = Field(
        default=None,
        validation_alias=_env("TEMPORAL_TLS_CA"),
        description="CA bundle (PEM) that signed the server certificate; system roots when unset.",
    )
    temporal_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=_env("TEMPORAL_API_KEY"),
        description="API key (Temporal Cloud); implies TLS.",
    )
    payload_key: SecretStr | None = Field(
        default=None,
        description="AES-GCM key(s) encrypting Temporal payloads: `[KEY_ID:]BASE64`, comma-separated, first encrypts.",
    )
    payload_key_file: Path | None = Field(
        default=None,
        description="File holding payload keys in the same format, one per line (added after `payload_key`).",
    )
    task_queue: str = Field(default="bespoke-orders", description="Task queue the workers poll.")
    ui_port: int = Field(default=8233, description="Port of the embedded server's Web UI.")
    policy_dir: Path | None = Field(
        default=None,
        description="Extra directory of policy TOML files, searched before the bundled ones.",
    )
    default_policy: str = Field(default="default", description="Policy new orders pin when none is given.")
    metrics_bind: str | None = Field(
        default=None,
        description="host:port where a worker serves Prometheus metrics (Temporal runtime telemetry); unset = off.",
    )
    worker_cache_size: int = Field(
        default=1000, ge=0, le=1_000_000,
        description="Orders a worker keeps in memory between tasks (Temporal's sticky cache); "
        "about 1 MiB each. Evicted orders are replayed from history on their next task.",
    )

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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use.

    Tests that change the environment call ``get_settings.cache_clear()``.
    """
    return Settings()
