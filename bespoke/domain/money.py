"""Money helpers: integer minor units only, never floats.

Amounts typed by people ("1200.50") are parsed with `Decimal` and converted
exactly; splits use the largest-remainder method so the parts always add up to
the whole.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

# ISO 4217 minor-unit exponents for the currencies we accept. A currency that is
# not listed here is unknown and rejected.
CURRENCY_EXPONENTS: dict[str, int] = {
    "CNY": 2,
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "HKD": 2,
    "JPY": 0,
}


# Amounts typed by people: at most this many characters, and below 10**this in
# major units (far above any limit a policy sets; the policy and MAX_AMOUNT decide).
_MAX_AMOUNT_TEXT = 64
_MAX_AMOUNT_DIGITS = 24
_THOUSANDS = re.compile(r"^[+-]?[0-9]{1,3}(,[0-9]{3})+(\.[0-9]*)?$")


class MoneyError(ValueError):
    """A malformed amount or an unknown currency."""


def check_currency(code: str) -> str:
    if not isinstance(code, str):
        raise MoneyError(f"currency must be a code like CNY, got {code!r}")
    code = code.strip().upper()
    if code not in CURRENCY_EXPONENTS:
        known = ", ".join(sorted(CURRENCY_EXPONENTS))
        shown = code if len(code) <= 20 else code[:20] + "..."
        raise MoneyError(f"unknown currency {shown!r} (known: {known})")
    return code


def parse_amount(text: str | int, currency: str) -> int:
    """Parse a major-unit amount ("1200.50") into minor units (120050)."""
    exponent = CURRENCY_EXPONENTS[check_currency(currency)]
    if isinstance(text, bool):
        raise MoneyError(f"amount must be a number, got {text!r}")
    if isinstance(text, int):
        return text * 10**exponent
    if not isinstance(text, (str, Decimal, float)):
        raise MoneyError(f"amount must be a number, got {text!r}")
    raw = str(text).strip()
    if len(raw) > _MAX_AMOUNT_TEXT:
        raise MoneyError(f"amount {raw[:20]!r}... is too long to be an amount")
    if "," in raw:
        # Commas only group thousands ("1,234.50"): "12,50" (a decimal comma) must
        # not silently become 1250.
        if not _THOUSANDS.match(raw):
            raise MoneyError(f"amount {text!r}: commas may only group thousands (1,234.50); use '.' for decimals")
        raw = raw.replace(",", "")
    raw = raw.replace("_", "")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise MoneyError(f"amount {text!r} is not a number") from None
    if not value.is_finite():
        raise MoneyError(f"amount {text!r} is not a finite number")
    if value and value.adjusted() >= _MAX_AMOUNT_DIGITS:
        # Before int(): "1e100000" would otherwise build a 100,000-digit integer.
        raise MoneyError(f"amount {text!r} is too large")
    minor = value.scaleb(exponent)
    if minor != minor.to_integral_value():
        raise MoneyError(
            f"amount {text!r} has more than {exponent} decimal places for {currency}"
        )
    return int(minor)


def format_amount(minor: int, currency: str) -> str:
    """Render minor units for people: 120050, "CNY" -> "1,200.50 CNY"."""
    exponent = CURRENCY_EXPONENTS.get(currency, 2)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**exponent)
    text = f"{whole:,}" if exponent == 0 else f"{whole:,}.{frac:0{exponent}d}"
    return f"{sign}{text} {currency}"


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` in proportion to integer `weights` by largest remainder.

    The parts always sum to `total`; on equal remainders the earlier part gets the
    extra unit, so the result is deterministic. The one implementation: rules
    (`bespoke.rules.money`) and the workflow both use it.
    """
    if total < 0:
        raise MoneyError("cannot allocate a negative total")
    if not weights or any(w < 0 for w in weights):
        raise MoneyError("weights must be a non-empty list of non-negative integers")
    weight_sum = sum(weights)
    if weight_sum == 0:
        raise MoneyError("weights must not all be zero")
    quotients = [(total * w) // weight_sum for w in weights]
    remainders = [(total * w) % weight_sum for w in weights]
    short = total - sum(quotients)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:short]:
        quotients[i] += 1
    return quotients
