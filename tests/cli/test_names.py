"""The CLI reaches OrderWorkflow by name (so it need not import the workflow
module, the activities and SQLAlchemy at start-up). Every name it uses must be
one the workflow defines."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from temporalio import workflow

import bespoke.cli
from bespoke.domain.names import ORDER_WORKFLOW, workflow_id_for
from bespoke.workflows.order import OrderWorkflow

CLI_DIR = Path(bespoke.cli.__file__).parent
DEFINITION = workflow._Definition.must_from_class(OrderWorkflow)


def _names_used(method: str, position: int) -> set[str]:
    """String literals passed at `position` to calls of `method` in the CLI's source."""
    found = set()
    for path in CLI_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or len(node.args) <= position:
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            arg = node.args[position]
            if name == method and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.add(arg.value)
    return found


def test_every_update_the_cli_sends_is_defined_by_the_workflow() -> None:
    used = _names_used("act", 1) | _names_used("update", 1)
    assert len(used) >= 20, used  # the scan found the actions
    assert used <= set(DEFINITION.updates), used - set(DEFINITION.updates)


def test_every_query_the_cli_asks_is_defined_by_the_workflow() -> None:
    used = _names_used("query", 1)
    assert used == {"status", "quote_facts", "pinned_policy", "policy_pin"}
    assert used <= set(DEFINITION.queries)


def test_the_workflow_type_name_and_id_scheme_match() -> None:
    assert DEFINITION.name == ORDER_WORKFLOW
    assert workflow_id_for("DC-1") == "order-DC-1"


def test_the_cli_starts_without_the_workflow_module_or_sqlalchemy() -> None:
    code = (
        "import sys, bespoke.cli.app; "
        "heavy = [m for m in ('bespoke.workflows.order', 'bespoke.activities', 'sqlalchemy', 'sqlmodel') "
        "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
