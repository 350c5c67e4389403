"""The bare baseline: a workflow with the shape of an order's happy path and none
of its substance.

It accepts the same number of updates as an order, and schedules the same
number of activities and local activities at the same points (before the first
update, inside each update, after the last), counted from a real order's
history by lifecycle_bench. The activities are synchronous like bespoke's
(they run on the same kind of thread pool) and do nothing. Payloads are small
dataclasses through the same pydantic data converter. What is left is
Temporal's own cost for that many round trips: the ceiling bespoke is
measured against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import activity, workflow


@dataclass
class Shape:
    """Activities (`acts`) and local activities (`locals_`) per phase:
    index 0 is the run before the first update, 1..n the n updates, n+1 after the last."""

    acts: list[int] = field(default_factory=list)
    locals_: list[int] = field(default_factory=list)

    @property
    def updates(self) -> int:
        return len(self.acts) - 2


@dataclass
class Step:
    index: int  # 1..n


@activity.defn(name="bare_noop")
def noop(x: int) -> int:
    return x


@activity.defn(name="bare_local_noop")
def local_noop(x: int) -> int:
    return x


_OPTS = {"start_to_close_timeout": timedelta(seconds=30)}


@workflow.defn(name="BareWorkflow")
class BareWorkflow:
    @workflow.init
    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self.done = 0

    async def _phase(self, i: int) -> None:
        for _ in range(self.shape.locals_[i]):
            await workflow.execute_local_activity(local_noop, i, **_OPTS)
        for _ in range(self.shape.acts[i]):
            await workflow.execute_activity(noop, i, **_OPTS)

    @workflow.run
    async def run(self, shape: Shape) -> int:
        await self._phase(0)
        await workflow.wait_condition(lambda: self.done == shape.updates)
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._phase(shape.updates + 1)
        return self.done

    @workflow.update
    async def step(self, s: Step) -> int:
        await self._phase(s.index)
        self.done += 1
        return self.done

    @step.validator
    def _validate_step(self, s: Step) -> None:
        if not 1 <= s.index <= self.shape.updates:
            raise ValueError(f"no step {s.index}")


ACTIVITIES = [noop, local_noop]
