"""Money helpers: integer minor units only, never floats.

Amounts typed by people ("1200.50") are parsed with `Decimal` and converted
exactly; splits use the largest-remainder method so the parts always add up to
the whole.
"""

from __future__ import annotations

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


class MoneyError(ValueError):
    """A malformed amount or an unknown currency."""


def check_currency(code: str) -> str:
    code = code.strip().upper()
    if code not in CURRENCY_EXPONENTS:
        known = ", ".join(sorted(CURRENCY_EXPONENTS))
        raise MoneyError(f"unknown currency {code!r} (known: {known})")
    return code


def parse_amount(text: str | int, currency: str) -> int:
    """Parse a major-unit amount ("1200.50") into minor units (120050)."""
    exponent = CURRENCY_EXPONENTS[check_currency(currency)]
    if isinstance(text, bool):
        raise MoneyError(f"amount must be a number, got {text!r}")
    if isinstance(text, int):
        return text * 10**exponent
    raw = str(text).strip().replace(",", "").replace("_", "")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise MoneyError(f"amount {text!r} is not a number") from None
    if not value.is_finite():
        raise MoneyError(f"amount {text!r} is not a finite number")
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
    """Split `total` in proportion to `weights` by largest remainder.

    The parts always sum to `total`; ties go to the earlier weight.
    """
    if total < 0:
        raise MoneyError("cannot allocate a negative total")
    weight_sum = sum(weights)
    if weight_sum <= 0 or any(w < 0 for w in weights):
        raise MoneyError("weights must be non-negative and not all zero")
    quotients = [(total * w) // weight_sum for w in weights]
    remainders = [(total * w) % weight_sum for w in weights]
    short = total - sum(quotients)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:short]:
        quotients[i] += 1
    return quotients
