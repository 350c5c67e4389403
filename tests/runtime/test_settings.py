from pathlib import Path

import pytest
from temporalio.service import TLSConfig

from bespoke.runtime.client import tls_config
from bespoke.settings import Settings, get_settings


def test_defaults_point_at_local_embedded_server(clean_env: pytest.MonkeyPatch) -> None:
    s = Settings()
    assert s.home == Path(".bespoke")
    assert s.temporal_address == "localhost:7233"
    assert s.temporal_namespace == "default"
    assert s.task_queue == "bespoke-orders"
    assert s.ui_port == 8233
    assert s.default_policy == "default"
    assert s.policy_dir is None
    assert s.worker_cache_size == 1000
    assert not s.temporal_tls_enabled


def test_database_url_defaults_to_sqlite_file_under_home(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = Settings(home=tmp_path / "state")
    assert s.database_url is None
    assert s.effective_database_url == f"sqlite:///{(tmp_path / 'state' / 'bespoke.db').as_posix()}"


def test_database_url_env_overrides_sqlite(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("BESPOKE_DATABASE_URL", "postgresql+psycopg://u@localhost/bespoke")
    assert Settings().effective_database_url == "postgresql+psycopg://u@localhost/bespoke"


def test_bespoke_prefixed_variables_are_read(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("BESPOKE_HOME", str(tmp_path))
    clean_env.setenv("BESPOKE_TASK_QUEUE", "q1")
    clean_env.setenv("BESPOKE_UI_PORT", "9999")
    clean_env.setenv("BESPOKE_POLICY_DIR", str(tmp_path / "policies"))
    s = Settings()
    assert (s.home, s.task_queue, s.ui_port, s.policy_dir) == (tmp_path, "q1", 9999, tmp_path / "policies")


def test_plain_temporal_variables_are_honoured(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TEMPORAL_ADDRESS", "temporal.example.com:7233")
    clean_env.setenv("TEMPORAL_NAMESPACE", "orders.acct")
    clean_env.setenv("TEMPORAL_TLS_CERT", "/certs/client.pem")
    s = Settings()
    assert s.temporal_address == "temporal.example.com:7233"
    assert s.temporal_namespace == "orders.acct"
    assert s.temporal_tls_cert == Path("/certs/client.pem")


def test_bespoke_prefixed_temporal_variable_wins_over_plain(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TEMPORAL_ADDRESS", "plain:7233")
    clean_env.setenv("BESPOKE_TEMPORAL_ADDRESS", "prefixed:7233")
    assert Settings().temporal_address == "prefixed:7233"


def test_field_names_work_as_constructor_arguments(clean_env: pytest.MonkeyPatch) -> None:
    assert Settings(temporal_address="h:1", temporal_namespace="n").temporal_address == "h:1"


def test_api_key_implies_tls_and_is_not_printed(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TEMPORAL_API_KEY", "sekrit")
    s = Settings()
    assert s.temporal_tls_enabled
    assert tls_config(s) is True
    assert "sekrit" not in repr(s)


def test_tls_files_build_an_mtls_config(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("cert", "key", "ca"):
        (tmp_path / f"{name}.pem").write_bytes(name.encode())
    s = Settings(
        temporal_tls_cert=tmp_path / "cert.pem",
        temporal_tls_key=tmp_path / "key.pem",
        temporal_tls_ca=tmp_path / "ca.pem",
    )
    config = tls_config(s)
    assert isinstance(config, TLSConfig)
    assert (config.client_cert, config.client_private_key, config.server_root_ca_cert) == (b"cert", b"key", b"ca")


def test_tls_cert_without_key_is_an_error(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_bytes(b"cert")
    with pytest.raises(ValueError, match="together"):
        tls_config(Settings(temporal_tls_cert=tmp_path / "cert.pem"))


def test_get_settings_is_cached_until_cleared(clean_env: pytest.MonkeyPatch) -> None:
    first = get_settings()
    assert get_settings() is first
    clean_env.setenv("BESPOKE_TASK_QUEUE", "other")
    assert get_settings().task_queue == "bespoke-orders"
    get_settings.cache_clear()
    assert get_settings().task_queue == "other"


def test_worker_cache_size_is_read_and_checked(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("BESPOKE_WORKER_CACHE_SIZE", "250")
    assert Settings().worker_cache_size == 250
    clean_env.setenv("BESPOKE_WORKER_CACHE_SIZE", "-1")
    with pytest.raises(ValueError, match="worker_cache_size"):
        Settings()


def test_email_is_off_by_default_and_the_smtp_url_is_checked_and_never_printed(clean_env: pytest.MonkeyPatch) -> None:
    s = Settings()
    assert (s.smtp_url, s.email_from, s.public_url) == (None, None, None)
    clean_env.setenv("BESPOKE_SMTP_URL", "smtp://mailer:hunter2@mail.example.com:587")
    clean_env.setenv("BESPOKE_EMAIL_FROM", "Bespoke <orders@example.com>")
    clean_env.setenv("BESPOKE_PUBLIC_URL", "https://orders.example.com/")
    s = Settings()
    assert s.smtp_url.get_secret_value() == "smtp://mailer:hunter2@mail.example.com:587"
    assert "hunter2" not in repr(s)
    assert (s.email_from, s.public_url) == ("Bespoke <orders@example.com>", "https://orders.example.com")
    for name, value, match in (("BESPOKE_SMTP_URL", "mail.example.com:25", "smtp_url"),
                               ("BESPOKE_SMTP_URL", "smtp://h:port", "port"),
                               ("BESPOKE_EMAIL_FROM", "orders", "email_from"),
                               ("BESPOKE_PUBLIC_URL", "orders.example.com", "public_url")):
        with clean_env.context() as env:
            env.setenv(name, value)
            with pytest.raises(ValueError, match=match):
                Settings()
