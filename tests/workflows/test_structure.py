"""Rules of the workflow code that nothing else enforces."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import pytest

import bespoke.workflows
from bespoke.domain.state import CASE_TRANSITIONS, DISPUTABLE, Case, CaseState, IllegalCaseTransition

WORKFLOWS = Path(bespoke.workflows.__file__).parent


def _raw_waits(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == "wait_condition"]


@pytest.mark.parametrize("path", sorted(p for p in WORKFLOWS.glob("*.py") if p.name != "loop.py"),
                         ids=lambda p: p.name)
def test_only_the_run_loop_calls_wait_condition(path: Path) -> None:
    """A plain workflow.wait_condition in the lifecycle would wait without telling
    the loop, so update handlers could return before the lifecycle reacted, the
    batched sync could run too early, and continue-as-new could not happen there.
    Waits go through Loop.block (or Deadlines.until_due, which uses it)."""
    assert _raw_waits(path) == [], f"{path.name}: use Loop.block, not workflow.wait_condition"


def test_the_structure_check_sees_a_raw_wait(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("from temporalio import workflow\nasync def f():\n    await workflow.wait_condition(lambda: True)\n")
    assert _raw_waits(sneaky) == [3]


def _case(state: CaseState) -> Case:
    return Case(number=1, opened_by="buyer:alice", reason="defect", remedy="refund",
                opened_at=datetime(2026, 1, 1, tzinfo=UTC), state=state)


def test_a_case_moves_only_along_its_transitions() -> None:
    for state, allowed in CASE_TRANSITIONS.items():
        for target in CaseState:
            case = _case(state)
            if target in allowed:
                case.move(target)
                assert case.state is target
            else:
                with pytest.raises(IllegalCaseTransition):
                    case.move(target)
                assert case.state is state


def test_every_state_is_reachable_from_a_request_and_terminal_states_lead_nowhere() -> None:
    seen, todo = {CaseState.REQUESTED}, [CaseState.REQUESTED]
    while todo:
        for nxt in CASE_TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(CaseState)
    assert {s for s, nxt in CASE_TRANSITIONS.items() if not nxt} == {
        CaseState.PARTIAL_ACCEPTED, CaseState.RESHIPPED, CaseState.DISPUTED}
    assert CaseState.REQUESTED not in DISPUTABLE and CaseState.REJECTED in DISPUTABLE
