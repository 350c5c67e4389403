"""The order's deadlines: set, wait until due, move (ops overrides), pause.

One helper owns the running deadlines (the pattern of samples-python's
`updatable_timer`): the lifecycle starts a deadline and waits on it; ops may move
its due time while it runs, and the wait then starts over against the new time; a
case pauses a window by letting its wait end and starting it again later with the
time that was left (`remaining`).

A run that continued as new carries its running deadlines: the first `start` of a
carried deadline keeps its due time instead of starting the clock again, so a
deadline running across the continuation falls due at its original time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from bespoke.domain.models import DeadlineView
    from bespoke.domain.state import OrderState
    from bespoke.workflows.loop import ContinueAsNewWanted, Loop

if TYPE_CHECKING:
    from bespoke.workflows.reminders import Reminders

# Deadlines ops may move with `override_deadline`: the ones a timer waits on.
# promised_delivery and arbitration are markers, not timers.
MOVABLE_DEADLINES = (
    "seller_acceptance", "deposit", "balance", "retention", "inspection_window", "cod_remittance",
    "credit_settlement", "aftersales_window", "return_response", "offer_response", "escalation",
    "return_ship", "return_receive", "repair", "dispute_evidence",
)
# Deadlines of an after-sales case: they end with the case.
CASE_DEADLINES = ("return_response", "offer_response", "escalation", "return_ship", "return_receive",
                  "repair", "dispute_evidence", "arbitration")


class Deadlines:
    def __init__(self, state: OrderState, loop: Loop, *, continued: bool) -> None:
        self._views = state.deadlines
        self._last_due = state.last_due
        self._paused = state.paused
        self._loop = loop
        # Deadlines carried from the previous run, not yet taken up again.
        self._carried = set(self._views) if continued else set()
        # Reminders before due times (set by the workflow; None: none are sent).
        self.reminders: Reminders | None = None

    def start(self, name: str, duration: timedelta, action: str) -> None:
        """Start `name`, due `duration` from now (a carried deadline keeps its time)."""
        self.mark(name, workflow.now() + duration, action)

    def mark(self, name: str, due_at: datetime, action: str) -> None:
        """Show `name` as due at `due_at` (a marker nobody waits on, or a deadline)."""
        if name in self._carried:
            self._carried.discard(name)
            return
        self._views[name] = DeadlineView(name=name, due_at=due_at, default_action=action)

    def __contains__(self, name: str) -> bool:
        return name in self._views

    def get(self, name: str) -> DeadlineView | None:
        return self._views.get(name)

    def names(self) -> list[str]:
        return list(self._views)

    def views(self) -> list[DeadlineView]:
        return sorted(self._views.values(), key=lambda v: v.due_at)

    def pop(self, *names: str) -> None:
        for name in names:
            self._views.pop(name, None)
            self._carried.discard(name)

    def clear(self, keep: tuple[str, ...] = ()) -> None:
        for name in [n for n in self._views if n not in keep]:
            self.pop(name)

    def move(self, name: str, due_at: datetime) -> DeadlineView:
        """Move a running deadline (ops override); its wait restarts on the new time."""
        view = self._views[name]
        self._views[name] = view.model_copy(update={"due_at": due_at})
        return view

    def pause(self, name: str) -> None:
        """Keep the time `name` had left when its wait ended (a case opened)."""
        left = max(self._last_due[name] - workflow.now(), timedelta(0))
        self._paused[name] = left // timedelta(microseconds=1)

    def resume(self, name: str, full: timedelta, action: str) -> None:
        """Start `name` again with the time it had left when paused, else `full`."""
        left = self._paused.pop(name, None)
        self.start(name, full if left is None else timedelta(microseconds=left), action)

    def forget_pause(self, name: str) -> None:
        """The next start of `name` gets its full duration (repaired goods redelivered)."""
        self._paused.pop(name, None)

    async def until_due(self, cond: Callable[[], bool], name: str) -> bool:
        """Wait for `cond` until `name` falls due: True if `cond` came first. Without
        a move this is one timer, exactly as before overrides existed, so old
        histories replay."""
        handing_over = False
        try:
            while True:
                due = self._views[name].due_at

                def moved(due: datetime = due) -> bool:
                    view = self._views.get(name)
                    return view is not None and view.due_at != due

                # Without reminders this is the one timer on the due time it always was.
                remind_at = self.reminders.next_at(name, due) if self.reminders is not None else None
                wake = due if remind_at is None else min(due, remind_at)
                try:
                    await self._loop.block(lambda: cond() or moved(), timeout=max(wake - workflow.now(), timedelta(0)))
                except asyncio.TimeoutError:
                    if remind_at is None or workflow.now() >= due:
                        return False
                    if self.reminders.fire(name, self._views[name]):
                        await self._loop.sync()
                    continue
                if cond():
                    return True
        except ContinueAsNewWanted:
            handing_over = True  # the deadline keeps running in the next run
            raise
        finally:
            if not handing_over:
                self._carried.discard(name)
                view = self._views.pop(name, None)
                if view is not None:
                    self._last_due[name] = view.due_at
