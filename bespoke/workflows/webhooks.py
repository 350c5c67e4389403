"""WebhookDispatcherWorkflow: keeps the webhook delivery activity running.

One per task queue, with a fixed id (`dispatcher_id`): every worker starts it when
it starts (`ensure_webhook_dispatcher`), and a start while one runs is a no-op,
so however many workers run, one activity delivers, and deliveries keep their
per-order order. The activity is retried without limit (a worker killed mid-round
costs a heartbeat timeout, then another worker carries on from the database);
the run continues as new every `rounds` activities to keep its history short.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from pydantic import Field
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from bespoke.activities.webhooks import DispatchInput, WebhookActivities
    from bespoke.domain.vocabulary import Frozen

if TYPE_CHECKING:
    from temporalio.client import Client

    from bespoke.settings import Settings


class DispatcherInput(Frozen):
    run_seconds: float = Field(default=300.0, gt=0, le=3600)
    heartbeat_seconds: float = Field(default=30.0, gt=0, le=600)
    rounds: int = Field(default=100, ge=1, le=10_000)  # activities per run before continuing as new


def dispatcher_id(task_queue: str) -> str:
    return f"bespoke-webhooks-{task_queue}"


@workflow.defn
class WebhookDispatcherWorkflow:
    @workflow.run
    async def run(self, inp: DispatcherInput) -> None:
        for _ in range(inp.rounds):
            await workflow.execute_activity_method(
                WebhookActivities.deliver_webhooks,
                DispatchInput(run_seconds=inp.run_seconds),
                start_to_close_timeout=timedelta(seconds=inp.run_seconds + 120),
                heartbeat_timeout=timedelta(seconds=inp.heartbeat_seconds),
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                                         maximum_interval=timedelta(seconds=30)),
            )
        workflow.continue_as_new(inp)


async def ensure_webhook_dispatcher(client: Client, settings: Settings) -> None:
    """Start the task queue's dispatcher unless one runs (then this does nothing)."""
    from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

    inp = DispatcherInput(heartbeat_seconds=settings.webhook_heartbeat,
                          run_seconds=min(3600.0, max(60.0, settings.webhook_heartbeat * 10)))
    await client.start_workflow(
        WebhookDispatcherWorkflow.run, inp, id=dispatcher_id(settings.task_queue), task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
