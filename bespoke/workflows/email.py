"""EmailDispatchWorkflow: email goes out from the events outbox, a round at a time.

One workflow per deployment (`EMAIL_WORKFLOW_ID`), started by every worker that
has BESPOKE_SMTP_URL set (`ensure_email_dispatch`; the one already running is
kept). Each round reads new events into the message log (`collect_email`) and
sends the messages due (`send_email`, a few at once); when there is nothing more
it sleeps `poll_seconds`. It continues as new every `rounds_per_run` rounds, with
nothing in flight.

The workflow holds no state worth keeping: the cursor and every message's fate
are rows in the database, so a replay, a retried activity or a second dispatcher
started by mistake can only repeat work the log already records as done.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from bespoke.activities.email import EmailActivities
    from bespoke.domain.mail import CollectInput, EmailDispatchInput, SendInput
    from bespoke.workflows.presets import DB_WRITE

if TYPE_CHECKING:
    from temporalio.client import Client

EMAIL_WORKFLOW_ID = "bespoke-email"
# One send: connecting and talking to the server is bounded by the SMTP timeout
# (30 s a step); a worker that dies mid-send is retried a few times here, and a
# message that still has no answer stays pending for the next round.
SEND = {
    "start_to_close_timeout": timedelta(minutes=3),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                                maximum_interval=timedelta(seconds=30), maximum_attempts=5),
}


@workflow.defn(name="EmailDispatchWorkflow")
class EmailDispatchWorkflow:
    @workflow.run
    async def run(self, inp: EmailDispatchInput) -> None:
        for _ in range(inp.rounds_per_run):
            got = await workflow.execute_activity_method(
                EmailActivities.collect_email, CollectInput(limit=inp.batch, due_limit=inp.sends_per_round),
                **DB_WRITE)
            if got.due:
                # A send that fails past its retries leaves its message pending: the
                # next round tries it again; the workflow itself never fails for it.
                await asyncio.gather(*(workflow.execute_activity_method(
                    EmailActivities.send_email, SendInput(message_id=i), **SEND) for i in got.due),
                    return_exceptions=True)
            if got.more or len(got.due) == inp.sends_per_round:
                continue
            if workflow.info().is_continue_as_new_suggested():
                break
            await workflow.sleep(timedelta(seconds=inp.poll_seconds))
        workflow.continue_as_new(inp)


async def ensure_email_dispatch(client: Client, task_queue: str, inp: EmailDispatchInput | None = None) -> bool:
    """Start the dispatcher unless it runs already; True if this call started it."""
    from temporalio.exceptions import WorkflowAlreadyStartedError

    try:
        await client.start_workflow(EmailDispatchWorkflow.run, inp or EmailDispatchInput(), id=EMAIL_WORKFLOW_ID,
                                    task_queue=task_queue)
    except WorkflowAlreadyStartedError:
        return False
    return True
