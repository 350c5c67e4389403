"""Workflow registry: the worker registers exactly these."""

from bespoke.workflows.email import EmailDispatchWorkflow
from bespoke.workflows.order import OrderWorkflow
from bespoke.workflows.reconcile import ReconcileWorkflow

WORKFLOWS = [OrderWorkflow, ReconcileWorkflow, EmailDispatchWorkflow]

__all__ = ["WORKFLOWS", "EmailDispatchWorkflow", "OrderWorkflow", "ReconcileWorkflow"]
