"""A demo set for the portal: people with passwords and orders at interesting
stages, so a newcomer can sign in and act at once (`bespoke demo`, or
`bespoke up --demo` once the API serves the portal).

Safe to run again: existing orders are left as they are; passwords are set anew
(and printed) each time."""

from __future__ import annotations

import secrets
from typing import Any

from temporalio.client import Client

from bespoke.domain import models as m
from bespoke.portal import auth
from bespoke.rules import find_policy
from bespoke.service import OrderExists, build_order_input, start_order
from bespoke.store.db import get_engine

PEOPLE = ("buyer:alice", "buyer:bob", "seller:acme", "ops:olga")
OPS = m.Actor.parse("ops:demo")
ALICE, BOB, ACME = (m.Actor.parse(x) for x in ("buyer:alice", "buyer:bob", "seller:acme"))
CARRIER = m.Actor.parse("carrier:sf-express")


def demo_passwords(engine: Any) -> list[tuple[str, str]]:
    """Set a fresh random password for each demo person; returns (account, password)."""
    out = []
    for who in PEOPLE:
        password = "demo-" + secrets.token_urlsafe(9)
        auth.ensure_principal(engine, auth.parse_principal(who), created_by="bespoke demo")
        auth.set_password(engine, auth.parse_principal(who), password, set_by="bespoke demo")
        out.append((who, password))
    return out


async def _start(client: Client, settings: Any, order_id: str, buyer: str, price: int, plan: str, title: str):
    inp = build_order_input(
        order_id=order_id, buyer=buyer, seller="acme", price=price, currency="CNY",
        plan=m.PaymentPlan.parse(plan), production_days=14, policy=find_policy(settings.default_policy),
        created_by=OPS, title=title, store=get_engine(settings.effective_database_url),
    )
    try:
        return await start_order(client, inp, task_queue=settings.task_queue)
    except OrderExists:
        return None


async def _u(handle: Any, name: str, payload: Any) -> None:
    await handle.execute_update(name, payload, result_type=m.ActionResult)


async def _produce(h: Any, costs: tuple[int, ...] = (250_000, 300_000, 80_000)) -> None:
    for name, cost in zip(("materials", "fabrication", "finishing"), costs):
        await _u(h, "milestone", m.MilestoneInput(actor=ACME, milestone=name, cost=cost))


async def seed_orders(client: Client, settings: Any) -> list[str]:
    """Four orders for the demo people; returns the ids it created."""
    created = []
    # Delivered, waiting for alice to confirm receipt (the README's first walk).
    h = await _start(client, settings, "DEMO-1001", "alice", 1_200_000, "full_prepayment", "walnut display case")
    if h is not None:
        await _u(h, "accept", m.ActorInput(actor=ACME))
        await _u(h, "pay", m.PayInput(actor=ALICE, amount=1_200_000, currency="CNY", reference="DEMO-PAY-1"))
        await _produce(h)
        await _u(h, "finish_production", m.ActorInput(actor=ACME))
        await _u(h, "quality_check", m.QcInput(actor=ACME, passed=True, note="hinges aligned"))
        await _u(h, "ship", m.ShipInput(actor=ACME, carrier="sf-express", tracking="SF1234567890"))
        await _u(h, "deliver", m.DeliverInput(actor=CARRIER))
        created.append("DEMO-1001")
    # In production on a staged plan: the cancellation quote has something to say.
    h = await _start(client, settings, "DEMO-1002", "alice", 800_000, "staged:30/70", "oak counter")
    if h is not None:
        await _u(h, "accept", m.ActorInput(actor=ACME))
        await _u(h, "pay", m.PayInput(actor=ALICE, amount=240_000, currency="CNY", reference="DEMO-PAY-2"))
        await _u(h, "milestone", m.MilestoneInput(actor=ACME, milestone="materials", cost=300_000, note="oak boards"))
        created.append("DEMO-1002")
    # Waiting for alice's deposit.
    h = await _start(client, settings, "DEMO-1003", "alice", 450_000, "full_prepayment", "glass jewellery cabinet")
    if h is not None:
        await _u(h, "accept", m.ActorInput(actor=ACME))
        created.append("DEMO-1003")
    # Bob's dispute, waiting in the ops queue.
    h = await _start(client, settings, "DEMO-1004", "bob", 600_000, "full_prepayment", "fitted wardrobe")
    if h is not None:
        await _u(h, "accept", m.ActorInput(actor=ACME))
        await _u(h, "pay", m.PayInput(actor=BOB, amount=600_000, currency="CNY", reference="DEMO-PAY-4"))
        await _produce(h, (150_000, 150_000, 50_000))
        await _u(h, "finish_production", m.ActorInput(actor=ACME))
        await _u(h, "quality_check", m.QcInput(actor=ACME, passed=True))
        await _u(h, "ship", m.ShipInput(actor=ACME, carrier="sf-express", tracking="SF55501"))
        await _u(h, "deliver", m.DeliverInput(actor=CARRIER))
        await _u(h, "request_return", m.ReturnRequestInput(actor=BOB, reason="not_as_specified",
                                                           description="doors 2 cm narrower than the drawing",
                                                           evidence=("drawing-v3.pdf",)))
        await _u(h, "respond_return", m.ReturnResponseInput(actor=ACME, action="reject", reason="within tolerance"))
        await _u(h, "dispute", m.DisputeInput(actor=BOB, claim=150_000, statement="tolerance was 5 mm"))
        await _u(h, "evidence", m.EvidenceInput(actor=BOB, items=("tape-measure.jpg",), final=True))
        await _u(h, "evidence", m.EvidenceInput(actor=ACME, items=("signed-drawing.pdf",), final=True))
        created.append("DEMO-1004")
    return created


def banner(passwords: list[tuple[str, str]], portal_url: str | None) -> str:
    lines = ["Demo accounts (sign in at " + (f"{portal_url}/sign-in" if portal_url else "the portal's /sign-in") + "):"]
    lines += [f"  {who:<14} {pw}" for who, pw in passwords]
    return "\n".join(lines)


__all__ = ["PEOPLE", "banner", "demo_passwords", "seed_orders"]
