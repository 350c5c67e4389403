"""Wall time to load, compile and check a large policy, by number of table rows.

The policy is what a new user generates: a cancellation table with one row per
day late (plus a range row and a row per other party) and one golden case per row,
written as TOML. For each size it times, in this process:

* load: `load_policy` (size limits, TOML parse, pydantic validation);
* compile: `compile_table` (what the first decision in a worker's local activity
  pays, under a 10 s timeout);
* check: `check_policy` (golden cases, overlap analysis, unreached rows; what
  `bespoke policy check` and the pin-time gate run).

Linear work doubles when the rows double: the last column is each time over the
time for half the rows (about 2.0 linear, 4.0 quadratic).

Run: .venv/bin/python bench/policy_size_bench.py [--sizes 250,500,1000,2000]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from bespoke.rules import load_policy
from bespoke.rules.check import check_policy
from bespoke.rules.engine import compile_table

FACTS = (
    'stage = "in_production", cancelled_by = "buyer", reason = "buyer_request", price = 100000, '
    'currency = "CNY", payment_plan = "staged", escrow_balance = 30000, paid_total = 30000'
)


def policy_text(n: int) -> str:
    out = [f'name = "big"\nversion = "{n}"\n\n[tables.cancellation]']
    for i in range(n - 3):
        out.append(
            f'[[tables.cancellation.rules]]\nid = "D{i}"\nbecause = "{i} days late."\n'
            f'when = {{ cancelled_by = "buyer", days_late = {i} }}\nthen = {{ buyer_cost_share_bps = {i % 10001} }}'
        )
    out.append('[[tables.cancellation.rules]]\nid = "VERY_LATE"\nbecause = "Very late."\n'
               'when = { cancelled_by = "buyer", days_late = { ge = 100000 } }')
    for party in ("seller", "system"):
        out.append(f'[[tables.cancellation.rules]]\nid = "{party.upper()}"\nbecause = "The {party} cancels."\n'
                   f'when = {{ cancelled_by = "{party}" }}')
    for i in range(n - 3):
        out.append(f'[[cases]]\nname = "c{i}"\ndecision = "cancellation"\n'
                   f'given = {{ {FACTS}, days_late = {i} }}\nexpect_rules = ["D{i}"]')
    for rule, given in (("VERY_LATE", f"{FACTS}, days_late = 100000"),
                        ("SELLER", FACTS.replace('"buyer", reason = "buyer_request"', '"seller", reason = "seller_request"')),
                        ("SYSTEM", FACTS.replace('"buyer", reason = "buyer_request"', '"system", reason = "qc_rework_limit"')
                                        .replace("in_production", "quality_check"))):
        out.append(f'[[cases]]\nname = "{rule}"\ndecision = "cancellation"\ngiven = {{ {given} }}\nexpect_rules = ["{rule}"]')
    return "\n".join(out) + "\n"


def best_of(fn, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="250,500,1000,2000", help="comma-separated row counts")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"machine: {platform.machine()}, nproc {os.cpu_count()}, Python {platform.python_version()}")
    print(f"{'rows':>6} {'bytes':>9} {'load s':>8} {'compile s':>10} {'check s':>8} {'total s':>8} {'x half':>7}")
    previous: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"big{n}.toml"
            path.write_text(policy_text(n), encoding="utf-8")
            load = best_of(lambda: load_policy(path))  # noqa: B023
            policy = load_policy(path)
            table = policy.tables["cancellation"]
            comp = best_of(lambda: compile_table("cancellation", table))  # noqa: B023
            check = best_of(lambda: check_policy(policy), runs=1)  # noqa: B023
            report = check_policy(policy)
            assert report.ok, report.problems[:3]
            total = load + comp + check
            half = previous.get(n // 2)
            ratio = f"{total / half:7.2f}" if half else f"{'':>7}"
            print(f"{n:>6} {path.stat().st_size:>9,} {load:>8.3f} {comp:>10.3f} {check:>8.3f} {total:>8.3f} {ratio}")
            previous[n] = total
    return 0


if __name__ == "__main__":
    sys.exit(main())
