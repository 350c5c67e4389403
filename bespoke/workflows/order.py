"""OrderWorkflow: one durable workflow per made-to-order purchase.

`run` walks the lifecycle top to bottom, one step per phase: the seller accepts,
the order is funded (deposit or credit), production and the quality check, the
balance, shipment, delivery, the buyer's inspection (or the carrier's cash
remittance), settlement, and the after-sales window. Every waiting step has a
deadline from the pinned policy and a default action.

Where the rest lives: the parties' updates in `actions.py` (before delivery) and
`aftersales.py` (cases); the payment plans in `payment_plans.py`; cancelling in
`cancellation.py`; releasing escrow in `settlement.py`; postings in `books.py`;
deadlines in `deadlines.py`; how the run waits, syncs the read model and hands
over to a new run in `loop.py`; the state itself in `bespoke.domain.state`.

Before a run nears Temporal's limits (updates, events), the order continues as
new: the state model is carried whole into the next run, which resumes the phase
it was in with every running deadline at its original due time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from bespoke.domain import search_attributes as sa
    from bespoke.domain.events import EventKind
    from bespoke.domain.models import (
        Account,
        ActionResult,
        Actor,
        OrderInput,
        OrderResult,
        OrderView,
        PolicyRef,
        Role,
        Stage,
    )
    from bespoke.domain.state import OrderState, Phase
    from bespoke.activities.rules import PolicyCheckRequest, pinned_policy_check
    from bespoke.domain.checks import order_problems
    from bespoke.rules import CancellationFacts, Policy, PolicyPin, decision_entry
    from bespoke.rules.plugins import rules_task_queue
    from bespoke.rules.pins import load_pinned
    from bespoke.workflows import cancellation
    from bespoke.workflows.actions import Actions
    from bespoke.workflows.core import PATCHES_BUNDLED_PATCH, RULES_ROUTED_PATCH, SYNC_LOCAL_PATCH, same_name
    from bespoke.workflows.aftersales import AfterSales
    from bespoke.workflows.books import Books
    from bespoke.workflows.deadlines import Deadlines
    from bespoke.workflows.extensions import PartyExtensions
    from bespoke.workflows.loop import ContinueAsNewWanted, Loop
    from bespoke.workflows.next_step import amount_due
    from bespoke.workflows.next_step import next_step as who_acts_next
    from bespoke.workflows.payment_plans import plan_for
    from bespoke.workflows.reminders import REMINDER_PATCH, Reminders
    from bespoke.workflows.settlement import settle

AFTERSALES_PATCH = "aftersales-v1"
# The after-sales window is N days from delivery (it used to start at completion,
# while `policy show` and the return rules counted from delivery).
WINDOW_FROM_DELIVERY_PATCH = "aftersales-window-from-delivery-v1"
# The workflow checks its own start input (and the pinned policy's hash).
INPUT_CHECK_PATCH = "validate-input-v1"
# An order someone other than the buyer (or ops for the buyer) created waits for
# the buyer's consent before any of the buyer's money is committed.
CONSENT_PATCH = "buyer-consent-v1"
# One read-model sync per reaction instead of one per sync request (see loop.py).
SYNC_BATCHED_PATCH = "sync-batched-v1"
# A run continues as new past this many history events (Temporal warns at 10,240
# and fails the run at 51,200), or when the server suggests it, or after the
# policy's `limits.max_updates_per_run` accepted updates (the server allows 2,000).
HISTORY_EVENTS_PER_RUN = 8_000
TIMER = Actor(role=Role.SYSTEM, name="timer")


@workflow.defn
class OrderWorkflow(Actions, AfterSales, PartyExtensions):
    @workflow.init
    def __init__(self, inp: OrderInput) -> None:
        continued = inp.state is not None
        # Asked before any other patch (core.py): a run started with it takes every
        # older patch without a marker each; one started before it asks them one by one.
        self._bundled = workflow.patched(PATCHES_BUNDLED_PATCH)
        self.inp = inp.model_copy(update={"state": None}) if continued else inp
        self._refused: str | None = None  # why this order's input was refused at start
        # The policy's terms, which the workflow reads itself: from the whole policy
        # (orders started before the policy store) or from `terms`, checked against
        # the stored policy before the order starts (the rules load it by the pin).
        self._terms_sha: str | None = None
        try:
            if inp.policy is not None:
                self.policy, policy_sha = load_pinned(inp.policy)
            elif inp.terms is not None:
                self.policy, self._terms_sha = load_pinned(inp.terms)
                # Verified by the start check (a continued run's input is the one
                # its first run verified).
                policy_sha = str(inp.pin.get("sha256", ""))[:64] if continued else None
            else:
                raise ValueError("the input carries neither the policy nor its terms")
            unreadable = None
        except ValueError as err:
            self.policy, policy_sha = Policy(name="unreadable", version="0"), None
            unreadable = f"policy: not a valid policy ({str(err).splitlines()[0][:200]})"
        self._policy_sha = policy_sha  # computed from the content or verified, never the claimed one
        # An order that pins plugins has its decisions made only by a worker with
        # those plugin versions installed: on the rules queue of its plugin set.
        try:
            plugins = PolicyPin.model_validate(inp.pin).plugins
        except ValueError as err:
            plugins = []
            unreadable = unreadable or f"pin: not a valid policy pin ({str(err).splitlines()[0][:200]})"
        if plugins and self._patched(RULES_ROUTED_PATCH):
            self._rules_queue = rules_task_queue(workflow.info().task_queue,
                                                 [(p.distribution, p.version) for p in plugins])
        self.plan = plan_for(inp.plan.kind)
        now = workflow.now()
        self.s = inp.state if continued else OrderState(created_at=now, updated_at=now,
                                                         parts=self.plan.schedule(inp))
        self.books = Books(self.s, order_id=inp.order_id, currency=inp.currency)
        self._sync_lock = asyncio.Lock()
        self._updates = 0  # accepted updates in this run
        self._resuming = continued  # the lifecycle resumes `s.phase` instead of entering it
        # Decided here, not in run(), because an update can arrive in the order's
        # first workflow task and its handler runs before run() starts.
        batched = self._patched(SYNC_BATCHED_PATCH)
        self.loop = Loop(batched=batched, flush=self._flush, continue_wanted=self._continue_wanted)
        # Each run decides (a continued run of an older order takes the new path).
        self._sync_local = batched and self._patched(SYNC_LOCAL_PATCH)
        self.deadlines = Deadlines(self.s, self.loop, continued=continued)
        if self.s.reminders_on is None and self.policy.reminders is not None:
            # Decided once per order (a continued run keeps the answer it carries).
            self.s.reminders_on = self._patched(REMINDER_PATCH)
        self.deadlines.reminders = Reminders(self)
        # The workflow checks its own input, as the CLI does (orders started before
        # this patch were checked by the client only, and replay as they ran).
        self._checks_input = not continued and self._patched(INPUT_CHECK_PATCH)
        if self._checks_input:
            problems = [unreadable] if unreadable else order_problems(inp, self.policy, content_sha256=policy_sha)
            if problems:
                self._refused = "; ".join(problems)
        if not continued and self._patched(CONSENT_PATCH):
            # No buyer money is committed on an order the buyer has not agreed to:
            # one a seller proposed waits for the buyer's consent.
            creator = inp.created_by
            self.s.consented = creator.role is Role.OPS or (
                creator.party.role is Role.BUYER and same_name(creator.party.name, inp.buyer))
        if not continued:
            # Set here so an update in the first workflow task already sees it.
            self.deadlines.start("seller_acceptance", self.policy.deadlines.seller_acceptance,
                                 "order cancelled, no cost to anyone")

    # ------------------------------------------------------------------ run

    @workflow.run
    async def run(self, inp: OrderInput) -> OrderResult:
        self.loop.enter()
        s = self.s
        if self._refused is not None:
            # Before anything is recorded: the read model never shows this order.
            raise ApplicationError(f"order input refused: {self._refused}", type="InvalidOrderInput",
                                   non_retryable=True)
        if self._checks_input:
            check = await self._decide(pinned_policy_check, PolicyCheckRequest(
                **self._rules_input(), terms_sha256=self._terms_sha), "policy check")
            pin_problems = [p for p in check.problems if p.startswith(("pin:", "terms:"))]
            if pin_problems:
                raise ApplicationError(
                    f"order input refused: policy pin {self.policy.name}@{self.policy.version} (sha256 "
                    f"{str(inp.pin.get('sha256'))[:12]}): {'; '.join(pin_problems[:3])}",
                    type="InvalidOrderInput", non_retryable=True)
            if check.problems:
                raise ApplicationError(
                    f"order input refused: policy: {self.policy.name}@{self.policy.version} fails `bespoke policy "
                    f"check`: {'; '.join(check.problems[:3])}", type="InvalidOrderInput", non_retryable=True)
            if self._policy_sha is None:
                self._policy_sha = str(inp.pin.get("sha256"))
        if not self._resuming:
            workflow.upsert_search_attributes([
                # Names in clear unless the client indexed them by a keyed hash
                # (payload encryption on): search attributes are not encrypted.
                sa.STAGE.value_set(s.stage.value), sa.BUYER.value_set(inp.index_buyer or inp.buyer),
                sa.SELLER.value_set(inp.index_seller or inp.seller), sa.PAYMENT_PLAN.value_set(inp.plan.kind.value),
            ])
            self._event(EventKind.CREATED, inp.created_by,
                        f"order created: {inp.title or 'untitled'}, {self._money(inp.price)}, "
                        f"plan {inp.plan.label()}, policy {self.policy.name}@{self.policy.version}")
            await self._sync()
        try:
            await self._lifecycle()
        except ContinueAsNewWanted:
            self.loop.hand_over()
            s.runs += 1
            workflow.continue_as_new(self.inp.model_copy(update={"state": s}))
        await self.loop.finish()
        return OrderResult(
            order_id=inp.order_id, stage=s.stage, paid=s.paid, refunded=s.refunded,
            released_to_seller=s.balances[Account.SELLER], platform_fee=s.balances[Account.PLATFORM_FEE],
        )

    def _continue_wanted(self) -> bool:
        if self.s.closing or self.s.closed:
            return False  # a closing order ends in this run
        info = workflow.info()
        return (self._updates >= self.policy.limits.max_updates_per_run
                or info.get_current_history_length() >= HISTORY_EVENTS_PER_RUN
                or info.is_continue_as_new_suggested())

    def _result(self, message: str) -> ActionResult:
        # Every update handler returns through here: count it for continue-as-new.
        self._updates += 1
        return super()._result(message)

    async def _lifecycle(self) -> None:
        """The phases in order; each step returns False when the order closed."""
        s = self.s
        steps: list[tuple[Phase, Callable[[bool], Awaitable[bool]]]] = [
            (Phase.ACCEPTANCE, self._acceptance),
            (Phase.FUNDING, lambda resuming: self.plan.fund(self, resuming)),
            (Phase.PRODUCTION, self._production),
            (Phase.BALANCE, self._balance),
            (Phase.SHIPMENT, self._shipment),
            (Phase.DELIVERY, self._delivery),
            (Phase.INSPECTION, self._after_delivery),
            (Phase.SETTLEMENT, self._settlement),
            (Phase.COMPLETED, self._completion),
            (Phase.REPAYMENT, self._repayment),
        ]
        for phase, step in steps:
            if phase < s.phase:
                continue
            resuming, self._resuming = self._resuming and phase == s.phase, False
            s.phase = phase
            if not await step(resuming):
                if not s.closed:
                    await self._until_closed()
                if not (s.credit_kept and not s.credit_done):
                    return
                s.phase = Phase.REPAYMENT  # refunded before completion, with credit still owed
        s.phase = Phase.DONE

    # ------------------------------------------------------------------ steps

    async def _acceptance(self, resuming: bool) -> bool:
        """The seller accepts and the buyer agrees (the deadline is set in __init__)."""
        s = self.s
        if not await self._wait(lambda: s.accepted and s.consented, "seller_acceptance"):
            if not s.closing:
                who = ("seller did not accept" if not s.accepted else "buyer did not agree to the order")
                await cancellation.cancel(self, TIMER, cancellation.ACCEPTANCE_TIMEOUT, f"{who} in time")
            return False
        return True

    async def _take_deposit(self, resuming: bool) -> bool:
        """The deposit (or the full prepayment); called by the payment plan."""
        s = self.s
        self._set_stage(Stage.AWAITING_DEPOSIT)
        self.deadlines.start("deposit", self.policy.deadlines.deposit, "order cancelled, payments refunded")
        await self._sync()
        if not await self._wait(lambda: s.parts[0].due == 0, "deposit"):
            if not s.closing:
                await cancellation.cancel(self, TIMER, cancellation.DEPOSIT_TIMEOUT, "deposit not paid in time")
            return False
        s.part_index = 1
        return True

    async def _production(self, resuming: bool) -> bool:
        """Production and a passed quality check, with the late-delivery markers."""
        s, d = self.s, self.policy.deadlines
        if not resuming:
            self._set_stage(Stage.IN_PRODUCTION)
            s.promised_at = workflow.now() + timedelta(days=self.inp.production_days)
            self.deadlines.mark("promised_delivery", s.promised_at,
                                "late penalty accrues per day; after the grace period the buyer may cancel free")
            await self._sync()
        while True:
            # Recomputed each time round: the buyer may agree to a later promised date.
            promised = s.promised_at
            markers = [
                (promised, EventKind.PROMISED_DATE_PASSED,
                 f"promised date passed: late penalty accrues at {self.policy.fees.late_penalty_bps_per_day} bp/day"),
                (promised + d.production_grace, EventKind.GRACE_PERIOD_OVER,
                 "grace period over: the buyer may cancel free of cost"),
            ][s.markers_passed:]
            timeout = max(markers[0][0] - workflow.now(), timedelta(0)) if markers else None
            try:
                await self.loop.block(lambda: s.qc_passed or s.closing or s.closed or s.promised_at != promised,
                                      timeout=timeout)
            except asyncio.TimeoutError:
                _, kind, message = markers.pop(0)
                s.markers_passed += 1
                self._event(kind, TIMER, message)
                await self._sync()
                continue
            if s.promised_at != promised and not (s.qc_passed or s.closing or s.closed):
                continue
            return not (s.closing or s.closed)

    async def _balance(self, resuming: bool) -> bool:
        """Balance parts due after the quality check (staged plans)."""
        s = self.s
        last_pre_ship = len(s.parts) - (1 if self.plan.has_retention(s.parts) else 0)
        while s.part_index < last_pre_ship:
            part = s.parts[s.part_index]
            if not resuming:
                self._set_stage(Stage.AWAITING_BALANCE)
                self.deadlines.start("balance", self.policy.deadlines.balance,
                                     "order cancelled; costs allocated by the policy")
                self._event(EventKind.BALANCE_DUE, TIMER, f"{part.name} due: {self._money(part.due)}")
                await self._sync()
            resuming = False
            if not await self._wait(lambda: part.due == 0, "balance"):
                if not s.closing:
                    await cancellation.cancel(self, TIMER, cancellation.BALANCE_TIMEOUT, "balance not paid in time")
                return False
            s.part_index += 1
        return True

    async def _shipment(self, resuming: bool) -> bool:
        await self._sync()
        return await self._wait(lambda: self.s.shipment is not None, None)

    async def _delivery(self, resuming: bool) -> bool:
        s = self.s
        await self._wait(lambda: s.delivered or s.refused, None)
        if s.closing or s.closed:
            return False
        if s.refused:
            refused_by = s.refused_by or Actor(role=Role.CARRIER, name=s.shipment["carrier"])
            await cancellation.cancel(self, refused_by, cancellation.COD_REFUSED,
                                      "buyer refused the goods at the door; goods return to the seller")
            return False
        return True

    async def _after_delivery(self, resuming: bool) -> bool:
        """The buyer's inspection, or the carrier's cash remittance (COD)."""
        if not resuming:
            # After-sales (returns, repairs, disputes) arrived with this patch;
            # orders whose history predates it replay the original path.
            self.s.aftersales = self._patched(AFTERSALES_PATCH)
            if self.s.aftersales:
                self.s.window_from_delivery = self._patched(WINDOW_FROM_DELIVERY_PATCH)
        return await self.plan.after_delivery(self, resuming)

    async def _settlement(self, resuming: bool) -> bool:
        """Escrow released; then the retention of a 30/60/10 plan, due after acceptance."""
        s, d = self.s, self.policy.deadlines
        if not resuming:
            await settle(self, "settlement")
        if not self.plan.has_retention(s.parts):
            return True
        part = s.parts[-1]
        if not resuming:
            self._set_stage(Stage.AWAITING_BALANCE)
            self.deadlines.start("retention", d.retention,
                                 "order completed; the unpaid retention is recorded as the buyer's debt")
            self._event(EventKind.RETENTION_DUE, TIMER, f"retention due after acceptance: {self._money(part.due)}")
            await self._sync()
        if await self._wait(lambda: part.due == 0, "retention"):
            await settle(self, "retention")
        else:
            self._event(EventKind.RETENTION_OVERDUE, TIMER, f"retention of {self._money(part.due)} not paid in time: "
                        "recorded as the buyer's debt to the seller")
            self._claim(f"buyer:{self.inp.buyer}", f"seller:{self.inp.seller}", part.due,
                        "retention not paid after acceptance")
            if part.paid:
                await settle(self, "retention")
        return True

    async def _completion(self, resuming: bool) -> bool:
        """Completed: the after-sales window and the plan's own jobs (credit
        repayment) run side by side."""
        if not resuming:
            self.plan.start_settlement_terms(self)
            self._set_stage(Stage.COMPLETED)
            await self._sync()
        if self.s.aftersales:
            await self.loop.gather(self._aftersales_window(), *self.plan.completion_jobs(self))
        else:
            for job in self.plan.completion_jobs(self):
                await job
        return True

    async def _repayment(self, resuming: bool) -> bool:
        """A refund closed the order with account-period credit still owed: it is
        repaid (or falls overdue) as the settlement period says."""
        if self.s.credit_kept and not self.s.credit_done:
            for job in self.plan.completion_jobs(self):
                await job
        return True

    # ------------------------------------------------------------------ queries

    @workflow.query
    def status(self, timeline_limit: int | None = None, timeline_before: int | None = None) -> OrderView:
        """The order's live state, with a page of its timeline: the newest entries
        (at most `timeline_limit`, all the workflow keeps by default), before seq
        `timeline_before` if given. Bounded: the workflow keeps at most
        TIMELINE_KEPT entries (the read model has every one)."""
        inp, s = self.inp, self.s
        part = s.current_part()
        page = s.timeline
        if timeline_before is not None:
            page = [e for e in page if e.seq < timeline_before]
        if timeline_limit is not None:
            page = page[-max(timeline_limit, 0):] if timeline_limit > 0 else []
        next_step, next_due = who_acts_next(self, part)
        first = page[0].seq if page else min(timeline_before or s.timeline_seq + 1, s.timeline_seq + 1)
        more = first > 1
        return OrderView(
            order_id=inp.order_id, stage=s.stage, title=inp.title, buyer=inp.buyer, seller=inp.seller,
            policy=PolicyRef(name=self.policy.name, version=self.policy.version, sha256=self._policy_sha or ""),
            payment_plan=inp.plan.label(), price=inp.price, currency=inp.currency,
            paid=s.paid, refunded=s.refunded, released_to_seller=s.balances[Account.SELLER],
            platform_fee=s.balances[Account.PLATFORM_FEE], escrow=s.balances[Account.ESCROW],
            costs_incurred=s.costs_incurred(), salvage_value=s.salvage_value, late_penalty=s.late_penalty,
            credit_outstanding=s.credit_outstanding, amount_due=amount_due(self, part),
            next_step=next_step, next_step_due=next_due, owes=self._owes(),
            promised_at=s.promised_at, deadlines=[d for d in self.deadlines.views() if d.name != "arbitration"],
            milestones=s.milestones, payments=s.payments, shipment=s.shipment, qc_failures=s.qc_failures,
            timeline=page, timeline_total=s.timeline_seq, timeline_more=more,
            decisions=[decision_entry(d) for d in s.decisions],
            created_at=s.created_at, updated_at=s.updated_at,
            cases=[c.view() for c in s.cases], open_case=s.case.view() if s.case is not None else None,
            repair_rounds=s.repair_rounds, runs=s.runs, blocked=s.blocked, buyer_consented=s.consented,
            extensions=self._extensions_now(),
        )

    @workflow.query
    def quote_facts(self, by: Role, as_of: datetime | None = None) -> CancellationFacts:
        """The facts a cancellation by `by` would be decided on at `as_of`.

        A query's workflow.now() is the time of the last workflow task, which on
        an idle order can be days old; the caller passes its own clock (never
        earlier than the workflow's)."""
        self._require_stage(*cancellation.CANCELLABLE)
        at = max(as_of, workflow.now()) if as_of is not None else workflow.now()
        reason = cancellation.reason_for(self, by, at)
        return cancellation.facts(self, cancellation.decided_by(by, reason), reason, at)

    @workflow.query
    def pinned_policy(self) -> dict | None:
        """The whole pinned policy of an order started before the policy store;
        None for the others (readers find it in the store by `policy_pin`)."""
        return self.inp.policy

    @workflow.query
    def policy_pin(self) -> dict:
        """The order's PolicyPin: name, version, sha256, plugin versions."""
        return self.inp.pin
