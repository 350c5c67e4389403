"""Ledger reconciliation on the embedded dev server (the reconciliation lists the
order workflows through Temporal's visibility, which the time-skipping server
lacks): clean books pass; a deliberately corrupted ledger or read-model row is
reported (and nothing is written); so are a terminated order with its stranded
escrow, a closed order whose ledger still holds escrow, and an order the read
model lost; `bespoke ops reconcile` exits 0 / 2 accordingly."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid

import pytest
from sqlalchemy import text
from temporalio.client import Client
from sqlmodel import Session, select

from bespoke.activities.reconcile import (
    ReconcileBatch,
    ReconcileInput,
    ReconcileReport,
    check_order,
    reconcile_batch,
)
from bespoke.domain.models import CancelInput, Stage
from bespoke.store.tables import LedgerEntry, OrderRow
from bespoke.workflows.order import OrderWorkflow
from bespoke.workflows.reconcile import ReconcileWorkflow
from tests.helpers import (
    BUYER,
    accept,
    assert_ledger,
    confirm,
    create_order,
    deliver,
    pay,
    produce,
    ship,
)

from bespoke.runtime.client import connect
from bespoke.runtime.embedded import EmbeddedServer
from bespoke.settings import Settings
from tests.conftest import _TrackStarted

from .harness import bespoke_command, free_port

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture(scope="module")
async def dev_server(tmp_path_factory):
    settings = Settings(home=tmp_path_factory.mktemp("temporal"), temporal_address=f"127.0.0.1:{free_port()}",
                        ui_port=free_port())
    async with EmbeddedServer(settings, headless=True) as server:
        yield server


@pytest.fixture
async def client(dev_server):
    # Each test has its own task queue, and a reconciliation looks only at the
    # orders on its own, so tests sharing the server do not see each other's.
    config = (await connect(dev_server.settings)).config()
    config["interceptors"] = [*config["interceptors"], _TrackStarted()]
    return Client(**config)


def _books(report) -> list:
    return [d for d in report.discrepancies if d.check == "books"]


def _workflow(report) -> dict:
    return {d.order_id: d for d in report.discrepancies if d.check == "workflow"}


async def _completed_order(client, task_queue, engine, price: int = 100_000) -> str:
    handle = await create_order(client, task_queue, price=price)
    await accept(handle)
    await pay(handle, price)
    await produce(handle)
    await ship(handle)
    await deliver(handle)
    await confirm(handle)  # returns once escrow is released and the read model says completed
    oid = handle.id.removeprefix("order-")
    assert _row(engine, oid).stage == Stage.COMPLETED
    assert_ledger(engine, oid, closed=True)
    return oid


async def _cancelled_order(client, task_queue, engine) -> str:
    handle = await create_order(client, task_queue, plan="staged:30/70", price=100_000)
    await accept(handle)
    await pay(handle, 30_000)
    await handle.execute_update(OrderWorkflow.cancel, CancelInput(actor=BUYER, reason="changed mind"))
    await handle.result()
    oid = handle.id.removeprefix("order-")
    assert_ledger(engine, oid, closed=True)
    return oid


def _row(engine, oid: str) -> OrderRow:
    with Session(engine) as session:
        row = session.get(OrderRow, oid)
        assert row is not None
        return row


def _ledger_snapshot(engine) -> list[tuple]:
    with Session(engine) as session:
        return [tuple(r) for r in session.exec(text("SELECT * FROM ledger_entries ORDER BY id")).all()]


async def _reconcile(client, task_queue, **options) -> ReconcileReport:
    return await client.execute_workflow(
        ReconcileWorkflow.run, ReconcileInput(settle_seconds=0, **options),
        id=f"reconcile-{uuid.uuid4()}", task_queue=task_queue,
    )


def _execute(engine, sql: str, **params) -> None:
    with Session(engine) as session:
        session.exec(text(sql).bindparams(**params))
        session.commit()


async def _returned_after_completion(client, task_queue, engine) -> str:
    """Completed, then returned: the refund is charged back to the seller."""
    from bespoke.domain.models import ReceiveReturnInput, ReturnRequestInput, ReturnResponseInput, ShipReturnInput
    from tests.helpers import SELLER

    oid = await _completed_order(client, task_queue, engine)
    handle = client.get_workflow_handle(f"order-{oid}")
    await handle.execute_update(OrderWorkflow.request_return, ReturnRequestInput(
        actor=BUYER, reason="defect", remedy="refund", description="cracked", evidence=("p.jpg",)))
    await handle.execute_update(OrderWorkflow.respond_return, ReturnResponseInput(actor=SELLER, action="approve"))
    await handle.execute_update(OrderWorkflow.ship_return,
                                ShipReturnInput(actor=BUYER, carrier="sf", tracking="RT1", shipping_cost=0))
    await handle.execute_update(OrderWorkflow.receive_return,
                                ReceiveReturnInput(actor=SELLER, disposition="scrap", salvage_value=0))
    await handle.result()
    assert _row(engine, oid).stage == Stage.REFUNDED
    assert_ledger(engine, oid, closed=True)
    return oid


async def test_reconcile_finds_completed_cancelled_and_returned_orders_balanced(client, task_queue, engine):
    done = await _completed_order(client, task_queue, engine)
    cancelled = await _cancelled_order(client, task_queue, engine)
    returned = await _returned_after_completion(client, task_queue, engine)
    report = await _reconcile(client, task_queue)
    assert report.clean and report.orders_off == 0 and report.discrepancies == []
    assert report.orders_checked == 3
    assert report.workflows_checked == 3 and report.workflows_off == 0  # one running, two closed
    # payment + settlement; payment + cancellation (refund and seller's share in one transaction)
    with Session(engine) as session:
        keys = {r.txn_key for r in session.exec(select(LedgerEntry))}
    assert report.transactions_checked == len(keys) >= 4
    assert {done, cancelled, returned} == {k.split(":")[0] for k in keys}


async def test_corrupted_ledger_leg_is_reported_and_nothing_is_written(client, task_queue, engine):
    bad = await _completed_order(client, task_queue, engine)
    good = await _completed_order(client, task_queue, engine, price=50_000)
    # Shave 1,000 off the seller's leg of the settlement: that transaction no
    # longer sums to zero, and the read model's released_to_seller disagrees.
    _execute(engine, "UPDATE ledger_entries SET amount = amount - 1000 "
                     "WHERE order_id = :oid AND kind = 'settlement' AND account = 'seller'", oid=bad)
    before = _ledger_snapshot(engine)
    report = await _reconcile(client, task_queue)
    assert _ledger_snapshot(engine) == before  # read-only
    assert not report.clean and report.orders_off == 1 and report.orders_checked == 2
    (off,) = _books(report)
    assert off.order_id == bad and off.stage == "completed"
    assert any(p == f"transaction {bad}:settlement sums to -1000, not 0" for p in off.problems), off.problems
    assert any("released_to_seller 95000 != ledger 94000" in p for p in off.problems), off.problems
    assert good not in {d.order_id for d in report.discrepancies}
    # The workflow says what the seller got; the ledger no longer does.
    assert _workflow(report)[bad].problems == ["workflow released_to_seller 95000 != ledger 94000"]


async def test_lost_settlement_leaves_escrow_in_a_completed_order_and_is_reported(client, task_queue, engine):
    oid = await _completed_order(client, task_queue, engine)
    _execute(engine, "DELETE FROM ledger_entries WHERE order_id = :oid AND kind = 'settlement'", oid=oid)
    report = await _reconcile(client, task_queue)
    (off,) = _books(report)
    assert "escrow holds 100000 although the order is completed" in off.problems
    assert "read model released_to_seller 95000 != ledger 0" in off.problems


async def test_read_model_drift_and_orphan_ledger_entries_are_reported(client, task_queue, engine):
    oid = await _completed_order(client, task_queue, engine)
    _execute(engine, "UPDATE orders SET paid = paid + 1 WHERE order_id = :oid", oid=oid)
    _execute(engine, "INSERT INTO ledger_entries (order_id, txn_key, leg, kind, account, amount, currency, memo, at) "
                     "VALUES ('GHOST', 'GHOST:payment:1', 0, 'payment', 'escrow', 500, 'CNY', '', '2026-01-01')")
    report = await _reconcile(client, task_queue, batch_size=1)  # pages one order at a time
    assert report.orders_checked == 2
    problems = {d.order_id: d for d in _books(report)}
    assert problems[oid].problems == ["read model paid 100001 != ledger 100000"]
    assert report.workflows_checked == 1 and report.workflows_off == 0  # the ledger agrees with the workflow
    assert problems["GHOST"].stage is None
    assert problems["GHOST"].problems == [
        "transaction GHOST:payment:1 sums to 500, not 0",
        "1 ledger transaction(s) but no order in the read model",
    ]


async def test_an_order_caught_mid_update_is_rechecked_before_being_reported(client, task_queue, engine):
    oid = await _completed_order(client, task_queue, engine)
    _execute(engine, "UPDATE orders SET released_to_seller = 0 WHERE order_id = :oid", oid=oid)

    def projection_catches_up(seconds: float) -> None:
        # What the workflow's next read-model projection does while we wait.
        assert seconds == 1.5
        _execute(engine, "UPDATE orders SET released_to_seller = 95000 WHERE order_id = :oid", oid=oid)

    report = reconcile_batch(engine=engine, batch=ReconcileBatch(settle_seconds=1.5), sleep=projection_catches_up)
    assert report.checked == 1 and report.discrepancies == []
    # Without the settle pause, the same moment is reported.
    _execute(engine, "UPDATE orders SET released_to_seller = 0 WHERE order_id = :oid", oid=oid)
    report = reconcile_batch(engine=engine, batch=ReconcileBatch(settle_seconds=0))
    assert [d.order_id for d in report.discrepancies] == [oid]


def test_check_order_flags_escrow_going_negative_and_duplicate_legs():
    from datetime import UTC, datetime

    def leg(key, n, account, amount):
        return LedgerEntry(order_id="X", txn_key=key, leg=n, kind="k", account=account, amount=amount,
                           currency="CNY", at=datetime.now(UTC))

    order = OrderRow(order_id="X", stage="in_production", buyer="b", seller="s", payment_plan="full_prepayment",
                     price=100, currency="CNY", policy_name="p", policy_version="1", paid=0, refunded=0,
                     released_to_seller=0, created_at=datetime.now(UTC), updated_at=datetime.now(UTC))
    problems = check_order(order, [
        leg("X:release", 0, "escrow", -100), leg("X:release", 1, "seller", 100),
        leg("X:pay", 0, "buyer", -100), leg("X:pay", 0, "escrow", 100),
    ])
    assert "escrow negative (-100) after X:release" in problems
    assert "transaction X:pay has legs [0, 0], expected 0..1" in problems
    assert "read model paid 0 != ledger 100" in problems


def _cli_env(client, task_queue: str, engine) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BESPOKE_", "TEMPORAL_"))}
    env.update(
        TEMPORAL_ADDRESS=client.service_client.config.target_host,
        BESPOKE_TASK_QUEUE=task_queue,
        BESPOKE_DATABASE_URL=str(engine.url),
        COLUMNS="200",
    )
    return env


async def test_ops_reconcile_cli_exits_0_when_clean_and_2_with_the_order_when_off(client, task_queue, engine):
    oid = await _completed_order(client, task_queue, engine)
    env = _cli_env(client, task_queue, engine)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*bespoke_command(), "ops", "reconcile", "--settle", "0", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    # The worker runs in this test's event loop, so the CLI runs in a thread.
    clean = await asyncio.to_thread(run, "--json")
    assert clean.returncode == 0, clean.stderr
    body = json.loads(clean.stdout)
    assert body["clean"] is True and body["orders_checked"] == 1 and body["discrepancies"] == []

    _execute(engine, "UPDATE ledger_entries SET amount = amount + 7 WHERE order_id = :oid AND kind = 'payment' "
                     "AND account = 'escrow'", oid=oid)
    off = await asyncio.to_thread(run, "--json")
    assert off.returncode == 2, off.stderr
    body = json.loads(off.stdout)
    assert body["clean"] is False and {d["order_id"] for d in body["discrepancies"]} == {oid}
    assert {d["check"] for d in body["discrepancies"]} == {"books", "workflow"}

    human = await asyncio.to_thread(run)
    assert human.returncode == 2
    assert oid in human.stdout and "sums to 7" in human.stdout


async def _paid_order(client, task_queue, engine, price: int = 100_000):
    handle = await create_order(client, task_queue, price=price)
    await accept(handle)
    await pay(handle, price)  # in production, the whole price in escrow
    oid = handle.id.removeprefix("order-")
    assert_ledger(engine, oid, closed=False)
    return handle, oid


async def test_a_terminated_order_and_its_stranded_escrow_are_reported(client, task_queue, engine):
    handle, oid = await _paid_order(client, task_queue, engine)
    fine = await _completed_order(client, task_queue, engine, price=50_000)
    # What "Terminate" in the Web UI did: the books are internally consistent, so
    # the database alone says all is well.
    await handle.terminate(reason="clicked in the Web UI")
    report = await _reconcile(client, task_queue)
    assert _books(report) == [] and report.orders_off == 0
    assert not report.clean and report.workflows_off == 1 and report.workflows_checked == 2
    off = _workflow(report)[oid]
    assert off.stage == "in_production"
    assert off.problems == [
        "workflow terminated (read model stage in_production): terminated: clicked in the Web UI",
        "100000 stranded in escrow: the workflow is terminated and can never release it",
    ]
    assert fine not in _workflow(report)


async def test_escrow_left_in_the_ledger_of_a_closed_order_is_reported(client, task_queue, engine):
    oid = await _cancelled_order(client, task_queue, engine)
    # The cancellation's refund never reached the ledger: the workflow is closed
    # (cancelled, escrow empty in its books), the ledger still holds the deposit.
    _execute(engine, "DELETE FROM ledger_entries WHERE order_id = :oid AND kind = 'cancellation'", oid=oid)
    _execute(engine, "UPDATE orders SET refunded = 0, released_to_seller = 0 WHERE order_id = :oid", oid=oid)
    report = await _reconcile(client, task_queue)
    off = _workflow(report)[oid]
    assert off.stage == "cancelled"
    assert "workflow escrow 0 != ledger 30000" in off.problems, off.problems
    assert "workflow refunded 30000 != ledger 0" in off.problems, off.problems


async def test_an_order_the_read_model_lost_is_reported(client, task_queue, engine):
    handle, lost = await _paid_order(client, task_queue, engine)
    kept = await _completed_order(client, task_queue, engine, price=50_000)
    # Every trace of the order gone from the database (a deleted or restored file).
    for table in ("orders", "ledger_entries", "timeline", "decisions"):
        _execute(engine, f"DELETE FROM {table} WHERE order_id = :oid", oid=lost)
    report = await _reconcile(client, task_queue)
    assert _books(report) == [] and report.orders_checked == 1  # the database alone sees one order, balanced
    off = _workflow(report)[lost]
    assert off.stage == "in_production"  # from the workflow: the read model has none
    assert off.problems == [
        f"workflow order-{lost} is running but the read model has no such order",
        "workflow paid 100000 != ledger 0",
        "workflow escrow 100000 != ledger 0",
    ]
    assert kept not in _workflow(report)


async def test_reconcile_reports_its_progress_when_done(client, task_queue, engine):
    await _completed_order(client, task_queue, engine)
    await _cancelled_order(client, task_queue, engine)
    handle = await client.start_workflow(ReconcileWorkflow.run, ReconcileInput(settle_seconds=0, batch_size=1),
                                         id=f"reconcile-{uuid.uuid4()}", task_queue=task_queue)
    report = await handle.result()
    assert report.clean and report.workflows_checked == 2  # one page of one at a time
    progress = await handle.query(ReconcileWorkflow.progress)
    assert (progress.phase, progress.done, progress.total) == ("done", 2, 2)


async def test_ops_reconcile_cli_exits_2_for_a_terminated_order(client, task_queue, engine):
    handle, oid = await _paid_order(client, task_queue, engine)
    await handle.terminate(reason="oops")
    env = _cli_env(client, task_queue, engine)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*bespoke_command(), "ops", "reconcile", "--settle", "0", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    off = await asyncio.to_thread(run, "--json")
    assert off.returncode == 2 and off.stderr == "", off.stderr  # no progress bar when stderr is no terminal
    body = json.loads(off.stdout)
    assert body["clean"] is False and body["workflows_off"] == 1
    (entry,) = body["discrepancies"]
    assert entry["order_id"] == oid and entry["check"] == "workflow"
    assert "100000 stranded in escrow" in entry["problems"][1]
    human = await asyncio.to_thread(run)
    assert human.returncode == 2
    assert oid in human.stdout and "stranded in escrow" in human.stdout


async def test_an_open_order_whose_workflow_is_gone_is_reported(client, task_queue, engine):
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
    from temporalio.service import RPCError

    handle, oid = await _paid_order(client, task_queue, engine)
    closed = await _cancelled_order(client, task_queue, engine)
    # "Delete" in the Web UI, or `temporal workflow delete`: the workflow and its
    # history are gone, the read model still shows the order in production.
    for h in (handle, client.get_workflow_handle(f"order-{closed}")):
        await client.workflow_service.delete_workflow_execution(DeleteWorkflowExecutionRequest(
            namespace=client.namespace, workflow_execution=WorkflowExecution(workflow_id=h.id)))
    for _ in range(200):
        try:
            await handle.describe()
        except RPCError:
            break
        await asyncio.sleep(0.05)
    report = await _reconcile(client, task_queue)
    gone = _workflow(report)[oid]
    assert gone.stage == "in_production"
    assert gone.problems == [f"the read model has the order in stage in_production, but Temporal has no "
                             f"workflow order-{oid}"]
    # A closed order's workflow may be gone (the namespace's retention): not a problem.
    assert closed not in _workflow(report)


async def test_an_order_whose_workflow_refused_its_input_is_counted_not_reported(client, task_queue, engine):
    from temporalio.client import WorkflowFailureError

    from bespoke.domain.names import ORDER_WORKFLOW, workflow_id_for
    from tests.workflows.test_start_input import genuine

    kept = await _completed_order(client, task_queue, engine)
    # A raw client starting an order the CLI would refuse: the workflow fails it at
    # once, before the books ever see it. Not an order, so not a problem.
    bad = genuine(price=10**13)
    handle = await client.start_workflow(ORDER_WORKFLOW, bad, id=workflow_id_for(bad.order_id),
                                         task_queue=task_queue)
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    report = await _reconcile(client, task_queue)
    assert report.clean and report.refused == 1 and report.workflows_checked == 2, report
    assert kept not in _workflow(report)


async def test_a_terminated_order_the_read_model_lost_shows_the_stage_its_workflow_published(client, task_queue,
                                                                                              engine):
    handle, oid = await _paid_order(client, task_queue, engine)
    await handle.terminate(reason="cleanup")
    _execute(engine, "DELETE FROM orders WHERE order_id = :oid", oid=oid)
    report = await _reconcile(client, task_queue)
    off = _workflow(report)[oid]
    assert off.stage == "in_production"  # BespokeStage, the search attribute: neither the row nor the workflow says
    assert off.problems == [
        f"workflow order-{oid} is terminated but the read model has no such order",
        "workflow terminated: terminated: cleanup",
        "100000 stranded in escrow: the workflow is terminated and can never release it",
    ]
    assert [d.order_id for d in _books(report)] == [oid]  # ledger entries without an order


async def test_the_ops_books_queue_lists_what_the_last_reconciliation_found(client, task_queue, engine, tmp_path,
                                                                             database_url):
    """The portal's /ops/books shows the newest completed reconciliation's findings,
    each linking to its order; before any has run it says so."""
    import re

    import httpx

    from bespoke.portal import auth, create_app
    from tests.portal.conftest import LiveServer

    settings = Settings(_environ={}, home=tmp_path / "home", database_url=database_url, task_queue=task_queue)
    app = create_app(settings)
    app.state.bespoke_client = client
    for who in ("ops:olga", "buyer:alice"):
        auth.ensure_principal(engine, auth.parse_principal(who), created_by="ops:test")
        auth.set_password(engine, auth.parse_principal(who), "correct horse battery", set_by="ops:test")
    server = await LiveServer(app).start()
    try:
        tokens = {who: auth.sign_in(engine, who, "correct horse battery", client="test")[1]
                  for who in ("ops:olga", "buyer:alice")}
        async with httpx.AsyncClient(base_url=server.url, cookies={"bespoke_session": tokens["ops:olga"]}) as olga:
            assert 'data-testid="no-reconciliation"' in (await olga.get("/ops/books")).text
            _execute(engine, "INSERT INTO orders (order_id, stage, title, buyer, seller, payment_plan, price, "
                             "currency, policy_name, policy_version, paid, refunded, released_to_seller, created_at, "
                             "updated_at, next_step) VALUES ('DRIFT-1', 'in_production', '', 'alice', 'acme', "
                             "'full_prepayment', 100, 'CNY', 'default', '1', 100, 0, 0, '2026-01-01', '2026-01-01', '')")
            report = await _reconcile(client, task_queue)
            assert not report.clean
            page = await olga.get("/ops/books")
            assert page.status_code == 200
            assert re.findall(r'<tr data-order="([^"]+)">', page.text) == ["DRIFT-1", "DRIFT-1"]  # books, workflow
            assert 'href="/orders/DRIFT-1"' in page.text and "read model paid 100 != ledger 0" in page.text
            assert "Temporal has no workflow order-DRIFT-1" in page.text
        async with httpx.AsyncClient(base_url=server.url,
                                     cookies={"bespoke_session": tokens["buyer:alice"]}) as alice:
            assert (await alice.get("/ops/books")).status_code == 403
    finally:
        await server.stop()
