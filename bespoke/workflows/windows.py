"""The after-sales window's arithmetic: it closes N days (the policy's) after the
goods were last delivered, and the time a case kept it paused does not count. One
definition, used by the deadline in `status`, the return-terms rule's day count and
`policy show`'s wording."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from bespoke.workflows.core import OrderCore


class Windows(OrderCore):
    def _case_time(self) -> timedelta:
        """How long closed cases were open since the goods were last delivered:
        time that does not count toward the after-sales window."""
        s = self.s
        return sum(((c.closed_at - c.opened_at) for c in s.cases
                    if c.closed_at is not None and s.delivered_at is not None and c.opened_at >= s.delivered_at),
                   timedelta(0))

    def _window_due(self) -> datetime:
        """The after-sales window closes N days (the policy's) after delivery, later
        by the time cases kept it paused."""
        return self.s.delivered_at + self.policy.deadlines.aftersales_window + self._case_time()

    def _window_days(self) -> int:
        """Days of the after-sales window used so far, counting the day begun (day 1
        is the first 24 hours after delivery), as the return rules count them."""
        s = self.s
        if s.delivered_at is None:
            return 0
        used = max(workflow.now() - s.delivered_at - self._case_time(), timedelta(0))
        days = math.ceil(used / timedelta(days=1))
        window = self.policy.deadlines.aftersales_window
        if used <= window:  # open, as the deadline says: never more days than the window has
            return min(days, window // timedelta(days=1))
        return days
