"""Encryption, when configured, is enforced (issue 10.8), on a real embedded
server with a real bespoke worker holding the key and real `bespoke` commands:

- a client without the key starts an order: it fails at once, nothing runs, the
  read model never sees it;
- a keyless `bespoke` command refuses to act on an answer it cannot read (one
  line, exit 1), and a keyless action is rejected (exit 2), recording nothing;
- a wrong secret under the right key id is one line, not `InvalidTag:`;
- buyer and seller are indexed by a keyed hash in Temporal's search attributes,
  never in clear, and `order list --buyer` still finds the order."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.client import WorkflowFailureError

from bespoke.domain.models import Actor, PaymentPlan
from bespoke.domain.search_attributes import BUYER, SELLER
from bespoke.rules import find_policy
from bespoke.runtime.client import connect
from bespoke.runtime.codec import generate_key
from bespoke.runtime.embedded import EmbeddedServer
from bespoke.service import build_order_input, start_order
from bespoke.settings import Settings
from bespoke.store.db import get_engine
from bespoke.store.tables import OrderRow
from bespoke.worker import build_worker
from tests.processes import bespoke_command, clean_env

pytest.importorskip("cryptography")

KEY = f"k1:{generate_key()}"
WRONG = f"k1:{generate_key()}"  # the same key id, another secret


def order(order_id: str, store):
    return build_order_input(order_id=order_id, buyer="alice", seller="acme", price=10_000, currency="CNY",
                             plan=PaymentPlan.parse("full_prepayment"), production_days=14,
                             policy=find_policy("default"), created_by=Actor.parse("ops:olga"), title="oak",
                             store=store)


async def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, [*bespoke_command(), *args], env=env, capture_output=True,
                                   text=True, timeout=120)


async def test_encryption_is_enforced_and_search_attributes_hold_no_names(embedded_settings: Settings,
                                                                          tmp_path: Path) -> None:
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    db_url = f"sqlite:///{tmp_path}/bespoke.db"
    keyed = embedded_settings.model_copy(update={"payload_key": SecretStr(KEY), "task_queue": task_queue,
                                                 "database_url": db_url})
    engine = get_engine(db_url)
    async with EmbeddedServer(keyed, in_memory=True, headless=True) as server:
        worker_client = await connect(server.settings, worker=True)
        client = await connect(server.settings)
        keyless = await connect(server.settings.model_copy(update={"payload_key": None}))
        env = clean_env(BESPOKE_HOME=str(tmp_path / "home"), BESPOKE_DATABASE_URL=db_url,
                        TEMPORAL_ADDRESS=server.address, BESPOKE_TASK_QUEUE=task_queue, BESPOKE_CLI_TIMEOUT="20")
        with ThreadPoolExecutor(max_workers=4) as executor:
            async with build_worker(worker_client, task_queue=task_queue, engine=engine, executor=executor):
                good = f"ENC-{uuid.uuid4().hex[:8].upper()}"
                handle = await start_order(client, order(good, engine), task_queue=task_queue)
                await asyncio.sleep(0)
                keyed_env = {**env, "BESPOKE_PAYLOAD_KEY": KEY}
                for _ in range(100):  # the first workflow task indexes and syncs the order
                    proc = await cli(keyed_env, "order", "status", good, "--json")
                    if proc.returncode == 0 and json.loads(proc.stdout)["stage"] == "awaiting_acceptance":
                        break
                    await asyncio.sleep(0.2)
                assert json.loads(proc.stdout)["buyer"] == "alice"

                # Search attributes: a keyed hash, never the names.
                attrs = (await handle.describe()).typed_search_attributes
                buyer_index, seller_index = attrs.get(BUYER), attrs.get(SELLER)
                assert buyer_index.startswith("h:") and seller_index.startswith("h:")
                assert "alice" not in buyer_index + seller_index and buyer_index != seller_index
                found = [w.id async for w in client.list_workflows(f"BespokeBuyer = '{buyer_index}'")]
                assert found == [handle.id]
                assert [w.id async for w in client.list_workflows("BespokeBuyer = 'alice'")] == []
                listed = await cli(keyed_env, "order", "list", "--buyer", "alice", "--json")
                assert good in [o["order_id"] for o in json.loads(listed.stdout)["orders"]]

                # A keyless client's order fails at once and nothing runs.
                bad = f"PLAIN-{uuid.uuid4().hex[:8].upper()}"
                plain = await start_order(keyless, order(bad, engine), task_queue=task_queue)
                with pytest.raises(WorkflowFailureError) as info:
                    await plain.result()
                assert "payload refused: a plaintext payload" in str(info.value.cause)
                history = await plain.fetch_history()
                assert not [e for e in history.events if e.HasField("activity_task_scheduled_event_attributes")]
                assert not [e for e in history.events if e.HasField("marker_recorded_event_attributes")]

                # A keyless command cannot read the answer: it refuses to act.
                proc = await cli(env, "order", "pay", good, "--as", "buyer:alice", "--amount", "100.00",
                                 "--reference", "PAY-1")
                assert proc.returncode == 1, proc.stderr
                assert proc.stderr.startswith("error: cannot read Temporal's answer: it is encrypted")
                assert len(proc.stderr.splitlines()) == 1 and "KeyError" not in proc.stderr
                # A keyless action (nothing to read first) is rejected, recording nothing.
                proc = await cli(env, "order", "accept", good, "--as", "seller:acme")
                assert proc.returncode == 2 and "payload refused: a plaintext payload" in proc.stderr, proc.stderr
                # A wrong secret for the right key id: one line.
                proc = await cli({**env, "BESPOKE_PAYLOAD_KEY": WRONG}, "order", "status", good)
                assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1, proc.stderr
                assert "does not decrypt it" in proc.stderr and "InvalidTag" not in proc.stderr

                view = json.loads((await cli(keyed_env, "order", "status", good, "--json")).stdout)
                assert (view["stage"], view["paid"], view["payments"]) == ("awaiting_acceptance", 0, [])
                await handle.terminate("test over")
    from sqlmodel import Session

    with Session(engine) as session:
        assert session.get(OrderRow, bad) is None and session.get(OrderRow, good) is not None
    engine.dispose()
