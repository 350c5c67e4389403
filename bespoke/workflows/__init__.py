"""Workflow registry: the worker registers exactly these."""

from bespoke.workflows.email import EmailDispatchWorkflow
from bespoke.workflows.order import OrderWorkflow
from bespoke.workflows.reconcile import ReconcileWorkflow
from bespoke.workflows.webhooks import WebhookDispatcherWorkflow

WORKFLOWS = [OrderWorkflow, ReconcileWorkflow, EmailDispatchWorkflow, WebhookDispatcherWorkflow]

__all__ = ["WORKFLOWS", "EmailDispatchWorkflow", "OrderWorkflow", "ReconcileWorkflow", "WebhookDispatcherWorkflow"]
