"""Record the event histories of representative orders for the replay test.

    python -m tests.histories.record            # record scenarios that have no file yet
    python -m tests.histories.record NAME ...   # just these (still never overwriting)
    python -m tests.histories.record --force NAME   # re-record NAME on purpose
    python -m tests.histories.record --list

Each scenario runs one order on the time-skipping test server (months of
deadlines pass in milliseconds) with a real worker and a scratch SQLite
database, then writes `tests/histories/<name>.json` from
`handle.fetch_history().to_json()`.

A recorded history is a fixture of the *old* code: `tests/test_replay.py`
replays it against the current OrderWorkflow to prove a change is
replay-safe. Re-recording an existing file with new code would prove nothing,
so existing files are kept unless `--force` names them. When a change adds a
new path (after-sales: returns, disputes), add a scenario here and record only
that one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from bespoke.domain.models import CancelInput, QcInput, ReasonInput, RemitInput, ShipInput, Stage
from bespoke.runtime.client import ensure_search_attributes
from bespoke.store.db import get_engine
from bespoke.worker import build_worker
from bespoke.workflows.order import OrderWorkflow
from tests.conftest import test_server_binary
from tests.helpers import (
    POLICY_STORE,
    BANK,
    BUYER,
    CARRIER,
    OPS,
    SELLER,
    accept,
    assert_ledger,
    confirm,
    create_order,
    deliver,
    pay,
    produce,
    ship,
)
from tests.helpers_accounts import set_credit_limit

HERE = Path(__file__).parent

Handle = WorkflowHandle[Any, Any]
Scenario = Callable[[Client, str, Any], Awaitable[tuple[Handle, Stage]]]
SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        SCENARIOS[name] = fn
        return fn

    return register


def _oid(name: str) -> str:
    return f"H-{name}-{uuid.uuid4().hex[:6]}"


@scenario("full_prepayment")
async def _full_prepayment(client, tq, engine):
    h = await create_order(client, tq, order_id=_oid("full"), price=100_000)
    await accept(h)
    await pay(h, 100_000, "FULL-1")
    await produce(h)
    await ship(h)
    await deliver(h)
    await confirm(h)
    return h, Stage.COMPLETED


@scenario("staged_20_80")
async def _staged_20_80(client, tq, engine):
    h = await create_order(client, tq, order_id=_oid("s2080"), plan="staged:20/80", price=100_000)
    await accept(h)
    await pay(h, 20_000, "DEP-1")
    await produce(h)
    await pay(h, 80_000, "BAL-1")
    await ship(h)
    await deliver(h)
    await confirm(h)
    return h, Stage.COMPLETED


@scenario("staged_30_60_10_retention")
async def _staged_retention(client, tq, engine):
    h = await create_order(client, tq, order_id=_oid("s306010"), plan="staged:30/60/10", price=99_999,
                           earnest_deposit=False)
    await accept(h)
    await pay(h, 30_000, "DEP-1")
    await produce(h)
    await pay(h, 59_999, "BAL-1")
    await ship(h)
    await deliver(h)
    await confirm(h)
    await pay(h, 10_000, "RET-1")
    return h, Stage.COMPLETED


@scenario("credit_repaid")
async def _credit(client, tq, engine):
    set_credit_limit(engine, "alice", 500_000)
    h = await create_order(client, tq, order_id=_oid("credit"), plan="credit", price=120_000)
    await accept(h)
    await produce(h)
    await ship(h)
    await deliver(h)
    await confirm(h)
    await pay(h, 50_000, "REPAY-1", method="credit_repayment")
    await pay(h, 70_000, "REPAY-2", method="credit_repayment")
    return h, Stage.COMPLETED


@scenario("cash_on_delivery")
async def _cod(client, tq, engine):
    h = await create_order(client, tq, order_id=_oid("cod"), plan="cod", price=80_000)
    await accept(h)
    await produce(h)
    await ship(h)
    await deliver(h, collected=80_000)
    await h.execute_update(OrderWorkflow.remit, RemitInput(actor=CARRIER, amount=80_000, reference="R1"))
    return h, Stage.COMPLETED


@scenario("cash_on_delivery_refused")
async def _cod_refused(client, tq, engine):
    h = await create_order(client, tq, order_id=_oid("codref"), plan="cod", price=80_000)
    await accept(h)
    await produce(h)
    await ship(h)
    await h.execute_update(OrderWorkflow.refuse, ReasonInput(actor=BUYER, reason="changed mind"))
    return h, Stage.CANCELLED


@scenario("collection_account_overpaid")
async def _collection(client, tq, engine):
    h = await create_order(client, tq, order_id=_oid("coll"), plan="collection_account", price=100_000)
    await accept(h)
    await pay(h, 60_000, "BANK-1", actor=BANK, method="bank_transfer")
    await pay(h, 50_000, "BANK-2", actor=BANK, method="bank_transfer")
    await produce(h)
    await ship(h)
    await deliver(h)
    await confirm(h)
    return h, Stage.COMPLETED


@scenario("collection_account_ops_entry")
async def _collection_ops_entry(client, tq, engine):
    # pay-reason-v1: ops records a transfer by hand, with its reason, up to what is due.
    from bespoke.domain.models import PayInput

    h = await create_order(client, tq, order_id=_oid("collops"), plan="collection_account", price=100_000)
    await accept(h)
    await h.execute_update(OrderWorkflow.pay, PayInput(actor=OPS, amount=30_000, currency="CNY", reference="OPS-1",
                                                       method="bank_transfer", reason="arrived on the old account"))
    await pay(h, 80_000, "BANK-2", actor=BANK, method="bank_transfer")
    await produce(h)
    await ship(h)
    await deliver(h)
    await confirm(h)
    return h, Stage.COMPLETED


@scenario("buyer_cancels_in_production")
async def _buyer_cancels(client, tq, engine):
    h = await create_order(client, tq, order_id=_oid("cancel"), plan="staged:30/70", price=100_000)
    await accept(h)
    await pay(h, 30_000, "DEP-1")
    from bespoke.domain.models import MilestoneInput, SalvageInput

    await h.execute_update(OrderWorkflow.milestone, MilestoneInput(actor=SELLER, milestone="materials", cost=12_000))
    await h.execute_update(OrderWorkflow.salvage, SalvageInput(actor=SELLER, value=4_000))
    await h.execute_update(OrderWorkflow.cancel, CancelInput(actor=BUYER, reason="no longer needed"))
    return h, Stage.CANCELLED


@scenario("deposit_timeout")
async def _deposit_timeout(client, tq, engine):
    h = await create_order(client, tq, order_id=_oid("deptime"), plan="collection_account", price=100_000)
    await accept(h)
    await pay(h, 40_000, "BANK-partial", actor=BANK, method="bank_transfer")
    return h, Stage.CANCELLED  # the deposit deadline passes in virtual time


@scenario("qc_rework_then_auto_confirm")
async def _qc_rework(client, tq, engine):
    from bespoke.domain.models import ActorInput

    h = await create_order(client, tq, order_id=_oid("qc"), price=50_000, production_days=3)
    await accept(h)
    await pay(h, 50_000, "FULL-1")
    await produce(h, qc=False)
    await h.execute_update(OrderWorkflow.quality_check, QcInput(actor=SELLER, passed=False, note="scratched"))
    await h.execute_update(OrderWorkflow.finish_production, ActorInput(actor=SELLER))
    await h.execute_update(OrderWorkflow.quality_check, QcInput(actor=SELLER, passed=True))
    await ship(h)
    await deliver(h)
    return h, Stage.COMPLETED  # the inspection window ends: receipt auto-confirmed


# ---- after-sales (patch "aftersales-v1"): recorded with the patched code


async def _delivered(client, tq, name: str) -> Handle:
    h = await create_order(client, tq, order_id=_oid(name), price=100_000)
    await accept(h)
    await pay(h, 100_000, "FULL-1")
    await produce(h)
    await ship(h)
    await deliver(h)
    return h


async def _request_return(h, reason: str = "defect", remedy: str = "refund") -> None:
    from bespoke.domain.models import ReturnRequestInput

    await h.execute_update(OrderWorkflow.request_return, ReturnRequestInput(
        actor=BUYER, reason=reason, remedy=remedy, description="hinge cracked", evidence=("photo-1.jpg",)))


async def _respond(h, action: str, amount: int | None = None, reason: str = "") -> None:
    from bespoke.domain.models import ReturnResponseInput

    await h.execute_update(OrderWorkflow.respond_return,
                           ReturnResponseInput(actor=SELLER, action=action, amount=amount, reason=reason))


async def _ship_back_and_receive(h, disposition: str, cost: int = 0) -> None:
    from bespoke.domain.models import ReceiveReturnInput, ShipReturnInput

    await h.execute_update(OrderWorkflow.ship_return,
                           ShipReturnInput(actor=BUYER, carrier="sf-express", tracking="RT1", shipping_cost=cost))
    await h.execute_update(OrderWorkflow.receive_return, ReceiveReturnInput(
        actor=SELLER, disposition=disposition, salvage_value=30_000 if disposition == "resell_as_stock" else 0))


@scenario("aftersales_window_closes")
async def _aftersales_happy(client, tq, engine):
    h = await _delivered(client, tq, "asw")
    await confirm(h)
    return h, Stage.COMPLETED  # the after-sales window closes in virtual time


@scenario("return_refunded")
async def _return_refunded(client, tq, engine):
    h = await _delivered(client, tq, "ret")
    await _request_return(h)
    await _respond(h, "approve")
    await _ship_back_and_receive(h, "resell_as_stock", cost=2_000)
    return h, Stage.REFUNDED


@scenario("partial_refund_offer_accepted")
async def _partial(client, tq, engine):
    from bespoke.domain.models import OfferAnswerInput

    h = await _delivered(client, tq, "part")
    await _request_return(h, reason="damaged_in_transit")
    await _respond(h, "offer_partial", amount=20_000)
    await h.execute_update(OrderWorkflow.answer_offer, OfferAnswerInput(actor=BUYER, accept=True))
    return h, Stage.REFUNDED


@scenario("repair_round_trip")
async def _repair(client, tq, engine):
    h = await _delivered(client, tq, "rep")
    await _request_return(h, remedy="repair")
    await _respond(h, "approve")
    await _ship_back_and_receive(h, "rework")
    await h.execute_update(OrderWorkflow.reship, ShipInput(actor=SELLER, carrier="sf-express", tracking="RS1"))
    await deliver(h)
    await confirm(h)
    return h, Stage.COMPLETED


@scenario("return_after_completion")
async def _return_after_completion(client, tq, engine):
    h = await _delivered(client, tq, "retc")
    await confirm(h)
    await _request_return(h)
    await _respond(h, "approve")
    await _ship_back_and_receive(h, "scrap")
    return h, Stage.REFUNDED


@scenario("buyer_cancels_while_shipped")
async def _cancel_shipped(client, tq, engine):
    h = await create_order(client, tq, order_id=_oid("cship"), price=100_000)
    await accept(h)
    await pay(h, 100_000, "FULL-1")
    await produce(h)
    await ship(h)
    await h.execute_update(OrderWorkflow.cancel, CancelInput(actor=BUYER, reason="no longer needed"))
    return h, Stage.CANCELLED  # patch cancel-shipped-v1: the goods come back


@scenario("aftersales_window_from_delivery")
async def _window_from_delivery(client, tq, engine):
    h = await _delivered(client, tq, "wfd")
    await confirm(h)
    await _request_return(h)
    await _respond(h, "reject", reason="within tolerance")
    # No dispute: the case closes after the escalation period, the window resumes
    # (counted from delivery, the case's time added) and closes in virtual time.
    return h, Stage.COMPLETED


@scenario("dispute_arbitrated")
async def _dispute(client, tq, engine):
    from bespoke.domain.models import ArbitrateInput, DisputeInput, EvidenceInput

    h = await _delivered(client, tq, "disp")
    await _request_return(h)
    await _respond(h, "reject", reason="customer damage")
    await h.execute_update(OrderWorkflow.dispute, DisputeInput(actor=BUYER, claim=50_000, statement="arrived cracked"))
    await h.execute_update(OrderWorkflow.evidence, EvidenceInput(actor=BUYER, items=("unboxing.mp4",), final=True))
    await h.execute_update(OrderWorkflow.evidence, EvidenceInput(actor=SELLER, items=("qc-photos.zip",), final=True))
    await h.execute_update(OrderWorkflow.arbitrate, ArbitrateInput(actor=OPS, refund=30_000, note="shared fault"))
    return h, Stage.REFUNDED


@scenario("dispute_default_no_seller_evidence")
async def _dispute_default(client, tq, engine):
    from bespoke.domain.models import DisputeInput, EvidenceInput

    h = await _delivered(client, tq, "dispd")
    await _request_return(h)
    await _respond(h, "reject")
    await h.execute_update(OrderWorkflow.dispute, DisputeInput(actor=BUYER, claim=40_000))
    await h.execute_update(OrderWorkflow.evidence, EvidenceInput(actor=BUYER, items=("video",), final=True))
    return h, Stage.REFUNDED  # the seller's evidence deadline passes


@scenario("deadlines_overridden_by_ops")
async def _overridden(client, tq, engine):
    from bespoke.domain.models import OverrideDeadlineInput

    h = await _delivered(client, tq, "ovr")
    await h.execute_update(OrderWorkflow.override_deadline, OverrideDeadlineInput(
        actor=OPS, deadline="inspection_window", extend_seconds=3 * 86400, reason="buyer travelling"))
    await _request_return(h)
    await h.execute_update(OrderWorkflow.override_deadline, OverrideDeadlineInput(
        actor=OPS, deadline="return_response", extend_seconds=86400, reason="seller at a trade fair"))
    await h.execute_update(OrderWorkflow.override_deadline, OverrideDeadlineInput(
        actor=OPS, deadline="return_response", now=True, reason="seller unreachable"))
    return h, Stage.COMPLETED  # auto-approved, never shipped back, the extended window expires


# ---- one read-model sync per reaction (patch "sync-batched-v1"): the same orders
# again, recorded with the batched code; the files above keep the unbatched path.
for _base in ("full_prepayment", "staged_30_60_10_retention", "credit_repaid", "cash_on_delivery",
              "buyer_cancels_in_production", "deposit_timeout", "repair_round_trip", "dispute_arbitrated",
              "deadlines_overridden_by_ops"):
    SCENARIOS[f"{_base}_batched"] = SCENARIOS[_base]


# ---- the policy store: the input carries the policy's terms and its pin, the rules
# load the policy from the store by pin (orders above carry the whole policy).
SCENARIOS["full_prepayment_policy_store"] = SCENARIOS["full_prepayment"]
SCENARIOS["return_refunded_policy_store"] = SCENARIOS["return_refunded"]


@scenario("plugin_pinned_cancel_routed")
async def _plugin_routed(client, tq, engine):
    # rules-routed-v1: an order that pins a plugin has its decisions made on the rules
    # queue of its plugin set (activities, not local activities).
    import re

    from bespoke.domain.models import MilestoneInput
    from bespoke.rules import BUILTIN_POLICY_DIR, load_policy_text

    text = (BUILTIN_POLICY_DIR / "default.toml").read_text()
    text = re.sub(r'(?m)^name = "default"$', 'name = "routed"', text, count=1)
    text += '\n[[plugins.hooks]]\ntable = "cancellation"\nplugin = "example.materials_reuse"\n'
    h = await create_order(client, tq, order_id=_oid("plug"), plan="staged:30/70", price=100_000,
                           policy=load_policy_text(text, "routed"))
    await accept(h)
    await pay(h, 30_000, "DEP-1")
    await h.execute_update(OrderWorkflow.milestone, MilestoneInput(actor=SELLER, milestone="materials", cost=12_000))
    await h.execute_update(OrderWorkflow.cancel, CancelInput(actor=BUYER, reason="no longer needed"))
    return h, Stage.CANCELLED


# ---- reminders before default actions (patch "deadline-reminders-v1", default
# policy with [reminders]): the after-sales window's, the inspection window's moved
# by an override, the return's and the dispute evidence's.
for _base in ("full_prepayment", "deadlines_overridden_by_ops", "dispute_default_no_seller_evidence"):
    SCENARIOS[f"reminders_{_base}"] = SCENARIOS[_base]


# ---- one local activity per read-model sync (patch "sync-local-v1"): postings and
# projection in one write recorded as a marker, no regular activity per sync.
for _base in ("full_prepayment", "staged_30_60_10_retention", "credit_repaid", "cash_on_delivery",
              "buyer_cancels_in_production", "deposit_timeout", "return_refunded", "dispute_arbitrated",
              "deadlines_overridden_by_ops", "plugin_pinned_cancel_routed"):
    SCENARIOS[f"local_sync_{_base}"] = SCENARIOS[_base]


# ---- continue-as-new: an order that hands its state to a new run every two
# updates, through production, a repair case and the after-sales window. Each file
# is one run of the chain: the first (started from the order input, ends by
# continuing as new), one in the middle of the repair case (started from a carried
# state), and the last (completes).
async def _continued(client, tq, engine, pick: Callable[[list[str]], str]):
    from bespoke.domain.models import OrderResult, ReturnResponseInput
    from tests.helpers import policy_variant

    h = await create_order(client, tq, order_id=_oid("can"), plan="staged:30/70", price=100_000,
                           policy=policy_variant(max_updates_per_run=2))
    await accept(h)
    await pay(h, 30_000, "DEP-1")
    await produce(h)
    await pay(h, 70_000, "BAL-1")
    await ship(h)
    await deliver(h)
    await _request_return(h, remedy="repair")
    await h.execute_update(OrderWorkflow.respond_return, ReturnResponseInput(actor=SELLER, action="approve"))
    await _ship_back_and_receive(h, "rework")
    await h.execute_update(OrderWorkflow.reship, ShipInput(actor=SELLER, carrier="sf-express", tracking="SF-R1"))
    await deliver(h)
    await confirm(h)
    await h.result()  # the after-sales window closes
    runs, run_id = [], (await client.get_workflow_handle(h.id).describe()).run_id
    while run_id:  # the chain, newest first
        runs.append(run_id)
        started = (await client.get_workflow_handle(h.id, run_id=run_id).fetch_history()).events[0]
        run_id = started.workflow_execution_started_event_attributes.continued_execution_run_id
    return client.get_workflow_handle(h.id, run_id=pick(runs[::-1]), result_type=OrderResult), Stage.COMPLETED


SCENARIOS["continued_as_new_first_run"] = lambda c, t, e: _continued(c, t, e, lambda runs: runs[0])
SCENARIOS["continued_as_new_in_repair"] = lambda c, t, e: _continued(c, t, e, lambda runs: runs[len(runs) * 3 // 4])
SCENARIOS["continued_as_new_last_run"] = lambda c, t, e: _continued(c, t, e, lambda runs: runs[-1])
SCENARIOS["local_sync_continued_as_new_last_run"] = SCENARIOS["continued_as_new_last_run"]


# ---- every older order patch behind one marker (patch "order-patches-bundled-v1"):
# the same orders again, so each path an older patch guards replays bundled: the
# local sync, reminders, input check and consent, after-sales and its window from
# delivery, a payment's reason (collection account), cancelling while shipped,
# the debt kept after a credit refund, rules routed to a plugin set, continue-as-new.
for _base in ("full_prepayment", "staged_30_60_10_retention", "credit_repaid", "cash_on_delivery",
              "collection_account_ops_entry", "buyer_cancels_in_production", "buyer_cancels_while_shipped",
              "deposit_timeout", "return_refunded", "dispute_arbitrated", "dispute_default_no_seller_evidence",
              "deadlines_overridden_by_ops", "aftersales_window_from_delivery", "plugin_pinned_cancel_routed",
              "continued_as_new_in_repair", "continued_as_new_last_run"):
    SCENARIOS[f"bundled_{_base}"] = SCENARIOS[_base]

async def record(names: list[str], *, force: bool) -> list[Path]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=test_server_binary(), data_converter=pydantic_data_converter
    )
    written: list[Path] = []
    async with env:
        await ensure_search_attributes(env.client)
        with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=8) as pool:
            engine = get_engine(f"sqlite:///{tmp}/record.db")
            POLICY_STORE["engine"] = engine  # where create_order pins the policies
            tq = f"record-{uuid.uuid4()}"
            async with build_worker(env.client, task_queue=tq, engine=engine, executor=pool):
                for name in names:
                    path = HERE / f"{name}.json"
                    if path.exists() and not force:
                        print(f"kept     {path.name} (exists; --force to re-record)")
                        continue
                    began = time.monotonic()
                    handle, expected = await SCENARIOS[name](env.client, tq, engine)
                    result = await handle.result()
                    if result.stage is not expected:
                        raise SystemExit(f"{name}: ended {result.stage.value}, expected {expected.value}")
                    if result.paid or result.refunded:  # a refusal at the door moves no money
                        assert_ledger(engine, result.order_id, closed=True)
                    history = await handle.fetch_history()
                    path.write_text(history.to_json() + "\n")
                    written.append(path)
                    print(f"recorded {path.name} ({len(history.events)} events, {time.monotonic() - began:.1f}s)")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="Scenarios to record (default: all without a file).")
    parser.add_argument("--force", action="store_true", help="Re-record the named scenarios even if files exist.")
    parser.add_argument("--list", action="store_true", help="List the scenarios and exit.")
    args = parser.parse_args(argv)
    if args.list:
        for name in SCENARIOS:
            mark = "recorded" if (HERE / f"{name}.json").exists() else "-"
            print(f"{name:32} {mark}")
        return 0
    unknown = [n for n in args.names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}; see --list")
    if args.force and not args.names:
        parser.error("--force needs explicit scenario names: old histories are the point of the replay test")
    asyncio.run(record(args.names or list(SCENARIOS), force=args.force))
    # temporalio's runtime threads can touch Python during interpreter teardown
    # (a fatal "PyGILState_Release" about one exit in three); the files are written.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
