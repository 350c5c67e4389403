"""Fixtures for runtime tests: an isolated environment, free ports, embedded-server settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bespoke.settings import Settings, get_settings
from tests.processes import free_port  # noqa: F401 (re-exported to the runtime tests)




@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No BESPOKE_* / TEMPORAL_* variables from the developer's shell leak into a test."""
    for name in list(os.environ):
        if name.startswith(("BESPOKE_", "TEMPORAL_")):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


@pytest.fixture
def embedded_settings(tmp_path: Path) -> Settings:
    """Settings for an embedded server on free ports with its state under tmp_path."""
    return Settings(
        home=tmp_path / "home",
        temporal_address=f"127.0.0.1:{free_port()}",
        ui_port=free_port(),
    )
