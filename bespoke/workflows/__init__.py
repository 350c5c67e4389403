"""Workflow registry: the worker registers exactly these."""

from bespoke.workflows.order import OrderWorkflow

WORKFLOWS = [OrderWorkflow]

__all__ = ["WORKFLOWS", "OrderWorkflow"]
