"""What people type into `bespoke`, parsed once for every command: the acting
party (`--as`), amounts, identifiers (carrier, tracking, references, evidence),
and update payloads. Each refusal is a `Rejected`: one line, exit 2.

Cheap to import (pydantic and the domain models load on first use), so commands
that take no such input start fast.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from bespoke.cli.errors import Rejected

if TYPE_CHECKING:
    from pydantic import BaseModel

    from bespoke.domain.models import Actor


def as_actor(value: str) -> Actor:
    """`--as ROLE:NAME`."""
    from bespoke.domain.models import Actor

    try:
        return Actor.parse(value)
    except ValueError as err:
        raise Rejected(str(err)) from None


def identifier(value: str, what: str, *, max_length: int = 200) -> str:
    """A carrier, tracking number, reference or evidence item: one visible token,
    checked as names are (no control, bidi or invisible characters)."""
    from bespoke.domain.models import clean_name

    try:
        return clean_name(value, what, max_length=max_length)
    except ValueError as err:
        raise Rejected(str(err)) from None


# An amount as people type it: ASCII digits, an optional sign, decimals after a
# point, commas only between groups of three. Python's Decimal also reads "1e3",
# "1_000", ".5", "١٢٣" and fullwidth "１２３"; parse_amount (domain/money.py) follows
# it, but from a person those are more likely a slip than an amount, and they read
# differently on the next screen. Text only: a JSON number in an import is exact.
_PLAIN_AMOUNT = re.compile(r"[+-]?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?")


def minor_units(value: Any, currency: str, *, positive: bool = True, what: str = "amount") -> int:
    """A major-unit amount ("1200.50") in minor units (120050); the CLI's one
    amount parser (options, import rows, bank transfers)."""
    from bespoke.domain.money import MoneyError, parse_amount

    try:
        if isinstance(value, str) and not _PLAIN_AMOUNT.fullmatch(value.strip()):
            parse_amount(value, currency)  # its own, more precise message if it refuses too
            raise MoneyError(f"amount {value!r} is not a plain decimal number: write ASCII digits with "
                             "an optional '.' and decimals (e.g. 1200.50; commas may group thousands)")
        minor = parse_amount(value, currency)
    except MoneyError as err:
        raise Rejected(str(err)) from None
    if positive and minor <= 0:
        raise Rejected(f"{what} must be positive, got {value}")
    return minor


def model(cls: type[BaseModel], **fields: Any) -> Any:
    """An update payload, or one line saying which field is wrong."""
    from pydantic import ValidationError

    try:
        return cls(**fields)
    except ValidationError as err:
        from bespoke.service import pydantic_message  # only on this error path: it imports the rules

        raise Rejected(pydantic_message(err)) from None
