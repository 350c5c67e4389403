"""A trivial workflow for runtime tests. It lives in its own module (not a test file or
__main__) because the workflow sandbox re-imports the module that defines it."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow


@workflow.defn
class WaitForGo:
    """Waits (up to a day) for the `go` signal, then greets whoever sent it."""

    def __init__(self) -> None:
        self.name: str | None = None

    @workflow.run
    async def run(self, greeting: str) -> str:
        await workflow.wait_condition(lambda: self.name is not None, timeout=timedelta(days=1))
        return f"{greeting}, {self.name}"

    @workflow.signal
    def go(self, name: str) -> None:
        self.name = name

    @workflow.query
    def waiting(self) -> bool:
        return self.name is None
