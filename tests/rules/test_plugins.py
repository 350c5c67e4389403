from __future__ import annotations

from importlib import metadata

import pytest

from bespoke.rules import PolicyError, decide_cancellation, load_policy, load_policy_text, pin_policy
from bespoke.rules.check import check_policy

from .helpers import HERE, cancellation_facts

PLUGIN = "example.materials_reuse"
installed = any(ep.name == PLUGIN for ep in metadata.entry_points(group="bespoke.rules"))
needs_plugin = pytest.mark.skipif(
    not installed, reason="pip install -e tests/plugins/bespoke-rules-example (CI installs it)"
)
PLUGIN_POLICY = HERE / "policies" / "plugin_policy.toml"


@needs_plugin
def test_plugin_policy_loads_pins_the_distribution_and_passes_check() -> None:
    p = load_policy(PLUGIN_POLICY)
    pin = pin_policy(p)
    [pp] = pin.plugins
    assert (pp.name, pp.distribution, pp.version) == (PLUGIN, "bespoke-rules-example", "0.1.0")
    report = check_policy(p)
    assert report.ok, report.problems


@needs_plugin
def test_plugin_adjusts_outputs_and_is_explained() -> None:
    p = load_policy(PLUGIN_POLICY)
    f = cancellation_facts(costs_incurred=20000, costs_by_milestone={"materials": 20000}, salvage_value=0)
    d = decide_cancellation(p, f, decision_id="plug")
    assert d.to_seller + d.platform_fee == 10000  # half of 20000
    rule_ids = [m.rule_id for m in d.explanation.matched]
    assert rule_ids == ["BUYER", f"plugin:{PLUGIN}"]
    m = d.explanation.matched[1]
    assert m.outputs == {"buyer_cost_share_bps": 5000}
    assert "materials_reuse 1 from bespoke-rules-example 0.1.0" in m.because
    assert d.explanation.pin.plugins[0].distribution == "bespoke-rules-example"


def test_missing_plugin_is_a_clear_policy_error() -> None:
    text = PLUGIN_POLICY.read_text().replace(PLUGIN, "nobody.has_this")
    with pytest.raises(PolicyError) as info:
        load_policy_text(text, "p.toml")
    line = info.value.problems[0]
    assert line.startswith("p.toml: plugins.hooks[0].plugin: plugin 'nobody.has_this' is not installed")
    assert "group 'bespoke.rules'" in line


def test_hook_on_unknown_table_is_rejected() -> None:
    text = PLUGIN_POLICY.read_text().replace('table = "cancellation"\nplugin', 'table = "returns"\nplugin')
    with pytest.raises(PolicyError, match=r"plugins.hooks\[0\].table: no table named 'returns'"):
        load_policy_text(text, "p.toml")
