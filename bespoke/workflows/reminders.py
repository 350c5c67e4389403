"""Reminders before a deadline's default action, to the party who must act.

The pinned policy's `[reminders]` section says, per deadline, how long before it
falls due to remind (`inspection_window = ["P3D", "P1D"]`). `Deadlines.until_due`
asks `next_at` when to wake up before the due time and calls `fire` when it does;
everything else is here.

Exactly once: a reminder is identified by (deadline, due time, lead) and recorded
in the order's state (`reminders_sent`) in the same workflow task as its timeline
entry, so replays, retries and worker crashes see it sent already; a continued run
carries the state. Nothing here reads a wall clock: only `workflow.now()`.

Moved deadlines move their reminders: a reminder is keyed on the due time, so an
override, an extension or a window that resumes after a case gets its own set.
Catching up: when the wait wakes with several reminders already past (the worker
was down, or a moved deadline left less time than the longest lead), they are all
marked handled and only one is sent, the nearest to the due time, flagged `late`
if it is more than LATE_AFTER behind its time. A deadline already due sends none:
its default action runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from bespoke.domain.events import EventKind, SystemActor
    from bespoke.domain.models import DeadlineView
    from bespoke.rules.durations import duration_words, format_duration

if TYPE_CHECKING:
    from bespoke.workflows.core import OrderCore

REMINDER_PATCH = "deadline-reminders-v1"
# A reminder this far behind its time (a worker outage) says it is late.
LATE_AFTER = timedelta(minutes=5)
# Handled reminder keys the state keeps (oldest dropped first).
KEYS_KEPT = 200

# Who must act before each deadline, by role; the names come from the order.
BUYER_ACTS = ("deposit", "balance", "retention", "inspection_window", "credit_settlement", "aftersales_window",
              "offer_response", "escalation", "return_ship")
SELLER_ACTS = ("return_response", "return_receive", "repair")


class Reminders:
    def __init__(self, wf: OrderCore) -> None:
        self._wf = wf

    @property
    def on(self) -> bool:
        return bool(self._wf.s.reminders_on) and self._wf.policy.reminders is not None

    def _leads(self, name: str) -> tuple[timedelta, ...]:
        return self._wf.policy.reminders.leads(name) if self.on else ()

    @staticmethod
    def _key(name: str, due: datetime, lead: timedelta) -> str:
        return f"{name}|{due.isoformat()}|{format_duration(lead)}"

    def _pending(self, name: str, due: datetime) -> list[timedelta]:
        sent = self._wf.s.reminders_sent
        return [lead for lead in self._leads(name) if self._key(name, due, lead) not in sent]

    def next_at(self, name: str, due: datetime) -> datetime | None:
        """When the wait for `name` (due at `due`) should next wake for a reminder,
        or None: no reminder left before the due time."""
        times = [due - lead for lead in self._pending(name, due)]
        return min(times) if times else None

    def fire(self, name: str, view: DeadlineView) -> bool:
        """Send what is due now for `name`: at most one reminder. True if one was sent."""
        wf, now, due = self._wf, workflow.now(), view.due_at
        if now >= due:
            return False
        past = [lead for lead in self._pending(name, due) if due - lead <= now]
        if not past:
            return False
        sent = wf.s.reminders_sent
        sent.extend(self._key(name, due, lead) for lead in past)
        del sent[:-KEYS_KEPT]
        lead = min(past)
        late = now - (due - lead) > LATE_AFTER
        # On time, the lead as the policy wrote it; late, what is left (whole minutes).
        left = lead if not late else (due - now) // timedelta(minutes=1) * timedelta(minutes=1)
        for party in self.recipients(name):
            message = (f"{'late ' if late else ''}reminder to {party}: {name} is due {due:%Y-%m-%d %H:%M} UTC "
                       f"(in {duration_words(left) if left else 'less than a minute'}); "
                       f"if nothing is done: {view.default_action}")
            wf._event(EventKind.DEADLINE_REMINDER, SystemActor.TIMER, message, data={
                "deadline": name, "due_at": due.isoformat(), "before": format_duration(lead), "to": party,
                "default_action": view.default_action, "late": late,
            })
        return True

    def recipients(self, name: str) -> list[str]:
        """The parties who must act before `name` falls due ("role:name")."""
        wf = self._wf
        s, inp = wf.s, wf.inp
        buyer, seller = f"buyer:{inp.buyer}", f"seller:{inp.seller}"
        if name in BUYER_ACTS:
            return [buyer]
        if name in SELLER_ACTS:
            return [seller]
        if name == "seller_acceptance":
            return ([] if s.accepted else [seller]) + ([] if s.consented else [buyer])
        if name == "cod_remittance":
            return [f"carrier:{s.shipment['carrier']}"] if s.shipment else []
        if name == "dispute_evidence":
            case = s.case
            done = case.finalised if case is not None else []
            return [p for role, p in (("buyer", buyer), ("seller", seller)) if role not in done]
        return []
