"""ReconcileWorkflow's recorded histories replay on the current code: one from
before the books were compared with the order workflows (no `reconcile-workflows-v1`
marker: it must replay without the new activity), one after it, and one after
`reconcile-rows-v1` (the read model's open orders checked for a workflow)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from bespoke.workflows import WORKFLOWS
from bespoke.workflows.reconcile import ROWS_PATCH, WORKFLOWS_PATCH

HISTORIES = Path(__file__).parents[1] / "histories" / "reconcile"


def _activities(path: Path) -> list[str]:
    return [e["activityTaskScheduledEventAttributes"]["activityType"]["name"]
            for e in json.loads(path.read_text())["events"] if "activityTaskScheduledEventAttributes" in e]


def _patches(path: Path) -> set[str]:
    found = set()
    for event in json.loads(path.read_text())["events"]:
        marker = event.get("markerRecordedEventAttributes")
        if marker and marker["markerName"] == "core_patch":
            for payload in marker["details"]["patch-data"]["payloads"]:
                found.add(json.loads(base64.b64decode(payload["data"]))["id"])
    return found


@pytest.mark.parametrize("name", ["before_workflow_check", "with_workflow_check", "with_rows_check"])
async def test_reconcile_history_replays_on_current_code(name: str) -> None:
    path = HISTORIES / f"{name}.json"
    history = WorkflowHistory.from_json(name, path.read_text())
    assert history.events[0].workflow_execution_started_event_attributes.workflow_type.name == "ReconcileWorkflow"
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history)
    assert result.replay_failure is None
    assert history.events[-1].HasField("workflow_execution_completed_event_attributes")


def test_reconcile_histories_are_on_both_sides_of_the_patch() -> None:
    before, after = HISTORIES / "before_workflow_check.json", HISTORIES / "with_workflow_check.json"
    assert WORKFLOWS_PATCH not in _patches(before) and "reconcile_workflows" not in _activities(before)
    assert WORKFLOWS_PATCH in _patches(after) and ROWS_PATCH not in _patches(after)
    assert _activities(after) == ["reconcile_batch", "reconcile_workflows"]
    rows = HISTORIES / "with_rows_check.json"
    assert {WORKFLOWS_PATCH, ROWS_PATCH} <= _patches(rows)
    assert _activities(rows) == ["reconcile_batch", "reconcile_workflows", "reconcile_rows"]
