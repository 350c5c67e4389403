"""The run loop's scheduler: how the lifecycle waits, how update handlers know the
lifecycle has reacted to them, and the batched read-model sync.

Only this module calls `workflow.wait_condition` (a test parses the workflow
modules to keep it so): the lifecycle waits through `Loop.block`, which registers
what it waits for, so `settled()` can tell when nothing more will happen until an
update or a timer arrives. Update handlers return through `caught_up()`, so an
update's result shows the stage the lifecycle moved the order to.

`block` is also where a run ends early to continue as new: when the owner says
the run is long enough (`continue_wanted`), no update handler is running and the
read model is current, the wait raises `ContinueAsNewWanted` instead of waiting
on. Nothing is left to do in the old run then, so the hand-over is immediate: an
update that arrives later goes to the new run, which reacts to it.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import workflow

# True in the run loop's task and the jobs it gathers; update handlers run in
# tasks of their own, where it is False.
_IN_RUN_LOOP: contextvars.ContextVar[bool] = contextvars.ContextVar("bespoke_in_run_loop", default=False)


class ContinueAsNewWanted(Exception):
    """Raised out of a wait: the run should hand its state to a new run."""


class Loop:
    def __init__(
        self,
        *,
        batched: bool,
        flush: Callable[[], Awaitable[None]],
        continue_wanted: Callable[[], bool],
    ) -> None:
        self._batched = batched
        self._flush = flush
        self._continue_wanted = continue_wanted
        # Conditions the loop (and any concurrent job of it) waits on, and how many
        # of them are running rather than waiting.
        self._waiting: list[Callable[[], bool]] = []
        self._running = 1
        # Batched syncs: requests made, requests served, a failure to hand back.
        self._sync_wanted = 0
        self._sync_done = 0
        self._sync_error: BaseException | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._flushing = False
        self.done = False  # the lifecycle is over (completed, or handing over to a new run)

    @staticmethod
    def enter() -> None:
        """Mark the calling task as the run loop (call first thing in `run`)."""
        _IN_RUN_LOOP.set(True)

    @staticmethod
    def in_run_loop() -> bool:
        """Whether the caller is the run loop (or a job of it), not an update handler."""
        return _IN_RUN_LOOP.get()

    # ---------------------------------------------------------------- waiting

    async def block(self, cond: Callable[[], bool], timeout: timedelta | None = None, *,
                    stoppable: bool = True) -> None:
        """The run loop's only way to wait. Raises asyncio.TimeoutError after
        `timeout`, and ContinueAsNewWanted when the run should continue as new (a
        condition that holds always wins: the loop reacts to it first)."""
        def stop() -> bool:
            return (stoppable and self._continue_wanted() and workflow.all_handlers_finished()
                    and self._synced_now())

        self._waiting.append(cond)
        self._running -= 1
        try:
            await workflow.wait_condition(lambda: cond() or stop(), timeout=timeout)
        finally:
            self._running += 1
            self._waiting.remove(cond)
        if not cond() and stop():
            raise ContinueAsNewWanted

    async def job(self, coro: Awaitable[None]) -> None:
        """Run `coro` as one more concurrent part of the run loop."""
        self._running += 1
        try:
            await coro
        finally:
            self._running -= 1

    async def gather(self, *coros: Awaitable[None]) -> None:
        """Run jobs side by side until all end; a continue-as-new in one ends all."""
        self._running -= 1  # the main loop only waits for its jobs now
        try:
            results = await asyncio.gather(*(self.job(c) for c in coros), return_exceptions=True)
        finally:
            self._running += 1
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def settled(self) -> bool:
        """The run loop (and every job of it) waits on a condition that does not
        hold yet: nothing more happens until an update or a timer arrives."""
        return self._running == 0 and not any(c() for c in self._waiting)

    async def caught_up(self) -> None:
        """For update handlers: wait until the run loop has reacted to what the
        update changed (and the read model shows it)."""
        await workflow.wait_condition(
            lambda: self.done or (self.settled() and self._sync_done >= self._sync_wanted)
        )

    # ---------------------------------------------------------------- syncing

    async def sync(self) -> None:
        """Post pending transactions and bring the read model up to date; return
        once that is done.

        Orders started before the "sync-batched-v1" patch flush on every call. Newer
        ones hand the request to one flusher task, which waits until the run loop
        has settled and then serves every request made so far with one pass: an
        update's handler and the run loop's reaction to it share one projection.
        An update's caller still gets its answer only once the read model shows it."""
        if not self._batched:
            return await self._flush()
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_forever())
        self._sync_wanted += 1
        if _IN_RUN_LOOP.get():
            # The run loop does not wait: its next changes join the same pass, and
            # whoever needs the read model current (an update's caller through
            # caught_up, the end of the run) waits for every request.
            return
        await self._synced(self._sync_wanted)

    async def _synced(self, wanted: int) -> None:
        await workflow.wait_condition(lambda: self._sync_done >= wanted or self._sync_error is not None)
        if self._sync_done < wanted and self._sync_error is not None:
            raise self._sync_error

    async def _flush_forever(self) -> None:
        while True:
            # Wait until the run loop has settled too, so its reaction to an update
            # (a new stage, a deadline) goes out with the update's own changes.
            await workflow.wait_condition(lambda: self._sync_wanted > self._sync_done and self.settled())
            target = self._sync_wanted
            self._flushing = True
            try:
                await self._flush()
            except Exception as err:  # handed to every waiting caller
                self._sync_error = err
                raise
            finally:
                self._flushing = False
            self._sync_done = target

    def _synced_now(self) -> bool:
        """Nothing waits to reach the read model (unbatched syncs finish in their caller)."""
        return not self._batched or (self._sync_done >= self._sync_wanted and not self._flushing)

    def hand_over(self) -> None:
        """The run ends to continue as new (see `block`): nothing is left to sync."""
        self.done = True
        if self._flusher is not None:
            self._flusher.cancel()

    async def finish(self) -> None:
        """End of the lifecycle: let every update handler finish, then make the read
        model current, until both hold at once."""
        self.done = True
        while True:
            await self.block(workflow.all_handlers_finished, stoppable=False)
            await self.sync()
            if self._flusher is not None:
                await self.block(lambda: self._sync_done >= self._sync_wanted or self._sync_error is not None,
                                 stoppable=False)
                if self._sync_error is not None:
                    raise self._sync_error
            if workflow.all_handlers_finished():
                break
        if self._flusher is not None:
            self._flusher.cancel()
