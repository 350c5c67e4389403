"""Extra time the parties may ask for, as the pinned policy's `[extensions]` allows
(Taobao, JD): the buyer extends the inspection window once when little of it is
left; the seller extends it for the buyer; the seller asks for more production
time and the buyer accepts (the promised date moves, and with it the late
penalty) or refuses. A policy without the section allows none of them.

Moving a deadline moves its reminders (they are keyed on the due time; see
reminders.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from bespoke.domain.events import EventKind
    from bespoke.domain.extensions import AnswerMoreTimeInput, AskMoreTimeInput, ExtendInspectionInput
    from bespoke.domain.models import ActionResult, ExtensionsNow, Role, Stage
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
        self._require(inp.actor, Role.BUYER, Role.SELLER)
        self._require_stage(Stage.DELIVERED)
        self._extensions()
        self._note(inp.reason, "reason")
        refusal = self._inspection_refusal(inp.actor.party.role.value, inp.extend_seconds, at=workflow.now())
        if refusal is not None:
            raise ValueError(refusal)

    def _inspection_refusal(self, role: str, extend_seconds: int, *, at: datetime | None) -> str | None:
        """Why `role` may not extend the inspection window by `extend_seconds` now
        (None: it may). `at` None leaves out the buyer's "only when little is left"
        (the view says from when instead: a query's clock is the last task's)."""
        s, ext = self.s, self._extensions()
        if "inspection_window" not in self.deadlines or s.case is not None:
            return "the inspection window is not running now (a case is open, or it has ended)"
        key = f"inspection_{role}"
        used = s.extensions_used.get(key, 0)
        if role == "buyer":
            if extend_seconds:
                return f"the buyer extends by the policy's {duration_words(ext.buyer_inspection)}; give no length"
            if used >= ext.buyer_inspection_times:
                return f"the buyer may extend the inspection window {ext.buyer_inspection_times} time(s); already used"
            left = self.deadlines.get("inspection_window").due_at - at if at is not None else None
            if left is not None and left > ext.buyer_inspection_within:
                return (f"the buyer may extend only when {duration_words(ext.buyer_inspection_within)} "
                        f"or less are left ({duration_words(left // timedelta(minutes=1) * timedelta(minutes=1))} left)")
            return None
        if extend_seconds <= 0:
            return "give how long to extend by"
        if used >= ext.seller_inspection_times:
            return f"the seller may extend the inspection window {ext.seller_inspection_times} time(s); already used"
        total = s.extended_seconds.get(key, 0) + extend_seconds
        if timedelta(seconds=total) > ext.seller_inspection_max:
            return (f"the seller may extend the inspection window by at most "
                    f"{duration_words(ext.seller_inspection_max)} in all")
        return None

    def _extensions_now(self) -> ExtensionsNow | None:
        """What the parties may ask for now, by the validators' own rules (the
        validator still decides when the update arrives). None: the policy allows
        no extensions."""
        s, ext = self.s, self.policy.extensions
        if ext is None or s.closing or self._refused is not None:
            return None
        out: dict = {}
        if s.stage is Stage.DELIVERED:
            window = self.deadlines.get("inspection_window")
            if window is not None and self._inspection_refusal("buyer", 0, at=None) is None:
                out["buyer_inspection_from"] = window.due_at - ext.buyer_inspection_within
                out["buyer_inspection_by_seconds"] = int(ext.buyer_inspection.total_seconds())
            if self._inspection_refusal("seller", 1, at=None) is None:
                out["seller_inspection_max_seconds"] = int(
                    (ext.seller_inspection_max - timedelta(seconds=s.extended_seconds.get("inspection_seller", 0)))
                    .total_seconds())
        if s.stage is Stage.IN_PRODUCTION:
            if s.more_time_asked is not None:
                out["more_time_asked_seconds"] = s.more_time_asked
                out["more_time_reason"] = s.more_time_note
            elif self._more_time_refusal(1) is None:
                out["more_time_max_seconds"] = int(
                    (ext.production_max - timedelta(seconds=s.extended_seconds.get("production", 0))).total_seconds())
        return ExtensionsNow(**out)

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
        self._require(inp.actor, Role.SELLER)
        self._require_stage(Stage.IN_PRODUCTION)
        self._extensions()
        self._note(inp.reason, "reason")
        refusal = self._more_time_refusal(inp.extend_seconds)
        if refusal is not None:
            raise ValueError(refusal)

    def _more_time_refusal(self, extend_seconds: int) -> str | None:
        s, ext = self.s, self._extensions()
        if s.promised_at is None or s.markers_passed > 0:
            return "the promised date has passed: more time can only be asked for before it"
        if s.more_time_asked is not None:
            return "a request for more time is already waiting for the buyer's answer"
        if s.extensions_used.get("production_requests", 0) >= ext.production_requests:
            return f"the seller may ask for more time {ext.production_requests} time(s); already used"
        total = s.extended_seconds.get("production", 0) + extend_seconds
        if timedelta(seconds=total) > ext.production_max:
            return f"production may be extended by at most {duration_words(ext.production_max)} in all"
        return None

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
