"""Recorded histories on both sides of the policy store and of the routed rules
(`tests/test_replay.py` replays every one of them against the current code)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from tests.test_replay import HISTORIES, _patches

HERE = Path(__file__).parent / "histories"


def _input(stem: str) -> dict:
    events = json.loads((HERE / f"{stem}.json").read_text())["events"]
    payload = events[0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]
    return json.loads(base64.b64decode(payload["data"]))


def _scheduled(stem: str) -> dict[str, set[str]]:
    """Activity type → the task queues it was scheduled on."""
    out: dict[str, set[str]] = {}
    for event in json.loads((HERE / f"{stem}.json").read_text())["events"]:
        attrs = event.get("activityTaskScheduledEventAttributes")
        if attrs:
            out.setdefault(attrs["activityType"]["name"], set()).add(attrs["taskQueue"]["name"])
    return out


def test_histories_cover_orders_with_the_whole_policy_and_orders_with_terms_and_a_pin() -> None:
    for stem in ("full_prepayment", "full_prepayment_batched", "return_refunded", "continued_as_new_first_run"):
        inp = _input(stem)
        assert inp["policy"]["tables"] and "terms" not in inp, stem
    for stem in ("full_prepayment_policy_store", "return_refunded_policy_store", "plugin_pinned_cancel_routed"):
        inp = _input(stem)
        assert inp.get("policy") is None and "tables" not in inp["terms"] and inp["pin"]["sha256"], stem


def test_histories_cover_both_sides_of_the_rules_routed_patch() -> None:
    routed = {p.stem for p in HISTORIES if "rules-routed-v1" in _patches(p)}
    # recorded before and after sync-local-v1; both route the pinned plugin's decisions
    assert routed == {"plugin_pinned_cancel_routed", "local_sync_plugin_pinned_cancel_routed"}
    # and so does one recorded with every older patch behind one marker
    for history in sorted(routed | {"bundled_plugin_pinned_cancel_routed"}):
        inp = _input(history)
        assert [p["distribution"] for p in inp["pin"]["plugins"]] == ["bespoke-rules-example"]
        scheduled = _scheduled(history)
        for name in ("check_pinned_policy", "decide_cancellation"):
            (queue,) = scheduled[name]
            assert queue.endswith(".rules.bespoke-rules-example==0.1.0"), (history, queue)
    # An order without plugins decides in local activities, as before.
    assert not {"check_pinned_policy", "decide_settlement"} & set(_scheduled("full_prepayment_policy_store"))
