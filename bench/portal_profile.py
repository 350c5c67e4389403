"""Where a portal page's time goes: cProfile over repeated renders of the buyer's
order page and the ops queue, in-process (the app called through httpx's ASGI
transport, no sockets), on the read model `portal_bench.py` builds (10,000 orders,
1 % disputed) and one real order on an embedded server. Prints, per page, the
database queries per render, the mean render time, and the functions with the most
time of their own and in total.

    python bench/portal_profile.py [--orders 10000] [--renders 50] [--top 25]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
from sqlalchemy import event  # noqa: E402

from bench._common import code_version, machine  # noqa: E402
from bench.portal_bench import scene  # noqa: E402
from bespoke.api.app import create_app  # noqa: E402
from bespoke.portal.web import SESSION_COOKIE  # noqa: E402


async def main(orders: int, renders: int, top: int) -> None:
    async with scene(orders, "portal-profile") as sc:
        client, settings, engine, oid, tokens = sc.client, sc.settings, sc.engine, sc.order_id, sc.tokens
        app = create_app(settings, client=client)
        queries = [0]
        event.listen(engine, "before_cursor_execute", lambda *a: queries.__setitem__(0, queries[0] + 1))
        print(machine())
        print(f"code: {code_version()}; read model: {orders:,} orders")
        from bespoke.cli.order.client import OrderClient

        oc = OrderClient(client, settings)
        for _ in range(5):
            await oc.view(oid, timeline_limit=200)
        start = time.perf_counter()
        for _ in range(renders):
            await oc.view(oid, timeline_limit=200)
        print(f"the order's status query alone (what the buyer page asks Temporal): "
              f"{(time.perf_counter() - start) / renders * 1000:.1f} ms per call")
        for label, path, who in (("buyer order page", f"/orders/{oid}", "buyer:alice"),
                                 ("ops queue", "/ops", "ops:olga")):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://portal",
                                         cookies={SESSION_COOKIE: tokens[who]}) as http:
                for _ in range(5):  # warm: templates compiled, connections pooled
                    assert (await http.get(path)).status_code == 200
                before = queries[0]
                profile = cProfile.Profile()
                start = time.perf_counter()
                profile.enable()
                for _ in range(renders):
                    r = await http.get(path)
                profile.disable()
                took = (time.perf_counter() - start) / renders
                assert r.status_code == 200
                print(f"\n== {label} ({path}): {took * 1000:.1f} ms per render (mean of {renders}), "
                      f"{(queries[0] - before) / renders:.1f} database queries per render, "
                      f"{len(r.content):,} bytes")
                for key in ("tottime", "cumulative"):
                    out = io.StringIO()
                    pstats.Stats(profile, stream=out).sort_stats(key).print_stats(top)
                    text = out.getvalue()
                    print(f"-- by {key}:")
                    print(text[text.find("   ncalls"):].rstrip())


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=10_000)
    ap.add_argument("--renders", type=int, default=50)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    asyncio.run(main(args.orders, args.renders, args.top))
