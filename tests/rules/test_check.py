from __future__ import annotations

from bespoke.rules.check import check_policy

from .helpers import default_policy, table_policy


def test_default_policy_golden_cases_all_pass_with_no_overlaps_or_unreached_rows() -> None:
    report = check_policy(default_policy())
    assert report.ok, report.problems
    assert len(report.cases) >= 25 and all(c.ok for c in report.cases)
    assert report.overlaps == [] and report.unreached == []


def test_default_policy_covers_every_cancellation_stage() -> None:
    p = default_policy()
    stages = {c.given["stage"] for c in p.cases if c.decision == "cancellation"}
    assert stages == {"awaiting_acceptance", "awaiting_deposit", "in_production", "quality_check", "awaiting_balance", "shipped"}


OVERLAP = """
[tables.t]
[[tables.t.rules]]
id = "SMALL"
because = "small"
when = { n = { le = 10 }, kind = "a" }
then = { x = 1 }
[[tables.t.rules]]
id = "MIDDLE"
because = "middle"
when = { n = { between = [10, 20] } }
then = { x = 2 }
[[tables.t.rules]]
id = "OTHER_KIND"
because = "other kind"
when = { kind = { ne = "a" }, n = { gt = 20 } }
then = { x = 3 }
"""


def test_overlapping_unique_rows_found_by_analysis_name_both_rows_with_an_example() -> None:
    report = check_policy(table_policy(OVERLAP))
    assert not report.ok
    [ov] = report.overlaps
    assert (ov.rule_a, ov.rule_b, ov.found_by) == ("SMALL", "MIDDLE", "analysis")
    assert ov.example == {"n": 10}
    assert any("rules 'SMALL' and 'MIDDLE' overlap" in p for p in report.problems)


def test_overlap_hit_by_a_golden_case_is_reported_as_failing_case() -> None:
    cases = """
[[cases]]
name = "boundary"
table = "t"
given = { n = 10, kind = "a" }
expect_rules = ["SMALL"]
"""
    report = check_policy(table_policy(OVERLAP, extra=cases))
    assert [(o.rule_a, o.rule_b, o.found_by) for o in report.overlaps] == [("SMALL", "MIDDLE", "case")]
    assert not report.cases[0].ok
    assert "'SMALL' and 'MIDDLE' both match" in report.cases[0].problems[0]


def test_disjoint_rows_are_not_overlaps() -> None:
    table = OVERLAP.replace("between = [10, 20]", "between = [11, 20]")
    cases = "".join(
        f'\n[[cases]]\nname = "{n}"\ntable = "t"\ngiven = {{ n = {n}, kind = "{k}" }}\nexpect_rules = ["{r}"]\n'
        for n, k, r in ((5, "a", "SMALL"), (15, "b", "MIDDLE"), (30, "b", "OTHER_KIND"))
    )
    report = check_policy(table_policy(table, extra=cases))
    assert report.ok, report.problems


def test_rows_no_case_reaches_are_reported() -> None:
    table = OVERLAP.replace("between = [10, 20]", "between = [11, 20]")
    cases = '\n[[cases]]\nname = "one"\ntable = "t"\ngiven = { n = 5, kind = "a" }\nexpect = { x = 1 }\n'
    report = check_policy(table_policy(table, extra=cases))
    assert [u.rule_id for u in report.unreached] == ["MIDDLE", "OTHER_KIND"]
    assert "tables.t: rule 'MIDDLE' is not reached by any golden case" in report.problems


def test_wrong_expectations_fail_with_one_line_each() -> None:
    table = OVERLAP.replace("between = [10, 20]", "between = [11, 20]")
    cases = '\n[[cases]]\nname = "wrong"\ntable = "t"\ngiven = { n = 5, kind = "a" }\nexpect_rules = ["MIDDLE"]\nexpect = { x = 9 }\n'
    report = check_policy(table_policy(table, extra=cases))
    assert report.cases[0].problems == [
        "case 'wrong' (cases[0]): expected rules MIDDLE, matched SMALL",
        "case 'wrong' (cases[0]): expected x = 9, got 1",
    ]


def test_enumerated_facts_use_their_domain_for_overlap_analysis() -> None:
    # stage ne shipped vs stage in [...] without shipped: overlap on a real stage name.
    from bespoke.rules import load_policy_text

    text = """
name = "x"
version = "1"
[tables.cancellation]
[[tables.cancellation.rules]]
id = "NOT_SHIPPED"
because = "a"
when = { stage = { ne = "shipped" } }
[[tables.cancellation.rules]]
id = "EARLY"
because = "b"
when = { stage = ["awaiting_acceptance", "awaiting_deposit"], past_grace = false }
"""
    report = check_policy(load_policy_text(text, "x.toml"))
    [ov] = report.overlaps
    assert ov.example == {"stage": "awaiting_acceptance"}


def test_default_policy_has_golden_cases_for_every_after_sales_decision_and_row() -> None:
    p = default_policy()
    kinds = {c.decision for c in p.cases}
    assert {"return_terms", "refund", "dispute_default"} <= kinds
    report = check_policy(p)
    reached = {(t, r) for c in report.cases for r in c.got_rules for t in p.tables if any(x.id == r for x in p.tables[t].rules)}
    for table in ("return_terms", "return_shipping", "repair", "refund", "dispute_default"):
        assert {(table, r.id) for r in p.tables[table].rules} <= reached, table
