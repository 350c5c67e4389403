from __future__ import annotations

from typing import Any

import pytest

from bespoke.rules import DecisionError, evaluate_table
from bespoke.rules.engine import test_condition as cond_holds
from bespoke.rules.errors import OverlapError

from .helpers import table_policy


def one_row(when: str, hit: str = "unique") -> Any:
    return table_policy(
        f"""
[tables.t]
hit_policy = "{hit}"
[[tables.t.rules]]
id = "HIT"
because = "matches"
when = {{ {when} }}
then = {{ x = 1 }}
[[tables.t.rules]]
id = "ELSE"
because = "fallback"
when = {{ other = true }}
then = {{ x = 2 }}
"""
    )


@pytest.mark.parametrize(
    ("when", "value", "expected"),
    [
        ('n = { eq = 5 }', 5, True),
        ('n = { eq = 5 }', 6, False),
        ('n = { ne = 5 }', 6, True),
        ('n = { ne = 5 }', 5, False),
        ('n = { lt = 5 }', 4, True),
        ('n = { lt = 5 }', 5, False),
        ('n = { le = 5 }', 5, True),
        ('n = { le = 5 }', 6, False),
        ('n = { gt = 5 }', 6, True),
        ('n = { gt = 5 }', 5, False),
        ('n = { ge = 5 }', 5, True),
        ('n = { ge = 5 }', 4, False),
        ('n = { in = [1, 3, 5] }', 3, True),
        ('n = { in = [1, 3, 5] }', 4, False),
        ('n = { between = [2, 4] }', 2, True),
        ('n = { between = [2, 4] }', 4, True),
        ('n = { between = [2, 4] }', 5, False),
        ('n = { between = [2, 4] }', 1, False),
        ('n = { gt = 1, lt = 4 }', 3, True),
        ('n = { gt = 1, lt = 4 }', 4, False),
        ('n = { eq = "a" }', "a", True),
        ('n = { ne = "a" }', "b", True),
        ('n = { in = ["a", "b"] }', "c", False),
        ('n = { eq = true }', True, True),
        ('n = { eq = true }', 1, False),
        ('n = { eq = 1 }', True, False),
        ('n = { ne = 1 }', True, True),
        ('n = { in = [1, 2] }', True, False),
        ('n = { in = [true] }', 1, False),
        ('n = { in = [true] }', True, True),
    ],
)
def test_each_operator_in_compiled_table_and_reference(when: str, value: Any, expected: bool) -> None:
    policy = one_row(when)
    result = evaluate_table(policy, "t", {"n": value, "other": not expected})
    assert (result.matched[0].rule.id == "HIT") is expected
    cond = policy.tables["t"].rules[0].when["n"]
    assert all(cond_holds(op, e, value) for op, e in cond.items()) is expected


def test_explanation_lists_each_condition_with_field_op_expected_actual_result() -> None:
    policy = one_row('n = { between = [2, 4] }, s = ["a", "b"]')
    result = evaluate_table(policy, "t", {"n": 3, "s": "b", "other": False})
    [(table, rule_id, because, conds, outputs)] = result.explain({"n": 3, "s": "b"})
    assert (table, rule_id, because, outputs) == ("t", "HIT", "matches", {"x": 1})
    assert [tuple(c) for c in conds] == [("n", "between", [2, 4], 3, True), ("s", "in", ["a", "b"], "b", True)]


UNIQUE = """
[tables.t]
[[tables.t.rules]]
id = "LOW"
because = "low"
when = { n = { le = 5 } }
then = { x = 1 }
[[tables.t.rules]]
id = "MID"
because = "mid"
when = { n = { between = [5, 10] } }
then = { x = 2 }
[[tables.t.rules]]
id = "HIGH"
because = "high"
when = { n = { gt = 10 } }
then = { x = 3 }
"""


def test_unique_hit_policy_single_match_and_overlap_error_names_both_rows() -> None:
    p = table_policy(UNIQUE)
    assert evaluate_table(p, "t", {"n": 7}).outputs == {"x": 2}
    with pytest.raises(OverlapError) as info:
        evaluate_table(p, "t", {"n": 5})
    assert "'LOW' and 'MID'" in str(info.value)
    assert info.value.rule_ids == ("LOW", "MID")


def test_first_hit_policy_takes_the_first_matching_row() -> None:
    p = table_policy(UNIQUE.replace("[tables.t]", '[tables.t]\nhit_policy = "first"'))
    r = evaluate_table(p, "t", {"n": 5})
    assert [row.rule.id for row in r.matched] == ["LOW"] and r.outputs == {"x": 1}


def test_collect_sum_adds_outputs_of_all_matching_rows_in_order() -> None:
    p = table_policy(
        """
[tables.t]
hit_policy = "collect"
aggregate = "sum"
[[tables.t.rules]]
id = "BASE"
because = "everyone pays the base"
then = { fee = 100, days = 1 }
[[tables.t.rules]]
id = "BIG"
because = "big orders pay more"
when = { price = { ge = 1000 } }
then = { fee = 50 }
[[tables.t.rules]]
id = "RUSH"
because = "rush orders take longer to check"
when = { rush = true }
then = { days = 2 }
"""
    )
    r = evaluate_table(p, "t", {"price": 5000, "rush": True})
    assert [row.rule.id for row in r.matched] == ["BASE", "BIG", "RUSH"]
    assert r.outputs == {"fee": 150, "days": 3}
    assert evaluate_table(p, "t", {"price": 10, "rush": False}).outputs == {"fee": 100, "days": 1}


def test_collect_requires_integer_outputs_and_aggregate() -> None:
    from bespoke.rules import PolicyError

    with pytest.raises(PolicyError, match=r"tables.t.rules\[0\].then.who: collect\(sum\) tables output integers only"):
        table_policy('[tables.t]\nhit_policy = "collect"\naggregate = "sum"\n[[tables.t.rules]]\nid = "A"\nbecause = "a"\nthen = { who = "buyer" }')
    with pytest.raises(PolicyError, match='needs aggregate = "sum"'):
        table_policy('[tables.t]\nhit_policy = "collect"\n[[tables.t.rules]]\nid = "A"\nbecause = "a"')


def test_no_match_and_missing_fact_are_decision_errors() -> None:
    p = table_policy(UNIQUE)
    with pytest.raises(DecisionError, match="no rule matches"):
        evaluate_table(table_policy(UNIQUE.replace("le = 5", "between = [0, 4]")), "t", {"n": -1})
    with pytest.raises(DecisionError, match="fact 'n' is missing"):
        evaluate_table(p, "t", {})
    with pytest.raises(DecisionError, match="no table 'zz'"):
        evaluate_table(p, "zz", {})


def test_bucketed_rows_without_discriminant_still_match() -> None:
    # `stage` is the discriminant; row ANY has no stage condition and must be seen for every stage.
    p = table_policy(
        """
[tables.t]
hit_policy = "first"
[[tables.t.rules]]
id = "A"
because = "a"
when = { stage = "x", n = { gt = 0 } }
[[tables.t.rules]]
id = "B"
because = "b"
when = { stage = ["x", "y"] }
[[tables.t.rules]]
id = "ANY"
because = "any"
"""
    )
    assert evaluate_table(p, "t", {"stage": "x", "n": 1}).matched[0].rule.id == "A"
    assert evaluate_table(p, "t", {"stage": "x", "n": 0}).matched[0].rule.id == "B"
    assert evaluate_table(p, "t", {"stage": "y", "n": 0}).matched[0].rule.id == "B"
    assert evaluate_table(p, "t", {"stage": "z", "n": 0}).matched[0].rule.id == "ANY"
