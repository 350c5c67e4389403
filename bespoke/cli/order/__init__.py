"""`bespoke order ...`: create orders, act on them, and read their state.

Actions are Temporal updates: a validator in the workflow rejects the wrong
actor, the wrong stage or a bad amount before anything is recorded, and the
CLI prints that reason on one line and exits 2.

    client.py      the one way to reach an order (connect, query, update, errors)
    common.py      the app, shared options, parsing what people type, `act`
    create.py      create, and the order-field validation imports share
    importer.py    import (CSV/JSON rows)
    reads.py       status, history, list, quote-cancel
    actions.py     accept ... cancel (before and at delivery)
    aftersales.py  returns, repairs, disputes
    deadlines.py   override (ops moves a deadline)
    extensions.py  extend-inspection, ask-more-time, answer-more-time (the parties ask for time)

The modules register their commands on `app` when imported; `bespoke order X`
imports only as far as the module that defines X (common.OrderGroup).
"""

import importlib
from typing import Any

from bespoke.cli.order.common import MODULES, app

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    # The command functions, for scripts that call one directly
    # (bench/status_bench.py: `from bespoke.cli.order import list_orders`).
    for module in MODULES:
        found = getattr(importlib.import_module(f"{__name__}.{module}"), name, None)
        if found is not None:
            return found
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
