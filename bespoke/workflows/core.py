"""OrderCore: what every part of the order workflow shares — the state and its
helpers (timeline, stage, who may act, waits, decisions, the read-model sync).

`OrderWorkflow` (order.py) and its handler mixins (actions.py, aftersales.py)
derive from it; the payment plans, cancellation and settlement functions take it
as their first argument.
"""

from __future__ import annotations

import asyncio
import math
import unicodedata
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, TimeoutType
from temporalio.exceptions import TimeoutError as TemporalTimeout

with workflow.unsafe.imports_passed_through():
    from bespoke.activities.ledger import LedgerActivities
    from bespoke.activities.store import StoreActivities
    from bespoke.activities.sync import SyncActivities
    from bespoke.domain import search_attributes as sa
    from bespoke.domain.events import EventKind, SystemActor
    from bespoke.domain.models import (
        Account,
        ActionResult,
        Actor,
        Debt,
        OrderInput,
        OrderProjection,
        ProjectInput,
        ReadModelSync,
        Role,
        Stage,
        TimelineEntry,
    )
    from bespoke.domain.money import format_amount
    from bespoke.domain.state import Case, CaseState, OrderState
    from bespoke.rules import Policy
    from bespoke.workflows.books import Books
    from bespoke.workflows.deadlines import Deadlines
    from bespoke.workflows.loop import Loop
    from bespoke.workflows.next_step import next_step as who_acts_next
    from bespoke.workflows.payment_plans import Plan
    from bespoke.rules.durations import duration_words
    from bespoke.workflows.presets import DB_LOCAL_WRITE, DB_WRITE, RULES

# The timeline the workflow keeps (state, `status`): the newest entries, at most
# this many and this many characters of messages; the read model has them all
# (`order history --all`). Only entries already projected are dropped. One message
# is at most TIMELINE_MESSAGE_MAX characters (a note is at most 4,000; a list of
# evidence items is shortened, the items themselves stay whole on the case).
TIMELINE_KEPT = 500
TIMELINE_KEPT_CHARS = 256 * 1024
TIMELINE_MESSAGE_MAX = 4_500
# One read-model sync sends at most this many timeline entries and decisions; more
# pending (after a long outage of the database) go in several calls.
SYNC_CHUNK_EVENTS = 100
SYNC_CHUNK_DECISIONS = 20
SYNC_CHUNKED_PATCH = "sync-chunked-v1"
# One local activity per sync (postings and projection in one write, recorded as a
# marker) instead of a regular activity per posting and per projection: a sync then
# costs the server no activity task and no workflow task of its own.
SYNC_LOCAL_PATCH = "sync-local-v1"
SYNC_CHUNK_TRANSACTIONS = 20
# Why any action is refused while a cancellation is being carried out.
CANCEL_IN_PROGRESS = "the order is being cancelled: nothing else can be done now"
# A failing rules decision due by the lifecycle is retried after these delays.
DECISION_RETRY_FIRST = timedelta(minutes=1)
DECISION_RETRY_MAX = timedelta(hours=1)
# A decision routed to the workers that have the order's plugins (see _decide):
# how long it waits for one before the order shows as blocked (an update asking
# for it is refused then), and how long each later wait lasts (no history is
# written while it waits).
ROUTED_WAIT_FIRST = timedelta(seconds=10)
ROUTED_WAIT_MAX = timedelta(days=1)
# Decisions of an order that pins plugins are regular activities on the task queue
# of its plugin set, instead of local activities on whichever worker runs it.
RULES_ROUTED_PATCH = "rules-routed-v1"
# An order started with this patch runs every order patch that came before it
# (the ones above and in order.py, actions.py, cancellation.py, payment_plans.py,
# reminders.py) without a marker of its own: one patch marker per order instead of
# one per patch. Each marker costs the server two history events (core adds an
# upsert of TemporalChangeVersion to every patch), a new order took seven. Orders
# started before it have no such marker and ask each patch as they did.
PATCHES_BUNDLED_PATCH = "order-patches-bundled-v1"


def _root_message(err: BaseException) -> str:
    while err.__cause__ is not None:
        err = err.__cause__
    return (getattr(err, "message", None) or str(err))[:500]


def _not_picked_up(err: FailureError) -> bool:
    """The activity timed out waiting for a worker to start it."""
    cause = err.cause
    return (isinstance(err, ActivityError) and isinstance(cause, TemporalTimeout)
            and cause.type is TimeoutType.SCHEDULE_TO_START)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def same_name(a: str, b: str) -> bool:
    # Names compare in NFC, as the CLI and imports store them, so an API caller
    # typing "José" with a combining accent is still this order's buyer.
    return a == b or unicodedata.normalize("NFC", a) == unicodedata.normalize("NFC", b)


class OrderCore:
    inp: OrderInput
    policy: Policy
    s: OrderState
    loop: Loop
    deadlines: Deadlines
    books: Books
    plan: Plan
    _sync_lock: asyncio.Lock

    # ------------------------------------------------------------ timeline

    def _event(self, kind: EventKind, actor: Actor | str, message: str, data: dict[str, Any] | None = None) -> None:
        s = self.s
        s.updated_at = workflow.now()
        s.timeline_seq += 1
        if len(message) > TIMELINE_MESSAGE_MAX:
            message = message[:TIMELINE_MESSAGE_MAX - 1] + "…"
        s.timeline.append(
            TimelineEntry(seq=s.timeline_seq, at=s.updated_at, kind=kind, actor=str(actor), message=message,
                          data=data)
        )

    _bundled = False  # set by OrderWorkflow (PATCHES_BUNDLED_PATCH)

    def _patched(self, patch_id: str) -> bool:
        """`workflow.patched` for an order patch older than PATCHES_BUNDLED_PATCH:
        always true, with no marker, on an order started with that one."""
        return self._bundled or workflow.patched(patch_id)

    def _set_stage(self, stage: Stage) -> None:
        s = self.s
        if stage is s.stage:
            return
        s.stage = stage
        s.updated_at = workflow.now()
        workflow.upsert_search_attributes([sa.STAGE.value_set(stage.value)])
        self._event(EventKind.STAGE, SystemActor.WORKFLOW, f"stage → {stage.value}")

    def _result(self, message: str) -> ActionResult:
        return ActionResult(order_id=self.inp.order_id, stage=self.s.stage, message=message)

    def _money(self, amount: int) -> str:
        return format_amount(amount, self.inp.currency)

    def _part_label(self, part: Any) -> str:
        """What a payment is toward: the price when the plan has one part (a full
        prepayment, a collection account), else the part's name (deposit, balance…)."""
        return "price" if len(self.s.parts) == 1 else part.name

    # ------------------------------------------------------------ who owes what

    def _claim(self, debtor: str, creditor: str, amount: int, why: str) -> None:
        """Record that `debtor` owes `creditor` `amount` (a claim beyond the ledger)."""
        if amount > 0:
            self.s.claims.append(Debt(debtor=debtor, creditor=creditor, amount=amount, why=why, since=workflow.now()))

    def _owes(self) -> list[Debt]:
        """What each party owes: the recorded claims, and the debts the books show
        (credit not repaid, cash a carrier holds, a seller's balance below zero)."""
        s, inp = self.s, self.inp
        owes = list(s.claims)
        at = s.updated_at
        buyer, seller = f"buyer:{inp.buyer}", f"seller:{inp.seller}"
        credit = self.deadlines.get("credit_settlement")
        if s.credit_outstanding > 0 and s.stage in (Stage.COMPLETED, Stage.REFUNDED):
            owes.append(Debt(debtor=buyer, creditor="platform", amount=s.credit_outstanding,
                             why="account-period credit to repay" + (" (overdue)" if s.credit_overdue else ""),
                             since=at, due_at=credit.due_at if credit else None))
        held = s.balances[Account.CARRIER_COD]
        if held > 0 and s.shipment is not None:
            remit = self.deadlines.get("cod_remittance")
            owes.append(Debt(debtor=f"carrier:{s.shipment['carrier']}", creditor="platform", amount=held,
                             why="cash collected at the door, not yet remitted"
                                 + (" (overdue)" if s.cod_overdue else ""),
                             since=at, due_at=remit.due_at if remit else None))
        if s.balances[Account.SELLER] < 0:
            owes.append(Debt(debtor=seller, creditor="platform", amount=-s.balances[Account.SELLER],
                             why="paid out to the buyer beyond what the seller had received", since=at))
        return owes

    # ------------------------------------------------------------ who may act

    _refused: str | None = None

    def _require(self, actor: Actor, *roles: Role) -> None:
        """The action is `actor`'s to take: the party it is (or acts for) has one of
        `roles` and is this order's buyer, seller or shipping carrier. A refusal
        never names the other party."""
        if self._refused is not None:
            raise ValueError(f"this order's input was refused at start: {self._refused}")
        if self.s.blocked is not None and not self.s.timeline_seq:
            raise ValueError(f"this order has not started yet: {self.s.blocked}")
        if actor.for_party is not None:
            self._require_may_act_for(actor)
        party = actor.party
        if party.role not in roles:
            allowed = " or ".join(r.value for r in roles)
            raise ValueError(f"only the {allowed} may do this, not {party.role.value}")
        if party.role is Role.BUYER and not same_name(party.name, self.inp.buyer):
            raise ValueError(f"{party} is not this order's buyer")
        if party.role is Role.SELLER and not same_name(party.name, self.inp.seller):
            raise ValueError(f"{party} is not this order's seller")
        shipment = self.s.shipment
        if party.role is Role.CARRIER and shipment is not None and not same_name(party.name, shipment["carrier"]):
            raise ValueError(f"{party} is not the carrier this order was shipped with")

    def _require_may_act_for(self, actor: Actor) -> None:
        party = actor.for_party
        if party.for_party is not None or party.role in (Role.OPS, Role.INTEGRATION):
            raise ValueError(f"{actor}: an operator or integration acts for a buyer, seller, carrier or payment system")
        if actor.role is Role.OPS:
            info = workflow.current_update_info()
            action = info.name if info is not None else ""
            if action not in getattr(self.policy.on_behalf, party.role.value):
                raise ValueError(f"this order's policy does not let platform operations {action} "
                                 f"for the {party.role.value}")
        elif actor.role is Role.INTEGRATION:
            if party.role not in (Role.CARRIER, Role.SYSTEM):
                raise ValueError("an integration acts only for a carrier or a payment system")
        else:
            raise ValueError(f"only platform operations or an integration may act for another party, "
                             f"not the {actor.role.value}")

    def _require_stage(self, *stages: Stage) -> None:
        if self.s.closing:
            raise ValueError(CANCEL_IN_PROGRESS)
        if self.s.stage not in stages:
            allowed = ", ".join(st.value for st in stages)
            raise ValueError(f"not allowed in stage {self.s.stage.value} (allowed in: {allowed})")

    def _require_party(self, actor: Actor) -> str:
        self._require(actor, Role.BUYER, Role.SELLER)
        return actor.party.role.value

    def _require_case(self, *states: CaseState) -> Case:
        case = self.s.case
        if case is None:
            raise ValueError("there is no open case")
        if states and case.state not in states:
            raise ValueError(f"case {case.number} is {case.state.value}; allowed when "
                             f"{', '.join(st.value for st in states)}")
        return case

    def _limit(self, count: int, limit: int, what: str) -> None:
        """Refuse one more of `what` past the policy's per-order limit."""
        if count >= limit:
            raise ValueError(f"this order already has {count} {what}, the most its policy allows")

    def _note(self, text: str, what: str = "note") -> None:
        limit = self.policy.limits.max_note_length
        if len(text) > limit:
            raise ValueError(f"the {what} is {len(text)} characters long; this order's policy allows at most {limit}")

    # ------------------------------------------------------------ waiting

    async def _wait(self, cond: Callable[[], bool], deadline: str | None) -> bool:
        """Wait for `cond`; False on timeout or when the order is closing."""
        s = self.s

        def done() -> bool:
            return cond() or s.closing or s.closed

        if deadline is None:
            await self.loop.block(done)
        elif not await self.deadlines.until_due(done, deadline):
            return False
        return not (s.closing or s.closed)

    async def _until_closed(self) -> None:
        await self.loop.block(lambda: self.s.closed)

    async def _caught_up(self) -> None:
        await self.loop.caught_up()

    async def _sync(self) -> None:
        await self.loop.sync()

    # ------------------------------------------------------------ decisions and time

    async def _decide(self, activity: Callable[..., Any], request: Any, what: str) -> Any:
        """A rules decision, in a local activity (its result is recorded in history).

        A decision that fails (a plugin error, a timeout) changes nothing. Asked for
        by a party (an update), the failure goes back to them: try again later. Due
        by the lifecycle (a deadline's default action), it is retried with backoff
        until it succeeds, and `status` shows the order as blocked meanwhile."""
        s, delay, wait = self.s, DECISION_RETRY_FIRST, ROUTED_WAIT_FIRST
        queue = self._rules_queue
        while True:
            try:
                if queue is None:
                    result = await workflow.execute_local_activity(activity, request, **RULES)
                else:
                    # Only a worker with the pinned plugin versions polls `queue`.
                    result = await workflow.execute_activity(activity, request, task_queue=queue,
                                                             schedule_to_start_timeout=wait, **RULES)
            except FailureError as err:  # the activity failed or timed out, after its retries
                if not _not_picked_up(err):
                    await self._decision_failed(err, what, delay)
                    delay = min(delay * 2, DECISION_RETRY_MAX)
                    continue
                # No worker with the order's plugins took the decision: it waits for one.
                reason = f"the {what} decision waits for a worker with {self._plugin_words()} installed"
                if not self.loop.in_run_loop():
                    raise ApplicationError(f"{reason}; nothing was changed, try again later",
                                           type="DecisionFailed", non_retryable=True) from None
                self._blocked(reason, f"task queue {queue}")
                if s.timeline_seq:
                    await self._sync()
                wait = ROUTED_WAIT_MAX
                continue
            if s.blocked is not None:
                s.blocked = None
                if s.timeline_seq:  # (blocked before the order was created: nothing to say)
                    self._event(EventKind.DECISION_UNBLOCKED, SystemActor.RULES, f"the {what} decision went through")
            return result

    async def _decision_failed(self, err: FailureError, what: str, delay: timedelta) -> None:
        """A decision failed (after its activity's retries): refused to the party who
        asked; due by the lifecycle, the order shows as blocked and the decision is
        asked again after `delay`."""
        s = self.s
        reason = f"the {what} decision failed: {_root_message(err)}"
        if not self.loop.in_run_loop():
            raise ApplicationError(f"{reason}; nothing was changed, try again later",
                                   type="DecisionFailed", non_retryable=True) from None
        if s.blocked is None and s.timeline_seq:  # (nothing recorded before the order is created)
            self._event(EventKind.DECISION_BLOCKED, SystemActor.RULES, f"{reason}; retrying")
        s.blocked = f"{reason}; retrying every {duration_words(delay)}"
        if s.timeline_seq:
            await self._sync()
        try:
            # Not a place to continue as new: the step that wanted the decision
            # resumes only from a wait of its own.
            await self.loop.block(lambda: False, timeout=delay, stoppable=False)
        except asyncio.TimeoutError:
            pass

    _rules_queue: str | None = None  # set by OrderWorkflow for an order that pins plugins

    def _plugin_words(self) -> str:
        plugins = self.inp.pin.get("plugins") or []
        return ", ".join(sorted({f"{p.get('distribution')} {p.get('version')}" for p in plugins}))

    def _blocked(self, reason: str, where: str) -> None:
        """Show the order as blocked (status) for `reason`; on the timeline once,
        unless nothing was recorded yet (the order is not created before its start
        check has gone through)."""
        s = self.s
        if s.blocked is None and s.timeline_seq:
            self._event(EventKind.DECISION_BLOCKED, SystemActor.RULES, f"{reason} ({where})")
        s.blocked = f"{reason}; waiting for one to poll {where}"

    def _rules_input(self) -> dict[str, Any]:
        """What a rules request names the policy by: the order's pin, and the whole
        policy where the input carries it (orders started before the policy store)."""
        if self.inp.policy is not None:
            return {"policy": self.inp.policy, "pin": self.inp.pin}
        return {"pin": self.inp.pin}

    def _next_decision_id(self, kind: str) -> str:
        self.s.decision_seq += 1
        return f"{self.inp.order_id}:{kind}:{self.s.decision_seq}"

    def _record_decision(self, explanation: dict) -> None:
        self.s.decisions.append(explanation)

    def _days_late(self, at: datetime) -> int:
        promised = self.s.promised_at
        if promised is None or at <= promised:
            return 0
        return math.ceil((at - promised) / timedelta(days=1))

    def _days_since_delivery(self) -> int:
        if self.s.delivered_at is None:
            return 0
        return max((workflow.now() - self.s.delivered_at) // timedelta(days=1), 0)

    # ------------------------------------------------------------ read model

    async def _flush(self) -> None:
        """Post what the books hold unposted, then project the order, its new
        timeline entries and its new decisions (both activities are idempotent)."""
        s = self.s
        async with self._sync_lock:
            if self._sync_local:
                await self._flush_local()
                self._trim_timeline()
                return
            while s.unposted:
                await workflow.execute_activity_method(LedgerActivities.post_transaction, s.unposted[0], **DB_WRITE)
                s.unposted.pop(0)
            first_held = s.timeline_seq - len(s.timeline) + 1  # the timeline may be trimmed at its head
            events = s.timeline[max(s.projected_seq + 1 - first_held, 0):]
            decisions = s.decisions[s.projected_decisions:]
            upto_seq, upto_decisions = s.timeline_seq, len(s.decisions)
            # Bounded payloads: rarely more than a few entries are pending; when many
            # are (the database was down for long), they go in chunks. Asked only
            # then, so histories that never needed it replay without the marker.
            if ((len(events) > SYNC_CHUNK_EVENTS or len(decisions) > SYNC_CHUNK_DECISIONS)
                    and self._patched(SYNC_CHUNKED_PATCH)):
                while len(events) > SYNC_CHUNK_EVENTS or len(decisions) > SYNC_CHUNK_DECISIONS:
                    chunk, events = events[:SYNC_CHUNK_EVENTS], events[SYNC_CHUNK_EVENTS:]
                    some, decisions = decisions[:SYNC_CHUNK_DECISIONS], decisions[SYNC_CHUNK_DECISIONS:]
                    await workflow.execute_activity_method(
                        StoreActivities.project_order,
                        ProjectInput(projection=self._projection(), timeline=chunk, decisions=some,
                                     carrier=self._carrier()), **DB_WRITE,
                    )
                    if chunk:
                        s.projected_seq = chunk[-1].seq
                    s.projected_decisions += len(some)
            await workflow.execute_activity_method(
                StoreActivities.project_order,
                ProjectInput(projection=self._projection(), timeline=events, decisions=decisions,
                             owes=self._owes(), carrier=self._carrier()),
                **DB_WRITE,
            )
            s.projected_seq, s.projected_decisions = upto_seq, upto_decisions
            self._trim_timeline()

    _sync_local = False  # set by OrderWorkflow ("sync-local-v1")

    async def _flush_local(self) -> None:
        """`_flush` for orders on "sync-local-v1": one `sync_read_model` write carries
        the pending postings and the projection; more than a chunk's worth pending
        (the database was down for long) goes in several, the last with the debts."""
        s = self.s
        first_held = s.timeline_seq - len(s.timeline) + 1
        events = s.timeline[max(s.projected_seq + 1 - first_held, 0):]
        decisions = s.decisions[s.projected_decisions:]
        while True:
            txns = s.unposted[:SYNC_CHUNK_TRANSACTIONS]
            chunk, some = events[:SYNC_CHUNK_EVENTS], decisions[:SYNC_CHUNK_DECISIONS]
            last = (len(s.unposted) <= SYNC_CHUNK_TRANSACTIONS and len(events) <= SYNC_CHUNK_EVENTS
                    and len(decisions) <= SYNC_CHUNK_DECISIONS)
            await self._write_read_model(ReadModelSync(
                transactions=txns,
                project=ProjectInput(projection=self._projection(), timeline=chunk, decisions=some,
                                     owes=self._owes() if last else None, carrier=self._carrier())))
            del s.unposted[:len(txns)]
            if chunk:
                s.projected_seq = chunk[-1].seq
            s.projected_decisions += len(some)
            events, decisions = events[len(chunk):], decisions[len(some):]
            if last:
                return

    async def _write_read_model(self, data: ReadModelSync) -> None:
        try:
            await workflow.execute_local_activity_method(SyncActivities.sync_read_model, data, **DB_LOCAL_WRITE)
        except FailureError:  # (a local activity's failure arrives as its cause, not wrapped in ActivityError)
            # The database did not take it within the local attempts: hand it to the
            # server, which retries it until it succeeds (the order waits meanwhile).
            await workflow.execute_activity_method(SyncActivities.sync_read_model, data, **DB_WRITE)

    def _trim_timeline(self) -> None:
        """Drop the oldest entries the read model already has, past the bounds."""
        s = self.s
        chars = sum(len(e.message) for e in s.timeline)
        drop = 0
        while drop < len(s.timeline) and s.timeline[drop].seq <= s.projected_seq and (
                len(s.timeline) - drop > TIMELINE_KEPT or chars > TIMELINE_KEPT_CHARS):
            chars -= len(s.timeline[drop].message)
            drop += 1
        if drop:
            del s.timeline[:drop]

    def _projection(self) -> OrderProjection:
        inp, s = self.inp, self.s
        next_step, next_due = who_acts_next(self, s.current_part())
        return OrderProjection(
            order_id=inp.order_id, stage=s.stage, title=inp.title, buyer=inp.buyer,
            seller=inp.seller, payment_plan=inp.plan.label(), price=inp.price,
            currency=inp.currency, policy_name=self.policy.name, policy_version=self.policy.version,
            paid=s.paid, refunded=s.refunded, released_to_seller=s.balances[Account.SELLER],
            created_at=s.created_at, updated_at=s.updated_at,
            next_step=_cut(next_step, 300), next_step_due=next_due,
            blocked=_cut(s.blocked, 500) if s.blocked is not None else None,
        )

    def _carrier(self) -> str | None:
        return self.s.shipment["carrier"] if self.s.shipment else None
