"""Decisions per second with full explanation: bespoke.rules vs zen-engine.

Both engines evaluate the default policy's 20-row cancellation table on the same
facts in the same process:

* bespoke table: `evaluate_compiled` (hit policy *unique*: every candidate row is
  checked, so an overlap would be caught) plus the explanation of each matched row
  as (field, op, expected, actual, result) condition tuples with its `because`.
* bespoke decision: the whole `decide_cancellation` — derived facts, table,
  money, pydantic `Explanation` with pin and summary.
* zen: `ZenEngine.evaluate(key, facts, {"trace": True})` with a static loader on
  the same table translated to a JDM decision table (hit policy *first*: zen has
  no unique; the rows are disjoint so the answer is the same). Rule id and
  `because` are table outputs, and the trace carries the matched row.

Run: /tmp/venv/bin/python bench/rules_bench.py [--seconds 2] [--write bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bespoke.rules import CancellationFacts, decide_cancellation, load_policy
from bespoke.rules.decisions import derived_cancellation_facts
from bespoke.rules.engine import compiled_tables, evaluate_compiled
from bespoke.rules.loader import BUILTIN_POLICY_DIR


def _zen_cell(cond: dict[str, Any] | None) -> str:
    """One bespoke condition as a zen unary expression."""
    if not cond:
        return ""
    parts = []
    for op, e in cond.items():
        if op == "eq":
            parts.append(json.dumps(e))
        elif op == "in":
            parts.append(", ".join(json.dumps(v) for v in e))
        elif op == "between":
            parts.append(f"[{e[0]}..{e[1]}]")
        else:
            sym = {"ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}[op]
            parts.append(f"{sym} {json.dumps(e)}")
    return " and ".join(parts) if len(parts) > 1 else parts[0]


def to_jdm(table: Any, name: str) -> dict[str, Any]:
    fields = sorted({f for r in table.rules for f in r.when})
    outs = sorted({o for r in table.rules for o in r.then})
    inputs = [{"id": f"i_{f}", "name": f, "field": f} for f in fields]
    outputs = [{"id": f"o_{o}", "name": o, "field": o} for o in [*outs, "rule_id", "because"]]
    rules = []
    for r in table.rules:
        row: dict[str, str] = {"_id": r.id}
        for f in fields:
            row[f"i_{f}"] = _zen_cell(r.when.get(f))
        for o in outs:
            row[f"o_{o}"] = json.dumps(r.then[o]) if o in r.then else ""
        row["o_rule_id"] = json.dumps(r.id)
        row["o_because"] = json.dumps(r.because)
        rules.append(row)
    return {
        "contentType": "application/vnd.gorules.decision",
        "nodes": [
            {"id": "in", "type": "inputNode", "name": "Request", "position": {"x": 0, "y": 0}},
            {
                "id": "tbl",
                "type": "decisionTableNode",
                "name": name,
                "position": {"x": 200, "y": 0},
                "content": {"hitPolicy": "first", "inputs": inputs, "outputs": outputs, "rules": rules},
            },
            {"id": "out", "type": "outputNode", "name": "Response", "position": {"x": 400, "y": 0}},
        ],
        "edges": [
            {"id": "e1", "sourceId": "in", "targetId": "tbl", "type": "edge"},
            {"id": "e2", "sourceId": "tbl", "targetId": "out", "type": "edge"},
        ],
    }


def _rate(fn: Callable[[Any], Any], inputs: list[Any], seconds: float) -> float:
    """Best of three runs of ~seconds/3 each: decisions per second."""
    best = 0.0
    n = len(inputs)
    for _ in range(3):
        count = 0
        start = time.perf_counter()
        deadline = start + seconds / 3
        while True:
            for x in inputs:
                fn(x)
            count += n
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, count / (now - start))
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="measuring time per engine")
    ap.add_argument("--write", type=Path, default=None, help="write the results into this markdown file (section 'rules')")
    args = ap.parse_args()

    import zen

    policy = load_policy(BUILTIN_POLICY_DIR / "default.toml")
    table = policy.tables["cancellation"]
    assert len(table.rules) == 20, len(table.rules)
    ct = compiled_tables(policy)["cancellation"]

    facts_models = [
        CancellationFacts.model_validate({**c.given, "as_of": c.as_of}) for c in policy.cases if c.decision == "cancellation"
    ]
    facts = [derived_cancellation_facts(policy, f) for f in facts_models]
    zen_facts = [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in f.items()} for f in facts]

    engine = zen.ZenEngine({"loader": {"type": "static", "content": {"cancellation.json": to_jdm(table, "cancellation")}}})

    def ours_table(f: dict[str, Any]) -> Any:
        r = evaluate_compiled(ct, f)
        return r.outputs, r.explain(f)

    def ours_decision(f: CancellationFacts) -> Any:
        return decide_cancellation(policy, f, decision_id="bench")

    def theirs(f: dict[str, Any]) -> Any:
        return engine.evaluate("cancellation.json", f, {"trace": True})

    # Same answers before timing anything.
    for f, zf in zip(facts, zen_facts, strict=True):
        mine = ours_table(f)[1][0][1]
        z = theirs(zf)
        assert z["result"]["rule_id"] == mine, (z["result"], mine)
        assert z["trace"], "zen trace missing"

    rate_table = _rate(ours_table, facts, args.seconds)
    rate_decision = _rate(ours_decision, facts_models, args.seconds)
    rate_zen = _rate(theirs, zen_facts, args.seconds)

    cmd = "/tmp/venv/bin/python bench/rules_bench.py" + (f" --seconds {args.seconds:g}" if args.seconds != 3.0 else "")
    cmd += f" --write {args.write}" if args.write else ""
    lines = [
        f"machine: {platform.machine()}, nproc {os.cpu_count()}, Python {platform.python_version()}, zen-engine {_version('zen-engine')}",
        f"table: default@{policy.version} cancellation, {len(table.rules)} rows, {len(facts)} distinct fact sets",
        f"bespoke table + explanation : {rate_table:>12,.0f} decisions/s",
        f"bespoke decide_cancellation : {rate_decision:>12,.0f} decisions/s (money + pydantic Explanation)",
        f"zen-engine evaluate, traced : {rate_zen:>12,.0f} decisions/s",
        f"ratio table/zen             : {rate_table / rate_zen:>12.1f}x (target >= 4x)",
        f"ratio decide/zen            : {rate_decision / rate_zen:>12.1f}x",
    ]
    print("\n".join(lines))
    if args.write:
        _write_section(args.write, cmd, lines)
    return 0


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def _write_section(path: Path, cmd: str, lines: list[str]) -> None:
    body = "## rules\n\nCommand: `" + cmd + "`\n\n```\n" + "\n".join(lines) + "\n```\n"
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    start = text.find("## rules\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + body
    else:
        end = text.find("\n## ", start + 1)
        text = text[:start] + body + (text[end + 1 :] if end != -1 else "")
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
