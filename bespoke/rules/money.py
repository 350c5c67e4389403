"""Integer money helpers.

All amounts are integer minor units. Two rounding rules are used, and only these:

* `apply_bps` — a rate in basis points (1/100 of a percent) applied to an amount,
  rounded half up (`(amount * bps + 5000) // 10000`). Used for fees, penalties and
  charges, which are single amounts.
* `allocate` — a whole split into parts by weights with the *largest remainder*
  method, so the parts always add up to the whole exactly (ties go to the earlier
  part, which keeps the result deterministic). Defined in `bespoke.domain.money`.
"""

from __future__ import annotations

from collections.abc import Sequence

# Written once, in the domain's money module (the workflow splits staged payments
# with it); re-exported here so the rules' two rounding rules sit side by side.
from bespoke.domain.money import allocate

BPS_DENOMINATOR = 10_000


def apply_bps(amount: int, bps: int) -> int:
    """`amount * bps / 10000`, rounded half up; both arguments non-negative ints."""
    if amount < 0 or bps < 0:
        raise ValueError("apply_bps takes non-negative amount and bps")
    return (amount * bps + BPS_DENOMINATOR // 2) // BPS_DENOMINATOR


def staged_amounts(price: int, ratios_percent: Sequence[int]) -> list[int]:
    """Instalments of a staged plan (e.g. 30/60/10 percent) that add up to `price` exactly."""
    if sum(ratios_percent) != 100:
        raise ValueError("staged ratios must sum to 100")
    return allocate(price, ratios_percent)


__all__ = ["BPS_DENOMINATOR", "allocate", "apply_bps", "staged_amounts"]
