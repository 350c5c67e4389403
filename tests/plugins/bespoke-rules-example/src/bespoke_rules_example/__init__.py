"""Example plugin: when only raw materials have been bought (no fabrication or
finishing yet), the seller can put most of them into the next order, so a
cancelling buyer bears only half of the net cost.

The table format cannot say this: it needs the per-milestone cost breakdown.

`broken_while_flagged` is a plugin with a bug that an operator can switch on and
off (the environment variable BESPOKE_EXAMPLE_PLUGIN_BROKEN of the worker's
process): the tests use it to show that a failing decision changes nothing and is
retried until the plugin works again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from bespoke.rules import rule_plugin


@rule_plugin(
    id="materials_reuse",
    version="1",
    because="Only raw materials were bought so far and the seller can reuse them, so the buyer bears half of their net cost.",
)
def materials_reuse(facts: Mapping[str, Any], outputs: Mapping[str, Any]) -> dict[str, Any] | None:
    by_milestone = facts["costs_by_milestone"]
    only_materials = by_milestone.get("materials", 0) > 0 and not any(
        v for k, v in by_milestone.items() if k != "materials"
    )
    if only_materials and outputs["buyer_cost_share_bps"] > 5000:
        return {"buyer_cost_share_bps": 5000}
    return None


@rule_plugin(id="broken_while_flagged", version="1", because="Never applies: it only fails while flagged.")
def broken_while_flagged(facts: Mapping[str, Any], outputs: Mapping[str, Any]) -> dict[str, Any] | None:
    if os.environ.get("BESPOKE_EXAMPLE_PLUGIN_BROKEN"):
        raise RuntimeError("example plugin bug (BESPOKE_EXAMPLE_PLUGIN_BROKEN is set)")
    return None
