"""Helpers for tests that run real `bespoke` subprocesses against a server."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bespoke_command() -> list[str]:
    """The installed console script next to this interpreter, else the module."""
    script = shutil.which("bespoke", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "bespoke.cli.app"]


def clean_env(**extra: str) -> dict[str, str]:
    """The developer's BESPOKE_*/TEMPORAL_* settings never leak into a test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BESPOKE_", "TEMPORAL_"))}
    env["COLUMNS"] = "200"  # rich wraps human output at the terminal width
    env.update(extra)
    return env
