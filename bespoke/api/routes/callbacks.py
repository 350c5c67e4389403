"""Signed inbound callbacks (filled in by the callbacks change)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/callbacks", tags=["callbacks"])
