"""Compiling and checking a table costs work linear in its rows.

2,000 rows once took 18 s to compile and check (quadratic: every bucket scanned
every row, and the overlap analysis compared every pair of rows), past the 10 s
local-activity timeout. Work is counted, not timed: the Python and C calls made
for n rows and for 4n rows, in the same process (linear: about 4x; quadratic:
about 16x). Wall times are in `bench/policy_size_bench.py`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from bespoke.rules import CancellationFacts, Policy, decide_cancellation
from bespoke.rules.check import candidate_pairs, check_policy
from bespoke.rules.engine import compile_table, evaluate_compiled
from bespoke.rules.limits import MAX_ROWS_PER_TABLE

from .helpers import AS_OF

SMALL, LARGE = 300, 1_200


def big_policy(n: int) -> Policy:
    """A cancellation table keyed by days late (one row per day), one row for a range
    of days, and rows for the other parties that do not test days late at all."""
    rows: list[dict[str, Any]] = [
        {"id": f"D{i}", "because": f"{i} days late.", "when": {"cancelled_by": "buyer", "days_late": i},
         "then": {"buyer_cost_share_bps": i % 10_001}}
        for i in range(n - 3)
    ]  # fmt: skip
    rows += [
        {"id": "VERY_LATE", "because": "Very late.", "when": {"cancelled_by": "buyer", "days_late": {"ge": 100_000}}},
        {"id": "SELLER", "because": "The seller cancels.", "when": {"cancelled_by": "seller"}},
        {"id": "SYSTEM", "because": "The platform cancels.", "when": {"cancelled_by": "system"}},
    ]
    return Policy.model_validate({"name": "big", "version": str(n), "tables": {"cancellation": {"rules": rows}}})


def day_table(n: int) -> Policy:
    """Rows keyed by the day alone (n - 1 buckets), and one range row that every
    bucket must also consider."""
    rows: list[dict[str, Any]] = [{"id": f"D{i}", "because": "b", "when": {"days_late": i}} for i in range(n - 1)]
    rows.append({"id": "VERY_LATE", "because": "b", "when": {"days_late": {"ge": 100_000}}})
    return Policy.model_validate({"name": "days", "version": str(n), "tables": {"t": {"rules": rows}}})


def work(fn: Callable[[], object]) -> int:
    """Calls (Python and C) made by `fn`: a deterministic count of its work."""
    count = 0

    def profile(_frame: Any, event: str, _arg: Any) -> None:
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count


def test_compiling_a_table_is_linear_in_its_rows() -> None:
    for build, table in ((day_table, "t"), (big_policy, "cancellation")):
        small, large = build(SMALL).tables[table], build(LARGE).tables[table]
        ratio = work(lambda: compile_table(table, large)) / work(lambda: compile_table(table, small))  # noqa: B023
        assert ratio < 6, f"{build.__name__}: compile work grew {ratio:.1f}x for 4x the rows"
        assert compile_table(table, large).size == LARGE  # each row generated once


def test_checking_a_policy_is_linear_in_its_rows() -> None:
    for build in (day_table, big_policy):
        small, large = build(SMALL), build(LARGE)
        ratio = work(lambda: check_policy(large)) / work(lambda: check_policy(small))  # noqa: B023
        assert ratio < 6, f"{build.__name__}: check work grew {ratio:.1f}x for 4x the rows"
        assert check_policy(large).overlaps == []
    # Who cancels and the day tell big_policy's rows apart; only the range row (index
    # LARGE - 3) is compared with each row keyed by a day, and found disjoint.
    rules = big_policy(LARGE).tables["cancellation"].rules
    assert candidate_pairs(rules) == [(i, LARGE - 3) for i in range(LARGE - 3)]


def test_a_table_at_the_row_limit_compiles_to_one_test_per_row_and_decides() -> None:
    policy = big_policy(MAX_ROWS_PER_TABLE)
    ct = compile_table("cancellation", policy.tables["cancellation"])
    assert ct.size == MAX_ROWS_PER_TABLE
    for days in (0, 2_500, MAX_ROWS_PER_TABLE - 4):
        facts = {"cancelled_by": "buyer", "days_late": days}
        assert [r.rule.id for r in evaluate_compiled(ct, facts).matched] == [f"D{days}"]
    assert [r.rule.id for r in evaluate_compiled(ct, {"cancelled_by": "seller", "days_late": 7}).matched] == ["SELLER"]
    d = decide_cancellation(policy, CancellationFacts(
        stage="in_production", cancelled_by="buyer", reason="buyer_request", price=100_000, currency="CNY",
        payment_plan="staged", escrow_balance=30_000, paid_total=30_000, days_late=4_321, as_of=AS_OF,
    ), decision_id="big")  # fmt: skip
    assert [m.rule_id for m in d.explanation.matched] == ["D4321"]
