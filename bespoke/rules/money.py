"""Integer money helpers.

All amounts are integer minor units. Two rounding rules are used, and only these:

* `apply_bps` — a rate in basis points (1/100 of a percent) applied to an amount,
  rounded half up (`(amount * bps + 5000) // 10000`). Used for fees, penalties and
  charges, which are single amounts.
* `allocate` — a whole split into parts by weights with the *largest remainder*
  method, so the parts always add up to the whole exactly (ties go to the earlier
  part, which keeps the result deterministic).
"""

from __future__ import annotations

from collections.abc import Sequence

BPS_DENOMINATOR = 10_000


def apply_bps(amount: int, bps: int) -> int:
    """`amount * bps / 10000`, rounded half up; both arguments non-negative ints."""
    if amount < 0 or bps < 0:
        raise ValueError("apply_bps takes non-negative amount and bps")
    return (amount * bps + BPS_DENOMINATOR // 2) // BPS_DENOMINATOR


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` by integer `weights` with largest remainder; `sum(result) == total`."""
    if total < 0:
        raise ValueError("allocate takes a non-negative total")
    if not weights or any(w < 0 for w in weights):
        raise ValueError("allocate takes a non-empty list of non-negative weights")
    wsum = sum(weights)
    if wsum == 0:
        raise ValueError("allocate needs at least one positive weight")
    parts = [total * w // wsum for w in weights]
    remainders = [total * w % wsum for w in weights]
    short = total - sum(parts)
    # Largest remainder first; on ties the earlier part wins (stable, deterministic).
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:short]:
        parts[i] += 1
    return parts


def staged_amounts(price: int, ratios_percent: Sequence[int]) -> list[int]:
    """Instalments of a staged plan (e.g. 30/60/10 percent) that add up to `price` exactly."""
    if sum(ratios_percent) != 100:
        raise ValueError("staged ratios must sum to 100")
    return allocate(price, ratios_percent)
