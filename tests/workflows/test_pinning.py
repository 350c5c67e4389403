"""An order pins its policy at creation: editing the file or publishing a new
version changes new orders only, never one already running."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from bespoke.domain.models import Actor, PaymentPlan, Stage
from bespoke.rules import BUILTIN_POLICY_DIR, PolicyError, find_policy, policy_sha256
from bespoke.service import build_order_input, start_order
from tests.helpers import POLICY_STORE, accept, order_policy, assert_view_matches_ledger, confirm, deliver, pay, produce, ship

pytestmark = pytest.mark.usefixtures("worker")

PRICE = 100_000


def write_policy(directory: Path, *, version: str, fee_bps: int) -> Path:
    """The default policy renamed `shop`, at `version`, with a platform fee of `fee_bps`.

    Its golden cases keep their rules but not their amounts (computed with the
    default fee): a policy whose cases fail `policy check` cannot be pinned."""
    text = (BUILTIN_POLICY_DIR / "default.toml").read_text(encoding="utf-8")
    text = re.sub(r"^expect = \{.*\}$", "expect = {}", text, flags=re.MULTILINE)
    for pattern, line in [(r'^name = ".*"$', 'name = "shop"'), (r'^version = ".*"$', f'version = "{version}"'),
                          (r"^platform_fee_bps = \d+", f"platform_fee_bps = {fee_bps}")]:
        text, n = re.subn(pattern, line, text, count=1, flags=re.MULTILINE)
        assert n == 1, f"default.toml has no line matching {pattern}"
    path = directory / "shop.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def start(client, task_queue: str, policy_dir: Path):
    inp = build_order_input(
        order_id=f"PIN{uuid.uuid4().hex[:10]}", buyer="alice", seller="acme", price=PRICE, currency="CNY",
        plan=PaymentPlan.parse("full_prepayment"), production_days=14,
        policy=find_policy("shop", [policy_dir]), created_by=Actor.parse("ops:olga"), store=POLICY_STORE["engine"],
    )
    return inp, await start_order(client, inp, task_queue=task_queue)


async def complete(handle) -> None:
    await pay(handle, PRICE)
    await produce(handle)
    await ship(handle)
    await deliver(handle)
    await confirm(handle)
    await handle.result()


async def test_running_order_keeps_its_pinned_policy_after_the_file_changes(client, task_queue, engine, tmp_path):
    write_policy(tmp_path, version="1.0.0", fee_bps=300)
    old = find_policy("shop", [tmp_path])
    first_inp, first = await start(client, task_queue, tmp_path)
    assert first_inp.pin["sha256"] == policy_sha256(old)
    await accept(first)

    # Publish 1.1.0 with a higher fee over the same file while the order runs.
    write_policy(tmp_path, version="1.1.0", fee_bps=800)
    new = find_policy("shop", [tmp_path])
    assert new.version == "1.1.0" and policy_sha256(new) != policy_sha256(old)
    with pytest.raises(PolicyError, match="shop@1.0.0 not found"):
        find_policy("shop@1.0.0", [tmp_path])  # the old version is gone from disk

    await complete(first)
    view = await assert_view_matches_ledger(first, engine, first_inp.order_id, closed=True)
    assert view.stage is Stage.COMPLETED
    assert (view.policy.name, view.policy.version, view.policy.sha256) == ("shop", "1.0.0", policy_sha256(old))
    assert view.platform_fee == PRICE * 300 // 10_000 and view.released_to_seller == PRICE - 3_000
    settlement = [d for d in view.decisions if d["kind"] == "settlement"][-1]
    pin = settlement["explanation"]["pin"]
    assert pin["version"] == "1.0.0" and pin["sha256"] == policy_sha256(old)

    # A new order pins the new version and pays the new fee.
    second_inp, second = await start(client, task_queue, tmp_path)
    assert second_inp.pin["version"] == "1.1.0" and second_inp.pin["sha256"] == policy_sha256(new)
    await accept(second)
    await complete(second)
    view = await assert_view_matches_ledger(second, engine, second_inp.order_id, closed=True)
    assert view.policy.sha256 == policy_sha256(new)
    assert view.platform_fee == PRICE * 800 // 10_000 and view.released_to_seller == PRICE - 8_000


async def test_editing_a_policy_in_place_changes_its_pin_but_not_a_running_order(
    client, task_queue, engine, tmp_path
):
    write_policy(tmp_path, version="1.0.0", fee_bps=300)
    inp, handle = await start(client, task_queue, tmp_path)
    await accept(handle)
    # Same name and version, different content: only the sha256 tells them apart.
    write_policy(tmp_path, version="1.0.0", fee_bps=900)
    edited = find_policy("shop@1.0.0", [tmp_path])
    assert policy_sha256(edited) != inp.pin["sha256"]
    pinned = await order_policy(handle)  # from the policy store, by the order's pin
    assert pinned.fees.platform_fee_bps == 300
    await complete(handle)
    view = await assert_view_matches_ledger(handle, engine, inp.order_id, closed=True)
    assert view.policy.sha256 == inp.pin["sha256"]
    assert view.platform_fee == 3_000
