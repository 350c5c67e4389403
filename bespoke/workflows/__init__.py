"""Workflow registry: the worker registers exactly these."""

from bespoke.workflows.order import OrderWorkflow
from bespoke.workflows.reconcile import ReconcileWorkflow

WORKFLOWS = [OrderWorkflow, ReconcileWorkflow]

__all__ = ["WORKFLOWS", "OrderWorkflow", "ReconcileWorkflow"]
