"""Names the client side uses to reach an order's workflow, without importing the
workflow module (and with it the activities and SQLAlchemy): the CLI starts in
half the time. tests/cli/test_names.py checks each name against OrderWorkflow."""

from __future__ import annotations

ORDER_WORKFLOW = "OrderWorkflow"


def workflow_id_for(order_id: str) -> str:
    return f"order-{order_id}"
