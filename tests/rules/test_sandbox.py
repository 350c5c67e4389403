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
    assert result == ["default@1.2.0", "P10D", "20"]


@workflow.defn(sandboxed=True)
class BuildAftersalesFactsWorkflow:
    """The order workflow builds after-sales facts in workflow code: they must validate in the sandbox."""

    @workflow.run
    async def run(self) -> list[str]:
        from bespoke.rules import DisputeFacts, RefundFacts, ReturnFacts

        now = workflow.now()
        r = ReturnFacts(reason="defect", stage="delivered", remedy="repair", days_since_delivery=2, repair_rounds=0,
                        price=1000, currency="CNY", as_of=now)  # fmt: skip
        f = RefundFacts(reason="defect", outcome="return_received", requested_refund=1000, price=1000, currency="CNY",
                        paid_total=1000, refunded_so_far=0, escrow_balance=1000, released_to_seller=0,
                        platform_fee_charged=0, return_shipping_cost=0, return_shipping_payer="seller", as_of=now)  # fmt: skip
        d = DisputeFacts(opened_by="seller", buyer_submitted=True, seller_submitted=False, claim=500, price=1000,
                         currency="CNY", as_of=now)  # fmt: skip
        try:
            RefundFacts.model_validate({**f.model_dump(), "escrow_balance": 999})
        except ValueError as exc:
            rejected = "the buyer's unrefunded money must be in escrow" in str(exc)
        return [r.remedy, f.outcome, d.opened_by, str(rejected)]


async def test_after_sales_facts_validate_inside_the_workflow_sandbox(env: WorkflowEnvironment) -> None:
    queue = f"rules-{uuid.uuid4()}"
    async with Worker(env.client, task_queue=queue, workflows=[BuildAftersalesFactsWorkflow]):
        result = await env.client.execute_workflow(BuildAftersalesFactsWorkflow.run, id=queue, task_queue=queue)
    assert result == ["repair", "return_received", "seller", "True"]
