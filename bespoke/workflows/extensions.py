"""Extra time the parties may ask for, as the pinned policy's `[extensions]` allows
(Taobao, JD): the buyer extends the inspection window once when little of it is
left; the seller extends it for the buyer; the seller asks for more production
time and the buyer accepts (the promised date moves, and with it the late
penalty) or refuses. A policy without the section allows none of them.

Moving a deadline moves its reminders (they are keyed on the due time; see
reminders.py)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from bespoke.domain.events import EventKind
    from bespoke.domain.extensions import AnswerMoreTimeInput, AskMoreTimeInput, ExtendInspectionInput
    from bespoke.domain.models import ActionResult, Role, Stage
    from bespoke.rules.durations import duration_words, format_duration
    from bespoke.rules.notices import Extensions
    from bespoke.workflows.core import OrderCore

PROMISED_ACTION = "late penalty accrues per day; after the grace period the buyer may cancel free"


class PartyExtensions(OrderCore):
    def _extensions(self) -> Extensions:
        ext = self.policy.extensions
        if ext is None:
            raise ValueError("this order's policy allows no extensions")
        return ext

    # ------------------------------------------------------------ inspection window

    @workflow.update
    async def extend_inspection(self, inp: ExtendInspectionInput) -> ActionResult:
        s, ext = self.s, self._extensions()
        role = inp.actor.party.role.value
        by = ext.buyer_inspection if role == "buyer" else timedelta(seconds=inp.extend_seconds)
        view = self.deadlines.get("inspection_window")
        due = view.due_at + by
        self.deadlines.move("inspection_window", due)
        key = f"inspection_{role}"
        s.extensions_used[key] = s.extensions_used.get(key, 0) + 1
        s.extended_seconds[key] = s.extended_seconds.get(key, 0) + int(by.total_seconds())
        what = f"inspection window extended by {duration_words(by)} to {due:%Y-%m-%d %H:%M} UTC"
        self._event(EventKind.DEADLINE_EXTENDED, inp.actor, what + (f": {inp.reason}" if inp.reason else ""), data={
            "deadline": "inspection_window", "due_at": due.isoformat(), "was_due_at": view.due_at.isoformat(),
            "by": format_duration(by), "party": role})
        await self._sync()
        await self._caught_up()
        return self._result(what)

    @extend_inspection.validator
    def _validate_extend_inspection(self, inp: ExtendInspectionInput) -> None:
        s = self.s
        self._require(inp.actor, Role.BUYER, Role.SELLER)
        self._require_stage(Stage.DELIVERED)
        ext = self._extensions()
        self._note(inp.reason, "reason")
        if "inspection_window" not in self.deadlines or s.case is not None:
            raise ValueError("the inspection window is not running now (a case is open, or it has ended)")
        role = inp.actor.party.role.value
        key = f"inspection_{role}"
        used = s.extensions_used.get(key, 0)
        if role == "buyer":
            if inp.extend_seconds:
                raise ValueError(f"the buyer extends by the policy's {duration_words(ext.buyer_inspection)}; "
                                 "give no length")
            if used >= ext.buyer_inspection_times:
                raise ValueError(f"the buyer may extend the inspection window {ext.buyer_inspection_times} "
                                 "time(s); already used")
            left = self.deadlines.get("inspection_window").due_at - workflow.now()
            if left > ext.buyer_inspection_within:
                raise ValueError(f"the buyer may extend only when {duration_words(ext.buyer_inspection_within)} "
                                 f"or less are left ({duration_words(left // timedelta(minutes=1) * timedelta(minutes=1))} left)")
        else:
            if inp.extend_seconds <= 0:
                raise ValueError("give how long to extend by")
            if used >= ext.seller_inspection_times:
                raise ValueError(f"the seller may extend the inspection window {ext.seller_inspection_times} "
                                 "time(s); already used")
            total = s.extended_seconds.get(key, 0) + inp.extend_seconds
            if timedelta(seconds=total) > ext.seller_inspection_max:
                raise ValueError(f"the seller may extend the inspection window by at most "
                                 f"{duration_words(ext.seller_inspection_max)} in all")

    # ------------------------------------------------------------ production time

    @workflow.update
    async def ask_more_time(self, inp: AskMoreTimeInput) -> ActionResult:
        s = self.s
        s.more_time_asked = inp.extend_seconds
        s.more_time_note = inp.reason
        s.extensions_used["production_requests"] = s.extensions_used.get("production_requests", 0) + 1
        by = timedelta(seconds=inp.extend_seconds)
        what = f"seller asks for {duration_words(by)} more production time"
        self._event(EventKind.MORE_TIME_ASKED, inp.actor, f"{what}: {inp.reason}", data={
            "deadline": "promised_delivery", "by": format_duration(by),
            "due_at": (s.promised_at + by).isoformat(), "was_due_at": s.promised_at.isoformat()})
        await self._sync()
        await self._caught_up()
        return self._result(what + "; waiting for the buyer's answer")

    @ask_more_time.validator
    def _validate_ask_more_time(self, inp: AskMoreTimeInput) -> None:
        s = self.s
        self._require(inp.actor, Role.SELLER)
        self._require_stage(Stage.IN_PRODUCTION)
        ext = self._extensions()
        self._note(inp.reason, "reason")
        if s.promised_at is None or s.markers_passed > 0:
            raise ValueError("the promised date has passed: more time can only be asked for before it")
        if s.more_time_asked is not None:
            raise ValueError("a request for more time is already waiting for the buyer's answer")
        if s.extensions_used.get("production_requests", 0) >= ext.production_requests:
            raise ValueError(f"the seller may ask for more time {ext.production_requests} time(s); already used")
        total = s.extended_seconds.get("production", 0) + inp.extend_seconds
        if timedelta(seconds=total) > ext.production_max:
            raise ValueError(f"production may be extended by at most {duration_words(ext.production_max)} in all")

    @workflow.update
    async def answer_more_time(self, inp: AnswerMoreTimeInput) -> ActionResult:
        s = self.s
        by = timedelta(seconds=s.more_time_asked)
        s.more_time_asked = None
        if inp.accept:
            s.promised_at = s.promised_at + by
            s.extended_seconds["production"] = s.extended_seconds.get("production", 0) + int(by.total_seconds())
            if "promised_delivery" in self.deadlines:
                self.deadlines.move("promised_delivery", s.promised_at)
            what = f"buyer accepted {duration_words(by)} more production time: promised by {s.promised_at:%Y-%m-%d %H:%M} UTC"
        else:
            what = f"buyer refused more production time: the promised date stays {s.promised_at:%Y-%m-%d %H:%M} UTC"
        self._event(EventKind.MORE_TIME_ANSWERED, inp.actor, what + (f": {inp.note}" if inp.note else ""), data={
            "deadline": "promised_delivery", "accepted": inp.accept, "by": format_duration(by),
            "due_at": s.promised_at.isoformat()})
        await self._sync()
        await self._caught_up()
        return self._result(what)

    @answer_more_time.validator
    def _validate_answer_more_time(self, inp: AnswerMoreTimeInput) -> None:
        self._require(inp.actor, Role.BUYER)
        self._require_stage(Stage.IN_PRODUCTION)
        self._note(inp.note, "note")
        if self.s.more_time_asked is None:
            raise ValueError("the seller has not asked for more time")
