"""Dedicated collection accounts: each buyer gets a stable virtual account
number, so an incoming bank transfer can be matched to the buyer's open order."""

from __future__ import annotations

import hashlib


def virtual_account_for(buyer: str) -> str:
    """A stable 18-character virtual account number for `buyer`."""
    digest = int(hashlib.sha256(buyer.encode("utf-8")).hexdigest(), 16)
    return f"VA{digest % 10**16:016d}"
