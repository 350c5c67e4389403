"""`GET /api/orders/{id}` answers from the ViewCache while the order has not
changed. Every sync moves the read-model row's revision, which a read checks
first, so an action or a timer's default action is seen by the next read; what
the row does not show yet (a continue-as-new's first state, the update that
closes an order) is seen once the history's describe shows it, within max_age."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bespoke.api.routes.orders import ViewCache
from bespoke.domain.models import OrderView
from tests.api.conftest import bearer
from tests.api.helpers import act, create

pytestmark = pytest.mark.usefixtures("worker")


async def test_status_reads_are_cached_until_an_action_or_a_timer_changes_the_order(api, app, tokens, client, env):
    oid = await create(api, tokens)
    await act(api, tokens, "buyer:alice", oid, "consent")
    await act(api, tokens, "seller:acme", oid, "accept")
    ops = bearer(tokens["ops:olga"])

    first = await api.get(f"/api/orders/{oid}", headers=ops)
    cache: ViewCache = app.state.bespoke_view_cache
    hits = cache.hits + cache.fresh_hits
    again = await api.get(f"/api/orders/{oid}", headers=bearer(tokens["buyer:alice"]))
    assert cache.hits + cache.fresh_hits == hits + 1 and again.content == first.content
    assert first.json()["stage"] == "awaiting_deposit" and first.headers["content-type"] == "application/json"
    # The same JSON the query answers, as an OrderView.
    queried = await client.get_workflow_handle(f"order-{oid}").query("status", args=[50, None], result_type=OrderView)
    assert OrderView.model_validate(first.json()) == queried
    # Another party's read of a cached view is still refused, and says nothing.
    r = await api.get(f"/api/orders/{oid}", headers=bearer(tokens["buyer:bob"]))
    assert r.status_code == 404 and "alice" not in r.text

    # An action moves the revision: the next read asks the workflow.
    await act(api, tokens, "buyer:alice", oid, "pay", {"amount": 120_000, "currency": "CNY", "reference": "P-1"})
    paid = (await api.get(f"/api/orders/{oid}", headers=ops)).json()
    assert paid["stage"] == "in_production" and paid["paid"] == 120_000

    # So does a timer: 40 days on, production is late and the workflow records
    # it (the deadline's default action) with nobody calling.
    before = (await api.get(f"/api/orders/{oid}", headers=ops)).json()
    await env.sleep(timedelta(days=40))
    after = (await api.get(f"/api/orders/{oid}", headers=ops)).json()
    queried = await client.get_workflow_handle(f"order-{oid}").query("status", args=[50, None], result_type=OrderView)
    assert after == queried.model_dump(mode="json")
    assert after["timeline"][-1]["seq"] > before["timeline"][-1]["seq"]


async def read_twice_the_second_from_the_cache(api, cache: ViewCache, oid: str, headers: dict[str, str],
                                               stage: str) -> None:
    """Two reads of `oid` show `stage`; the second is served from the cache,
    without asking Temporal."""
    assert (await api.get(f"/api/orders/{oid}", headers=headers)).json()["stage"] == stage
    served = cache.fresh_hits
    assert (await api.get(f"/api/orders/{oid}", headers=headers)).json()["stage"] == stage
    assert cache.fresh_hits == served + 1


async def test_a_change_made_past_this_api_is_seen_at_once_though_the_cache_would_trust_itself_for_an_hour(
        api, app, tokens, client):
    """The row's revision, not the time, decides: an action taken with the
    Temporal client directly (the CLI's path, not through this replica) is seen by
    the next read, with a cache that skips the describe for an hour."""
    from bespoke.domain.models import Actor, ActorInput, Role
    from bespoke.workflows.order import OrderWorkflow

    app.state.bespoke_view_cache = cache = ViewCache(check_after=3600, max_age=3600)
    oid = await create(api, tokens)
    await act(api, tokens, "buyer:alice", oid, "consent")
    ops = bearer(tokens["ops:olga"])
    await read_twice_the_second_from_the_cache(api, cache, oid, ops, "awaiting_acceptance")
    served = cache.fresh_hits

    await client.get_workflow_handle(f"order-{oid}").execute_update(
        OrderWorkflow.accept, ActorInput(actor=Actor(role=Role.SELLER, name="acme")))
    seen = (await api.get(f"/api/orders/{oid}", headers=ops)).json()
    assert seen["stage"] == "awaiting_deposit" and cache.fresh_hits == served


async def test_the_read_right_after_the_update_that_closes_an_order_shows_it_closed(api, app, tokens):
    """`confirm` completes the order, and the update may answer before the
    order's last sync (loop.py `finish`); the actor's next read through this
    replica shows it completed, with a cache that would otherwise trust itself for
    an hour. Every action through the API drops the order's cached view, even
    one refused (which moves nothing), so this replica's next read asks Temporal."""
    from tests.api.helpers import post, to_shipped

    app.state.bespoke_view_cache = cache = ViewCache(check_after=3600, max_age=3600)
    oid = await to_shipped(api, tokens)
    await act(api, tokens, "carrier:sf-express", oid, "deliver")
    alice = bearer(tokens["buyer:alice"])
    await read_twice_the_second_from_the_cache(api, cache, oid, alice, "delivered")
    served = cache.fresh_hits
    refused = await post(api, tokens, "seller:acme", f"/api/orders/{oid}/finish_production", None)
    assert refused.status_code == 409, refused.text
    misses = cache.misses
    assert (await api.get(f"/api/orders/{oid}", headers=alice)).json()["stage"] == "delivered"
    assert cache.fresh_hits == served and cache.misses == misses + 1  # dropped by the action
    served = cache.fresh_hits
    await act(api, tokens, "buyer:alice", oid, "confirm")
    after = (await api.get(f"/api/orders/{oid}", headers=alice)).json()
    assert after["stage"] == "completed" and after["released_to_seller"] > 0
    assert cache.fresh_hits == served  # asked Temporal, not the cache


async def test_an_entry_is_served_without_a_describe_only_while_its_row_stands_and_for_max_age():
    import asyncio

    cache = ViewCache(check_after=1.0, max_age=5.0)
    view = object()
    cache.put("o1", ("run", 5), view, b"{}", 111, now=100.0)  # type: ignore[arg-type]
    assert cache.fresh("o1", 111, 100.5) == (view, b"{}", False)
    assert cache.fresh("o1", 222, 100.5) is None  # a sync moved the row
    assert cache.fresh("o1", None, 100.5) is None  # no row (not synced yet): always describe
    assert cache.fresh("o1", 0, 100.5) is None  # a row migration 0011 or an older worker left at 0
    assert cache.fresh("o1", 111, 105.0) is None  # too long since the last describe: wait for one
    # Past check_after the entry is still served, and the caller is told to check
    # it in the background; while that check runs, no read starts a second one.
    assert cache.fresh("o1", 111, 101.5) == (view, b"{}", True)
    release = asyncio.Event()
    calls = []

    async def describe() -> tuple[str, int]:
        calls.append(1)
        await release.wait()
        return ("run", 5)

    cache.check("o1", describe, 101.5)
    assert cache.fresh("o1", 111, 101.6) == (view, b"{}", False)
    cache.check("o1", describe, 101.6)  # a second call while one runs does nothing
    release.set()
    await asyncio.gather(*list(cache._checks.values()))
    assert len(calls) == 1 and cache.fresh("o1", 111, 106.0) is not None  # confirmed at 101.5
    # A describe that finds the history unmoved confirms the entry, if the row
    # has not moved either: a sync commits before the history shows its task.
    assert cache.get("o1", ("run", 5), 222, 104.0) is None
    assert cache.get("o1", ("run", 5), 111, 104.0) is not None
    assert cache.fresh("o1", 111, 108.9) is not None
    assert cache.get("o1", ("run", 6), 111, 109.0) is None  # the history moved: ask the workflow
    cache.put("o2", ("run", 5), view, b"{}")  # type: ignore[arg-type]  # no time: never fresh
    assert cache.fresh("o2", None, 0.0) is None and cache.get("o2", ("run", 5)) is not None
    cache.forget("o2")
    assert cache.get("o2", ("run", 5)) is None


async def test_a_background_check_keeps_an_unmoved_entry_and_drops_a_moved_or_failed_one():
    import asyncio

    cache = ViewCache(check_after=1.0, max_age=5.0)
    view = object()
    for oid in ("same", "moved", "failed"):
        cache.put(oid, ("run", 5), view, b"{}", 1, now=100.0)  # type: ignore[arg-type]
        assert cache.fresh(oid, 1, 102.0) == (view, b"{}", True)

    async def unmoved() -> tuple[str, int]:
        return ("run", 5)

    async def moved() -> tuple[str, int]:
        return ("run", 7)

    async def failed() -> tuple[str, int]:
        raise RuntimeError("Temporal is down")

    for oid, describe in (("same", unmoved), ("moved", moved), ("failed", failed)):
        cache.check(oid, describe, 102.0)
    await asyncio.sleep(0)
    await asyncio.gather(*list(cache._checks.values()))
    assert cache.fresh("same", 1, 106.5) == (view, b"{}", True)  # confirmed at 102: served until 107
    assert cache.fresh("moved", 1, 102.1) is None and cache.fresh("failed", 1, 102.1) is None


def test_the_cache_is_bounded_by_entries_and_bytes():
    cache = ViewCache(max_entries=3, max_bytes=10_000)
    view = object()
    for i in range(5):
        cache.put(f"o{i}", ("run", 5), view, b"x" * 50)  # type: ignore[arg-type]
    assert cache.get("o0", ("run", 5)) is None and cache.get("o4", ("run", 5)) is not None
    cache.put("big", ("run", 5), view, b"x" * 200)  # type: ignore[arg-type]  # > 1% of the bytes: not kept
    assert cache.get("big", ("run", 5)) is None
    # No history length: not kept, and the older answer it supersedes goes too.
    cache.put("o4", ("run", 0), view, b"x")  # type: ignore[arg-type]
    assert cache.get("o4", ("run", 0)) is None and cache.get("o4", ("run", 5)) is None
    cache.put("o4", ("run", 5), view, b"x" * 50)  # type: ignore[arg-type]
    assert cache.get("o4", ("run", 6)) is None  # another revision


async def test_the_portal_on_the_same_app_keeps_its_own_view_cache(api, app, tokens, engine):
    """The portal is mounted on the API's app: its order pages and the API's reads
    each keep their own cache, in either order."""
    from bespoke.portal import auth
    from bespoke.portal.web import SESSION_COOKIE

    oid = await create(api, tokens)
    auth.set_password(engine, auth.parse_principal("buyer:alice"), "correct horse battery", set_by="ops:test")
    session = auth.sign_in(engine, "buyer:alice", "correct horse battery", client="test")[1]
    alice = bearer(tokens["buyer:alice"])
    for _ in range(2):
        assert (await api.get(f"/api/orders/{oid}", headers=alice)).status_code == 200
        page = await api.get(f"/orders/{oid}", headers={"Cookie": f"{SESSION_COOKIE}={session}"})
        assert page.status_code == 200 and oid in page.text
    assert isinstance(app.state.bespoke_view_cache, ViewCache)
