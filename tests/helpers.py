"""Test helpers: creating orders, acting on them, and the ledger invariants
every scenario test ends with."""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from typing import Any

import pytest
from sqlmodel import Session, select
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError

from bespoke.domain.models import (
    Account,
    Actor,
    ActorInput,
    OrderView,
    PaymentPlan,
    PayInput,
    Stage,
)
from bespoke.rules import find_policy
from bespoke.service import build_order_input, start_order
from bespoke.store.tables import LedgerEntry, OrderRow
from bespoke.workflows.order import OrderWorkflow

BUYER = Actor.parse("buyer:alice")
SELLER = Actor.parse("seller:acme")
CARRIER = Actor.parse("carrier:sf-express")
OPS = Actor.parse("ops:olga")
BANK = Actor.parse("system:bank")


# Run the scenario tests with the order continuing as new after this many updates
# (`BESPOKE_TEST_UPDATES_PER_RUN=1` hands the state to a new run after every one):
# every scenario then also proves the lifecycle resumes from any wait.
UPDATES_PER_RUN_ENV = "BESPOKE_TEST_UPDATES_PER_RUN"


def policy_variant(name: str = "default", **limits: int):
    """The named policy with some `[limits]` changed (same name, version and tables)."""
    policy = find_policy(name)
    return policy.model_copy(update={"limits": policy.limits.model_copy(update=limits)})


def _policy_for_test(name: str):
    per_run = os.environ.get(UPDATES_PER_RUN_ENV)
    if per_run:
        return policy_variant(name, max_updates_per_run=int(per_run))
    return find_policy(name)


async def create_order(
    client: Client,
    task_queue: str,
    *,
    plan: str = "full_prepayment",
    price: int = 100_000,
    currency: str = "CNY",
    production_days: int = 14,
    earnest_deposit: bool = False,
    policy: Any = "default",  # a policy name, or a Policy
    order_id: str | None = None,
    buyer: str = "alice",
    created_by: Actor | None = None,
    engine: Any = None,  # the policy store's database; default: the test's `engine` fixture
) -> WorkflowHandle[Any, Any]:
    store = engine if engine is not None else POLICY_STORE.get("engine")
    assert store is not None, "create_order needs the database of the worker's policy store"
    inp = build_order_input(
        order_id=order_id or f"T{uuid.uuid4().hex[:12]}",
        buyer=buyer,
        seller="acme",
        price=price,
        currency=currency,
        plan=PaymentPlan.parse(plan),
        production_days=production_days,
        policy=policy if not isinstance(policy, str) else _policy_for_test(policy),
        created_by=created_by or Actor.parse("ops:olga"),
        title="walnut display case",
        earnest_deposit=earnest_deposit,
        store=store,
    )
    return await start_order(client, inp, task_queue=task_queue)


# The current test's database (set by the `engine` fixture in conftest.py): where
# create_order stores the pinned policy, as `bespoke order create` does.
POLICY_STORE: dict[str, Any] = {}


async def order_policy(handle: WorkflowHandle[Any, Any], engine: Any = None):
    """The order's pinned Policy as readers get it (`order quote-cancel`): inline
    from an order started before the policy store, else from the store by pin."""
    from bespoke.store.policies import order_policy as resolve

    pinned = await handle.query(OrderWorkflow.pinned_policy)
    pin = await handle.query(OrderWorkflow.policy_pin)
    return resolve(engine if engine is not None else POLICY_STORE["engine"], pinned, pin)


# Workflows started by the current test (recorded by the `client` fixture's
# interceptor). The worker fixture terminates the ones still running before it
# stops: a workflow left with an activity scheduled and no worker to run it would
# stop the shared time-skipping server from skipping time for every later test.
STARTED: list[WorkflowHandle[Any, Any]] = []


async def status(handle: WorkflowHandle[Any, Any]) -> OrderView:
    return await handle.query(OrderWorkflow.status)


async def started_status(handle: WorkflowHandle[Any, Any]) -> OrderView:
    """The status once the order has recorded its creation. A query answered while
    the start check (a local activity) is still running sees an empty timeline; a
    test comparing "before" and "after" must not take that as its "before"."""
    import asyncio

    for _ in range(200):
        view = await status(handle)
        if view.timeline:
            return view
        await asyncio.sleep(0.05)
    raise AssertionError("the order never recorded its creation")


async def pay(handle, amount: int, ref: str | None = None, *, actor: Actor = BUYER, method: str = "card",
              currency: str = "CNY"):
    return await handle.execute_update(
        OrderWorkflow.pay,
        PayInput(actor=actor, amount=amount, currency=currency, reference=ref or f"P{uuid.uuid4().hex[:8]}",
                 method=method),
    )


async def accept(handle):
    return await handle.execute_update(OrderWorkflow.accept, ActorInput(actor=SELLER))


async def produce(handle, *, costs: tuple[int, int, int] = (20_000, 15_000, 5_000), qc: bool = True) -> None:
    from bespoke.domain.models import MilestoneInput, QcInput

    for name, cost in zip(("materials", "fabrication", "finishing"), costs):
        await handle.execute_update(OrderWorkflow.milestone, MilestoneInput(actor=SELLER, milestone=name, cost=cost))
    await handle.execute_update(OrderWorkflow.finish_production, ActorInput(actor=SELLER))
    if qc:
        await handle.execute_update(OrderWorkflow.quality_check, QcInput(actor=SELLER, passed=True))


async def ship(handle):
    from bespoke.domain.models import ShipInput

    return await handle.execute_update(
        OrderWorkflow.ship, ShipInput(actor=SELLER, carrier="sf-express", tracking="SF123456789")
    )


async def deliver(handle, collected: int | None = None):
    from bespoke.domain.models import DeliverInput

    return await handle.execute_update(OrderWorkflow.deliver, DeliverInput(actor=CARRIER, collected=collected))


async def confirm(handle):
    return await handle.execute_update(OrderWorkflow.confirm, ActorInput(actor=BUYER))


def ledger_balances(engine, order_id: str) -> dict[str, int]:
    with Session(engine) as session:
        rows = session.exec(select(LedgerEntry).where(LedgerEntry.order_id == order_id)).all()
    balances: dict[str, int] = defaultdict(int)
    for row in rows:
        balances[row.account] += row.amount
    return dict(balances)


def assert_ledger(engine, order_id: str, *, closed: bool) -> dict[str, int]:
    """The ledger invariants: each transaction sums to zero, no posting is
    duplicated, escrow never negative (and zero when closed), and what the buyer
    paid equals refunds + released to the seller + fees (+ what is still held)."""
    with Session(engine) as session:
        rows = session.exec(
            select(LedgerEntry).where(LedgerEntry.order_id == order_id).order_by(LedgerEntry.id)
        ).all()
        order = session.get(OrderRow, order_id)
    assert rows, f"no ledger entries for {order_id}"
    by_txn: dict[str, list[LedgerEntry]] = defaultdict(list)
    for row in rows:
        by_txn[row.txn_key].append(row)
    for key, legs in by_txn.items():
        assert sum(leg.amount for leg in legs) == 0, f"transaction {key} does not balance"
        assert sorted(leg.leg for leg in legs) == list(range(len(legs))), f"duplicate legs in {key}"
    escrow = 0
    for key, legs in by_txn.items():  # running escrow balance, transaction by transaction
        escrow += sum(leg.amount for leg in legs if leg.account == Account.ESCROW)
        assert escrow >= 0, f"escrow negative after {key}"
    balances = ledger_balances(engine, order_id)
    paid = -sum(r.amount for r in rows if r.account == Account.BUYER and r.amount < 0)
    refunded = sum(r.amount for r in rows if r.account == Account.BUYER and r.amount > 0)
    released = balances.get(Account.SELLER, 0)
    fee = balances.get(Account.PLATFORM_FEE, 0)
    held = balances.get(Account.ESCROW, 0) + balances.get(Account.CARRIER_COD, 0)
    credit = -balances.get(Account.CREDIT_LINE, 0)  # credit advanced and not yet repaid
    assert balances.get(Account.ESCROW, 0) >= 0
    assert paid + credit == refunded + released + fee + held, (paid, credit, refunded, released, fee, held)
    if closed:
        assert balances.get(Account.ESCROW, 0) == 0, f"escrow not empty at close: {balances}"
        assert balances.get(Account.CARRIER_COD, 0) == 0
    if order is not None:
        assert order.paid == paid and order.refunded == refunded and order.released_to_seller == released
    return balances


async def assert_view_matches_ledger(handle, engine, order_id: str, *, closed: bool) -> OrderView:
    view = await status(handle)
    balances = assert_ledger(engine, order_id, closed=closed)
    assert view.released_to_seller == balances.get(Account.SELLER, 0)
    assert view.platform_fee == balances.get(Account.PLATFORM_FEE, 0)
    assert view.escrow == balances.get(Account.ESCROW, 0)
    return view


__all__ = ["Stage"]


async def delivered_order(client: Client, task_queue: str, *, price: int = 100_000, **kw: Any):
    """A prepaid order driven to `delivered` (its inspection window running)."""
    handle = await create_order(client, task_queue, price=price, **kw)
    await accept(handle)
    await pay(handle, price)
    await produce(handle)
    await ship(handle)
    await deliver(handle)
    return handle


async def rejected(coro, match: str) -> None:
    """The update is refused by its validator with a message containing `match`."""
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await coro
    assert match in str(info.value.cause)
