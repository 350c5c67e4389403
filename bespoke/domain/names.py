"""Names the client side uses to reach an order's workflow, without importing the
workflow module (and with it the activities and SQLAlchemy): the CLI starts in
half the time. tests/cli/test_names.py checks each name against OrderWorkflow."""

from __future__ import annotations

ORDER_WORKFLOW = "OrderWorkflow"

# What an order id may be: 1-64 ASCII letters, digits, '.', '_' or '-', starting
# with a letter or digit. It becomes part of the workflow id and of file names in
# exports, so nothing a shell, a URL or a terminal would read specially.
ORDER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
ORDER_ID_RULE = "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def workflow_id_for(order_id: str) -> str:
    return f"order-{order_id}"
