"""Fuzzing the update validators of a real OrderWorkflow on the time-skipping server.

Each example drives a fresh order (a random payment plan) to a random stage, then
fires hypothesis-generated updates at it: any of the workflow's actions, from a
random actor (role and name, the right one or not), with amounts that are zero,
negative, huge or plausible, random currencies, references, texts -- and now and
then a payload of the wrong shape altogether (sent as a raw dict, so the client
cannot refuse it first). The properties:

- a rejected update leaves `status()` and the ledger exactly as they were;
- an accepted update completes (the handler never crashes after its validator
  let it through) and leaves the ledger balanced (`assert_ledger`), with the view
  agreeing with the books.
"""

from __future__ import annotations

import asyncio
import os
import unicodedata
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from bespoke.domain.models import MAX_AMOUNT, ActionResult, TERMINAL_STAGES, OrderView, Stage
from bespoke.store.tables import LedgerEntry
from tests.helpers import (
    accept,
    assert_ledger,
    create_order,
    deliver,
    pay,
    produce,
    ship,
    status,
)

PLANS = ["full_prepayment", "staged:30/70", "staged:30/60/10", "cash_on_delivery"]  # credit needs an account set up
TARGETS = ["awaiting_acceptance", "awaiting_deposit", "in_production", "quality_check", "shipped", "delivered"]
PRICE = 100_000

NAMES = ["alice", "acme", "sf-express", "olga", "bank", "mallory", "ALICE", "alice\u200b", "acme ",
         unicodedata.normalize("NFD", "José"), "张伟", "🦊", "x" * 200, "'; DROP TABLE orders;--"]
ROLES = ["buyer", "seller", "ops", "carrier", "system"]


# "@due", "@due+1", "@due-1": the amount due when the update is sent (the data
# drawn must not depend on the order's state, or hypothesis cannot replay it).
amount = st.one_of(
    st.sampled_from(["@due", "@due", 100, 2_000]),
    st.sampled_from([0, -1, 1, PRICE, PRICE + 1, PRICE // 3, "@due", "@due+1", "@due-1", MAX_AMOUNT,
                     MAX_AMOUNT + 1, 2**63, -(2**63), 10**30]),
    st.integers(-(10**15), 10**15),
)


def resolve(payload: Any, due: int) -> Any:
    if isinstance(payload, dict):
        return {k: resolve(v, due) for k, v in payload.items()}
    if isinstance(payload, list):
        return [resolve(v, due) for v in payload]
    if isinstance(payload, str) and payload.startswith("@due"):
        return due + int(payload[4:] or 0)
    return payload


texts = st.one_of(st.sampled_from(["", "x", "sf-express", "SF123", " ", "\x00", "a" * 101, "a" * 5000]),
                  st.text(max_size=30))

LIKELY = {
    "awaiting_acceptance": ["accept", "cancel"], "awaiting_deposit": ["pay", "cancel"],
    "in_production": ["milestone", "salvage", "finish_production", "cancel", "pay"],
    "quality_check": ["quality_check", "salvage", "pay", "ship"], "shipped": ["deliver", "refuse"],
    "delivered": ["confirm", "request_return", "remit"],
}
RIGHTFUL = {
    **dict.fromkeys(["accept", "milestone", "salvage", "finish_production", "quality_check", "ship", "reship",
                     "respond_return", "receive_return"], ("seller", "acme")),
    **dict.fromkeys(["pay", "confirm", "request_return", "answer_offer", "ship_return", "cancel", "refuse",
                     "dispute", "evidence"], ("buyer", "alice")),
    "deliver": ("carrier", "sf-express"), "remit": ("carrier", "sf-express"), "arbitrate": ("ops", "olga"),
}
# The everyday actions twice over: the rest are mostly refused for the stage anyway.
ACTIONS = ["pay", "cancel", "milestone", "salvage", "confirm", "request_return", "quality_check", "ship"] + ["accept", "pay", "milestone", "salvage", "finish_production", "quality_check", "ship", "deliver",
           "refuse", "remit", "confirm", "cancel", "request_return", "respond_return", "answer_offer",
           "ship_return", "receive_return", "reship", "dispute", "evidence", "arbitrate"]


@st.composite
def payloads(draw: st.DrawFn, action: str) -> dict[str, Any]:
    """A payload for `action`: mostly the right shape with doubtful values."""
    if draw(st.integers(0, 9)) < 6:  # mostly the party who may act, so some updates get through
        role, name = RIGHTFUL.get(action, ("buyer", "alice"))
        if action in ("dispute", "evidence") and draw(st.booleans()):
            role, name = "seller", "acme"
        actor = {"role": role, "name": name}
    else:
        actor = {"role": draw(st.sampled_from(ROLES) | st.sampled_from(["wizard", "", "BUYER"])),
                 "name": draw(st.sampled_from(NAMES) | st.text(max_size=8))}
    text = texts
    fields: dict[str, st.SearchStrategy[Any]] = {
        "pay": st.fixed_dictionaries({
            "amount": amount, "currency": st.sampled_from(["CNY", "USD", "JPY", "XYZ", "", "cny"]),
            "reference": st.sampled_from(["REF-1", "REF-2", "dep", ""]) | text,
            "method": st.sampled_from(["card", "wallet", "bank_transfer", "credit_repayment", "cash", ""])}),
        "milestone": st.fixed_dictionaries({
            "milestone": st.sampled_from(["materials", "fabrication", "finishing", "painting", ""]),
            "cost": amount, "note": text}),
        "salvage": st.fixed_dictionaries({"value": amount}),
        "quality_check": st.fixed_dictionaries({"passed": st.booleans(), "note": text}),
        "ship": st.fixed_dictionaries({"carrier": text, "tracking": text}),
        "reship": st.fixed_dictionaries({"carrier": text, "tracking": text}),
        "deliver": st.fixed_dictionaries({"collected": st.none() | amount, "reference": st.none() | text}),
        "refuse": st.fixed_dictionaries({"reason": text}),
        "remit": st.fixed_dictionaries({"amount": amount, "reference": text}),
        "cancel": st.fixed_dictionaries({"reason": text}),
        "request_return": st.fixed_dictionaries({
            "reason": st.sampled_from(["defect", "not_as_specified", "damaged_in_transit", "changed_mind", "meh"]),
            "remedy": st.sampled_from(["refund", "repair", "cash"]), "description": text,
            "evidence": st.lists(text, max_size=3)}),
        "respond_return": st.fixed_dictionaries({
            "action": st.sampled_from(["approve", "reject", "offer_partial", "offer_repair", "ignore"]),
            "amount": st.none() | amount, "reason": text}),
        "answer_offer": st.fixed_dictionaries({"accept": st.booleans()}),
        "ship_return": st.fixed_dictionaries({"carrier": text, "tracking": text, "shipping_cost": amount}),
        "receive_return": st.fixed_dictionaries({
            "disposition": st.sampled_from(["resell_as_stock", "scrap", "rework", "burn"]),
            "salvage_value": amount, "note": text}),
        "dispute": st.fixed_dictionaries({"claim": st.none() | amount, "statement": text}),
        "evidence": st.fixed_dictionaries({"items": st.lists(text, max_size=3), "final": st.booleans()}),
        "arbitrate": st.fixed_dictionaries({"refund": amount, "note": text}),
    }.get(action, st.just({}))
    payload = {"actor": actor, **draw(fields)}
    if draw(st.integers(0, 9)) == 0:  # now and then, the wrong shape altogether
        key = draw(st.sampled_from(sorted(payload)))
        payload[key] = draw(st.sampled_from([None, "abc", [], {}, 1.5, True, {"role": "buyer"}]))
    if draw(st.integers(0, 19)) == 0:
        payload["unexpected"] = 1
    return payload


async def drive(handle, plan: str, target: str) -> None:
    """Bring a fresh order to `target` by the happy path."""
    if target == "awaiting_acceptance":
        return
    await accept(handle)
    if target == "awaiting_deposit":
        return
    view = await status(handle)
    if view.amount_due:
        await pay(handle, view.amount_due, "dep")
    if target == "in_production":
        return
    await produce(handle, qc=target != "quality_check")
    if target == "quality_check":
        return
    view = await status(handle)
    if view.amount_due:
        await pay(handle, view.amount_due, "bal")
    await ship(handle)
    if target == "shipped":
        return
    await deliver(handle, collected=PRICE if plan == "cash_on_delivery" else None)


async def settled(handle) -> OrderView:
    """The order's view once the workflow has finished reacting to its last action
    (a new order sets its first deadline a moment after it starts): two equal
    snapshots in a row."""
    view = await status(handle)
    for _ in range(100):
        await asyncio.sleep(0.02)
        again = await status(handle)
        if again == view and (view.deadlines or view.stage is not Stage.AWAITING_ACCEPTANCE):
            return view
        view = again
    return view


def ledger_rows(engine, order_id: str) -> list[tuple]:
    with Session(engine) as session:
        rows = session.exec(select(LedgerEntry).where(LedgerEntry.order_id == order_id)
                            .order_by(LedgerEntry.id)).all()
    return [(r.txn_key, r.leg, r.account, r.amount) for r in rows]


async def books_agree(handle, engine, order_id: str, view: OrderView) -> None:
    """The ledger invariants, and the view equal to the books (the read model is
    written by activities the update awaited; allow the projection a moment)."""
    for attempt in range(50):
        view = await status(handle)
        rows = ledger_rows(engine, order_id)
        if not rows:
            assert view.paid == view.escrow == view.released_to_seller == 0, view
            return
        try:
            balances = assert_ledger(engine, order_id, closed=view.stage in TERMINAL_STAGES)
            assert view.escrow == balances.get("escrow", 0)
            assert view.released_to_seller == balances.get("seller", 0)
            assert view.platform_fee == balances.get("platform_fee", 0)
            return
        except AssertionError:
            if attempt == 49:
                raise
            await asyncio.sleep(0.1)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[str, str, list[tuple[str, int]]]:
    plan = draw(st.sampled_from(PLANS))
    target = draw(st.sampled_from(TARGETS))
    # Actions are chosen now; their payloads when the order's amount due is known.
    likely = st.sampled_from(LIKELY[target])  # half the time an action the stage allows
    actions = draw(st.lists(st.tuples(likely | st.sampled_from(ACTIONS), st.integers(0, 2**32)),
                            min_size=1, max_size=5))
    return plan, target, actions


OUTCOMES: dict[str, int] = {"accepted": 0, "rejected": 0}


# No shrinking: every example drives a real order, so shrinking takes many minutes;
# a failure message carries the action, payload, stage and plan instead.
@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 40)), deadline=None,
          phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(scenario=scenarios(), data=st.data())
async def test_rejected_updates_change_nothing_and_accepted_ones_keep_the_books_balanced(
    client, task_queue, worker, engine, scenario, data,
) -> None:
    plan, target, actions = scenario
    order_id = f"FZ{uuid.uuid4().hex[:12]}"
    handle = await create_order(client, task_queue, plan=plan, price=PRICE, order_id=order_id)
    await drive(handle, plan, target)
    for action, _ in actions:
        before = await settled(handle)
        rows_before = ledger_rows(engine, order_id)
        payload = resolve(data.draw(payloads(action), label=action), before.amount_due)
        try:
            await asyncio.wait_for(handle.execute_update(action, payload, result_type=ActionResult), timeout=60)
        except RPCError as err:
            pytest.fail(f"{action} {payload} in {before.stage.value} ({plan}): the server lost the update: {err}")
        except WorkflowUpdateFailedError as err:
            cause = getattr(err.cause, "type", None)
            if cause == "AcceptedUpdateCompletedWorkflow":
                pytest.fail(f"{action} {payload} in {before.stage.value} ({plan}) was accepted, but the workflow "
                            "completed before the update did: the caller is told it failed")
            OUTCOMES["rejected"] += 1
            after = await status(handle)
            changed = {k: (v, after.model_dump()[k]) for k, v in before.model_dump().items()
                       if after.model_dump()[k] != v}
            assert after == before, f"rejected {action} {payload} in {before.stage.value} ({plan}) changed {changed}"
            assert ledger_rows(engine, order_id) == rows_before, f"rejected {action} {payload} posted to the ledger"
            continue
        except TimeoutError:
            pytest.fail(f"{action} {payload} was accepted but never completed (handler stuck or crashing)")
        OUTCOMES["accepted"] += 1
        await books_agree(handle, engine, order_id, before)
        if (await status(handle)).stage in TERMINAL_STAGES | {Stage.COMPLETED}:
            break


def test_the_fuzzer_exercised_both_outcomes() -> None:
    """Runs after the fuzz test (file order): a fuzzer whose updates were all
    rejected (or all accepted) would prove little."""
    if OUTCOMES["accepted"] + OUTCOMES["rejected"] == 0:
        pytest.skip("the fuzz test did not run in this session")
    print(f"update fuzzing: {OUTCOMES}")
    assert OUTCOMES["rejected"] > 0 and OUTCOMES["accepted"] > 0, OUTCOMES
