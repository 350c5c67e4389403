"""The policy travels in the workflow input: it must decode inside the sandbox."""

from __future__ import annotations

import uuid

from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from .helpers import default_policy


@workflow.defn(sandboxed=True)
class DecodePolicyWorkflow:
    @workflow.run
    async def run(self, data: dict) -> list[str]:
        # Deliberately not passed through: bespoke.rules must import in the sandbox.
        from bespoke.rules import Policy
        from bespoke.rules.durations import format_duration

        p = Policy.model_validate(data)
        return [p.ref, format_duration(p.deadlines.inspection_window), str(len(p.tables["cancellation"].rules))]


async def test_policy_decodes_inside_the_workflow_sandbox(env: WorkflowEnvironment) -> None:
    policy = default_policy()
    queue = f"rules-{uuid.uuid4()}"
    async with Worker(env.client, task_queue=queue, workflows=[DecodePolicyWorkflow]):
        result = await env.client.execute_workflow(
            DecodePolicyWorkflow.run, policy.model_dump(mode="json"), id=queue, task_queue=queue
        )
    assert result == ["default@1.1.0", "P10D", "20"]
