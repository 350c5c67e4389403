"""`bespoke webhook list|deliveries|redeliver`, run as the real command against a
database: JSON for scripts, one-line errors with the contract's exit codes."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime

from sqlmodel import Session

from bespoke.api import principals
from bespoke.domain.models import Role
from bespoke.notifications import subscriptions
from bespoke.store.db import get_engine
from bespoke.store.tables import EventRow, WebhookDelivery
from tests.processes import bespoke_command, clean_env


def run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*bespoke_command(), "webhook", *args], env=clean_env(BESPOKE_DATABASE_URL=url),
                          capture_output=True, text=True, timeout=60)


def test_webhook_commands_list_read_the_log_and_redeliver(tmp_path):
    url = f"sqlite:///{tmp_path}/bespoke.db"
    engine = get_engine(url)
    principals.add(engine, "seller:acme", scopes=[], created_by="ops:test")
    made = subscriptions.create(engine, principal="seller:acme", role=Role.SELLER, url="https://hooks.example.com/x",
                                event_types=["order.*"], allow_loopback_http=False)
    now = datetime.now(UTC)
    with Session(engine) as s:
        event = EventRow(event_id="O-1:1", order_id="O-1", seq=1, type="order.created", kind="created",
                         actor="ops:olga", at=now, buyer="alice", seller="acme", payload={"id": "O-1:1"},
                         recorded_at=now)
        s.add(event)
        s.flush()
        s.add(WebhookDelivery(subscription_id=made.subscription.id, event_pk=event.id, event_id="O-1:1",
                              order_id="O-1", event_type="order.created", status="given_up", attempts=9,
                              pending_since=now, next_attempt_at=now, last_status_code=500, last_error="HTTP 500"))
        s.commit()

    listed = run(url, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    hook, = json.loads(listed.stdout)["webhooks"]
    assert hook["id"] == made.subscription.id and hook["principal"] == "seller:acme" and "secret" not in hook
    assert made.secret not in listed.stdout
    log = run(url, "deliveries", made.subscription.id, "--json")
    assert log.returncode == 0, log.stderr
    d, = json.loads(log.stdout)["deliveries"]
    assert (d["event_id"], d["status"], d["attempts"], d["last_status_code"]) == ("O-1:1", "given_up", 9, 500)
    again = run(url, "redeliver", made.subscription.id)
    assert again.returncode == 0 and "1 delivery" in again.stdout, again.stderr
    assert json.loads(run(url, "deliveries", made.subscription.id, "--json").stdout)["deliveries"][0]["status"] == \
        "pending"
    human = run(url, "list")
    assert human.returncode == 0 and made.subscription.id in human.stdout

    for args in (("deliveries", "wh_nope"), ("redeliver", "wh_nope"), ("redeliver", made.subscription.id, "--event",
                                                                       "nope"),
                 ("deliveries", made.subscription.id, "--status", "weird")):
        bad = run(url, *args)
        assert bad.returncode == 2, (args, bad.stderr)
        assert bad.stderr.startswith("error: ") and len(bad.stderr.splitlines()) == 1, bad.stderr
