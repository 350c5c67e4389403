"""Replay safety: every recorded history in tests/histories/ must replay against
the current workflow code without a non-determinism error.

A change to OrderWorkflow that running orders would replay differently (a new
activity, timer or update path before an existing one) must be guarded with
`workflow.patched(...)`; this test is what catches a change that is not. The
histories are recorded by `python -m tests.histories.record` and are never
re-recorded to make this test pass.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from bespoke.worker import workflow_runner
from bespoke.workflows import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_cover_each_payment_plan_a_cancellation_a_return_a_dispute_and_an_override() -> None:
    names = {p.stem for p in HISTORIES}
    for expected in ("full_prepayment", "staged_20_80", "staged_30_60_10_retention", "credit_repaid",
                     "cash_on_delivery", "collection_account_overpaid", "buyer_cancels_in_production",
                     "return_refunded", "dispute_arbitrated", "deadlines_overridden_by_ops"):
        assert expected in names


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays_on_current_code(path: Path) -> None:
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
    started = history.events[0].workflow_execution_started_event_attributes
    assert started.workflow_type.name == "OrderWorkflow"
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    # raise_on_replay_failure (the default) turns a non-determinism error into a failure.
    result = await replayer.replay_workflow(history)
    assert result.replay_failure is None
    # The history ran to the end: the run completed (or handed over to a new run),
    # so every command was replayed.
    last = history.events[-1]
    assert (last.HasField("workflow_execution_completed_event_attributes")
            or last.HasField("workflow_execution_continued_as_new_event_attributes"))


async def test_recorded_histories_replay_with_the_production_sandbox_passthrough() -> None:
    """The worker passes bespoke's modules through the sandbox (`workflow_runner`);
    every recorded history replays the same under it as under the strict sandbox."""
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter,
                        workflow_runner=workflow_runner())

    async def histories():
        for p in HISTORIES:
            yield WorkflowHistory.from_json(f"replay-{p.stem}", p.read_text())

    results = await replayer.replay_workflows(histories(), raise_on_replay_failure=False)
    assert results.replay_failures == {}
    assert len(HISTORIES) >= 10


async def test_replay_detects_a_history_that_does_not_match_the_code() -> None:
    """The replayer is not vacuous: a history whose first activity is changed to a
    different activity type must fail to replay."""
    path = next(p for p in HISTORIES if p.stem == "full_prepayment")
    data = json.loads(path.read_text())
    for event in data["events"]:
        attrs = event.get("activityTaskScheduledEventAttributes")
        if attrs:
            attrs["activityType"]["name"] = "some_other_activity"
            break
    else:
        pytest.fail("no activity in the recorded history")
    history = WorkflowHistory.from_json("replay-tampered", json.dumps(data))
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    with pytest.raises(NondeterminismError, match="project_order"):
        await replayer.replay_workflow(history)


def _patches(path: Path) -> set[str]:
    """Patch ids recorded in a history's `core_patch` markers."""
    found = set()
    for event in json.loads(path.read_text())["events"]:
        marker = event.get("markerRecordedEventAttributes")
        if marker and marker["markerName"] == "core_patch":
            for payload in marker["details"]["patch-data"]["payloads"]:
                found.add(json.loads(base64.b64decode(payload["data"]))["id"])
    return found


def _events(stem: str) -> list[dict]:
    return json.loads((HISTORIES[0].parent / f"{stem}.json").read_text())["events"]


def _reminder_entries(stem: str) -> int:
    """Reminder entries the order sent to the read model (project_order inputs, or
    sync_read_model results in local-activity markers since "sync-local-v1")."""
    count = 0
    for event in _events(stem):
        attrs = event.get("activityTaskScheduledEventAttributes")
        marker = event.get("markerRecordedEventAttributes") or {}
        payloads = [*(attrs or {}).get("input", {}).get("payloads", []),
                    *marker.get("details", {}).get("result", {}).get("payloads", [])]
        for payload in payloads:
            count += base64.b64decode(payload["data"]).count(b'"kind":"deadline_reminder"')
    return count


def _activity_types(stem: str) -> tuple[set[str], set[str]]:
    """The regular and the local activity types a history ran."""
    regular, local = set(), set()
    for event in _events(stem):
        if attrs := event.get("activityTaskScheduledEventAttributes"):
            regular.add(attrs["activityType"]["name"])
        marker = event.get("markerRecordedEventAttributes")
        if marker and marker["markerName"] == "core_local_activity":
            [data] = marker["details"]["data"]["payloads"]
            local.add(json.loads(base64.b64decode(data["data"]))["activity_type"])
    return regular, local


def test_histories_cover_both_sides_of_the_aftersales_patch() -> None:
    """Orders started before the "aftersales-v1" patch (no patch marker) must keep
    replaying the old path; orders after it, the new one."""
    patched = {p.stem for p in HISTORIES if "aftersales-v1" in _patches(p)}
    assert {"full_prepayment", "credit_repaid", "cash_on_delivery"}.isdisjoint(patched)
    assert {"return_refunded", "dispute_arbitrated", "aftersales_window_closes"} <= patched


def test_histories_cover_both_sides_of_the_sync_batched_patch() -> None:
    """Orders started before "sync-batched-v1" (one read-model sync per call) keep
    replaying that way; orders after it batch the syncs, with fewer activities."""
    batched = {p.stem for p in HISTORIES if "sync-batched-v1" in _patches(p)}
    before = {p.stem for p in HISTORIES} - batched
    assert {"full_prepayment", "dispute_arbitrated", "deadlines_overridden_by_ops"} <= before
    assert {"full_prepayment_batched", "dispute_arbitrated_batched", "deadlines_overridden_by_ops_batched",
            "staged_30_60_10_retention_batched", "credit_repaid_batched"} <= batched

    def activities(stem: str) -> int:
        events = json.loads((HISTORIES[0].parent / f"{stem}.json").read_text())["events"]
        return sum("activityTaskScheduledEventAttributes" in e for e in events)

    for stem in ("full_prepayment", "dispute_arbitrated", "repair_round_trip"):
        assert activities(f"{stem}_batched") < activities(stem), stem


def test_histories_cover_an_order_that_continued_as_new() -> None:
    """The first run of a chain (started from the order input), a run resumed in
    the middle of a repair case (started from the carried state), and the last one."""
    def run(stem: str) -> tuple[dict, dict]:
        events = json.loads((HISTORIES[0].parent / f"{stem}.json").read_text())["events"]
        payload = events[0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]
        return json.loads(base64.b64decode(payload["data"])), events[-1]

    first, end = run("continued_as_new_first_run")
    assert first.get("state") is None and "workflowExecutionContinuedAsNewEventAttributes" in end
    middle, end = run("continued_as_new_in_repair")
    assert middle["state"]["cases"][0]["outcome"] is None and middle["state"]["cases"][0]["started"]
    assert "workflowExecutionContinuedAsNewEventAttributes" in end
    last, end = run("continued_as_new_last_run")
    assert last["state"]["runs"] > middle["state"]["runs"] > 1
    assert "workflowExecutionCompletedEventAttributes" in end


def test_histories_cover_both_sides_of_the_deadline_reminders_patch() -> None:
    """Orders started before "deadline-reminders-v1" wait on one timer per deadline
    and replay without reminders; orders after it record reminder entries."""
    patched = {p.stem for p in HISTORIES if "deadline-reminders-v1" in _patches(p)}
    assert {"reminders_full_prepayment", "reminders_deadlines_overridden_by_ops",
            "reminders_dispute_default_no_seller_evidence"} <= patched
    assert {"full_prepayment_batched", "deadlines_overridden_by_ops_batched"}.isdisjoint(patched)
    # (Of the later scenarios on the patched side, those that wait out a reminded deadline.)
    for stem in {p for p in patched if p.startswith("reminders_")} | {
            "local_sync_full_prepayment", "local_sync_deadlines_overridden_by_ops"}:
        assert _reminder_entries(stem) > 0, stem
    assert _reminder_entries("deadlines_overridden_by_ops_batched") == 0


def test_histories_cover_both_sides_of_the_cancel_shipped_and_window_patches() -> None:
    """Cancelling while shipped ("cancel-shipped-v1") and the after-sales window
    counted from delivery ("aftersales-window-from-delivery-v1"): histories from
    before replay the old path, the new scenarios the patched one."""
    window = {p.stem for p in HISTORIES if "aftersales-window-from-delivery-v1" in _patches(p)}
    assert "aftersales_window_from_delivery" in window
    assert {"aftersales_window_closes", "return_after_completion"}.isdisjoint(window)
    shipped = {p.stem for p in HISTORIES if "cancel-shipped-v1" in _patches(p)}
    assert shipped == {"buyer_cancels_while_shipped"}


def test_histories_cover_both_sides_of_the_local_sync_patch() -> None:
    """Orders started before "sync-local-v1" write the read model in regular
    activities (`project_order`, `post_transaction`); orders after it in one local
    activity per sync (`sync_read_model`, a marker), and replay without a regular one."""
    patched = {p.stem for p in HISTORIES if "sync-local-v1" in _patches(p)}
    assert {"local_sync_full_prepayment", "local_sync_return_refunded", "local_sync_dispute_arbitrated",
            "local_sync_credit_repaid", "local_sync_plugin_pinned_cancel_routed",
            "local_sync_continued_as_new_last_run"} <= patched
    for stem in patched:
        regular, local = _activity_types(stem)
        assert "sync_read_model" in local and not regular & {"project_order", "post_transaction"}, stem
    for stem in ("full_prepayment_batched", "reminders_full_prepayment", "plugin_pinned_cancel_routed"):
        assert stem not in patched
        regular, local = _activity_types(stem)
        assert "project_order" in regular and "sync_read_model" not in local, stem
    # Plugin-pinned decisions stay regular activities on the rules queue.
    regular, _ = _activity_types("local_sync_plugin_pinned_cancel_routed")
    assert any(name.startswith(("decide_", "check_")) for name in regular), regular


def test_histories_cover_both_sides_of_the_bundled_patch() -> None:
    """Orders started with "order-patches-bundled-v1" record that one patch marker
    (and its one TemporalChangeVersion upsert) and take the path of every older order
    patch; orders started before it record each patch they asked."""
    bundled = {p.stem for p in HISTORIES if "order-patches-bundled-v1" in _patches(p)}
    assert bundled == {p.stem for p in HISTORIES if p.stem.startswith("bundled_")}
    assert len(bundled) >= 16
    for stem in bundled:
        assert _patches(HISTORIES[0].parent / f"{stem}.json") == {"order-patches-bundled-v1"}, stem
        regular, local = _activity_types(stem)
        assert "sync_read_model" in local and not regular & {"project_order", "post_transaction"}, stem
        versions = [e for e in _events(stem) if "TemporalChangeVersion" in
                    e.get("upsertWorkflowSearchAttributesEventAttributes", {}).get("searchAttributes", {})
                    .get("indexedFields", {})]
        assert len(versions) == 1, stem
    # The same orders before the bundle: a marker for each patch they asked.
    assert len(_patches(HISTORIES[0].parent / "local_sync_full_prepayment.json")) == 7
    # What the older patches turned on is there: reminders, after-sales, the
    # payment's reason, goods returned when cancelled while shipped, routed rules.
    assert _reminder_entries("bundled_full_prepayment") > 0
    def synced(stem: str) -> bytes:  # everything the order wrote to the read model
        return b"".join(base64.b64decode(p["data"]) for e in _events(stem)
                        for p in (e.get("markerRecordedEventAttributes") or {}).get("details", {})
                        .get("result", {}).get("payloads", []))

    assert b'"kind":"case_opened"' in synced("bundled_return_refunded")
    assert b"arrived on the old account" in synced("bundled_collection_account_ops_entry")
    assert b'"kind":"goods_returning"' in synced("bundled_buyer_cancels_while_shipped")
    regular, _ = _activity_types("bundled_plugin_pinned_cancel_routed")
    assert any(name.startswith(("decide_", "check_")) for name in regular), regular
