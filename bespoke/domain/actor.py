"""Who acts on an order: roles, the acting party, and the base of every update
payload. Kept apart from `models` so the payload modules (`aftersales`,
`extensions`) build on it without importing `models`; `models` re-exports it all.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from bespoke.domain.text import clean_name
from bespoke.domain.vocabulary import Frozen

# Hard upper bound on any single amount, whatever the policy says: 10^13 minor
# units (100 billion in a 2-decimal currency) keeps every sum far inside int64.
MAX_AMOUNT = 10**13


class Role(StrEnum):
    BUYER = "buyer"
    SELLER = "seller"
    OPS = "ops"
    CARRIER = "carrier"
    SYSTEM = "system"
    # A machine acting for a carrier or a payment system (a carrier's delivery
    # feed, a bank's transfer notices): always for that party, never on its own.
    INTEGRATION = "integration"


class Actor(Frozen):
    role: Role
    name: str = Field(min_length=1, max_length=200)
    # The party this actor acts for: platform operations taking an action for a
    # buyer, seller or carrier (as the policy's `[on_behalf]` allows), or an
    # integration for the carrier or payment system it serves.
    for_party: Actor | None = None

    @classmethod
    def parse(cls, text: str) -> Actor:
        """Parse `ROLE:NAME` as given to `--as`."""
        role, sep, name = text.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"--as must be ROLE:NAME (e.g. buyer:alice), got {text!r}")
        try:
            parsed_role = Role(role.strip().lower())
        except ValueError:
            roles = ", ".join(r.value for r in Role)
            raise ValueError(f"unknown role {role!r} (roles: {roles})") from None
        return cls(role=parsed_role, name=clean_name(name, "--as name", max_length=200))

    def __str__(self) -> str:
        me = f"{self.role.value}:{self.name}"
        return me if self.for_party is None else f"{me} for {self.for_party}"

    @property
    def party(self) -> Actor:
        """Whose action this is: the party acted for, else the actor."""
        return self.for_party or self


class ActorInput(Frozen):
    actor: Actor
