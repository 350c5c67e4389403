"""CPU of the read-model syncs of one prepaid order, without Temporal.

Takes the `sync_read_model` writes a real order recorded (the local-activity
markers of tests/histories/bundled_full_prepayment.json: 13 syncs from creation to
the end of the after-sales window), gives them a fresh order id per order and
applies them with `bespoke.activities.sync.sync_read_model` to a scratch SQLite
file, as the worker's local activity does (decoding the input included). Prints
the process CPU (user + system) per order and per sync, after a warm-up of 30
orders.

It measures the code on sys.path, so two commits compare by putting an export
of each first on PYTHONPATH (`git archive C | tar -x -C /tmp/sync-C`).

Run: .venv/bin/python bench/sync_bench.py [--orders 300]
"""

from __future__ import annotations

import argparse
import base64
import json
import resource
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import code_version, machine  # noqa: E402
from bespoke.activities.sync import sync_read_model  # noqa: E402
from bespoke.domain.models import ReadModelSync  # noqa: E402
from bespoke.store.db import get_engine  # noqa: E402

HISTORY = Path(__file__).parent.parent / "tests" / "histories" / "bundled_full_prepayment.json"


def recorded_syncs(path: Path = HISTORY) -> list[str]:
    """The JSON of each `sync_read_model` write in the history, in order."""
    found = []
    for event in json.loads(path.read_text())["events"]:
        marker = event.get("markerRecordedEventAttributes")
        if not marker or marker["markerName"] != "core_local_activity":
            continue
        data = json.loads(base64.b64decode(marker["details"]["data"]["payloads"][0]["data"]))
        if data["activity_type"] == "sync_read_model":
            found.append(base64.b64decode(marker["details"]["result"]["payloads"][0]["data"]).decode())
    return found


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=300)
    args = ap.parse_args()
    syncs = recorded_syncs()
    order_id = json.loads(syncs[0])["project"]["projection"]["order_id"]
    with tempfile.TemporaryDirectory() as tmp:
        engine = get_engine(f"sqlite:///{tmp}/bench.db")

        def orders(first: int, count: int) -> None:
            for i in range(first, first + count):
                for text in syncs:
                    data = ReadModelSync.model_validate_json(text.replace(order_id, f"SB{i:06d}"))
                    sync_read_model(engine=engine, data=data)

        orders(0, 30)  # warm-up: imports, statement caches, the file's first pages
        began = cpu()
        orders(1_000, args.orders)
        spent = cpu() - began
        engine.dispose()
    print(f"machine: {machine()}")
    print(f"code: {code_version()}")
    print(f"{args.orders} orders x {len(syncs)} syncs (a prepaid order's, from {HISTORY.name}), SQLite file")
    print(f"cpu per order {spent / args.orders * 1000:.1f} ms, per sync {spent / args.orders / len(syncs) * 1000:.2f} ms")


if __name__ == "__main__":
    main()
