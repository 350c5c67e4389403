"""What a reminder's and a decision's email says: plain, bounded, amounts in major
units, the because text, the due time and its default action, the order link."""

from __future__ import annotations

from datetime import UTC, datetime

from bespoke.mail.render import (
    MAX_BODY,
    Decision,
    Notice,
    OrderFacts,
    Reminder,
    build_message,
    message_id,
    render,
)

ORDER = OrderFacts(order_id="T1", title="walnut display case", currency="CNY", price=120_050, paid=120_050,
                   refunded=0, released_to_seller=0)
DUE = datetime(2026, 12, 17, 13, 55, 10, tzinfo=UTC)


def _reminder(**kw) -> Notice:
    what = Reminder(deadline="inspection_window", due_at=DUE, before="P3D",
                    default_action="receipt auto-confirmed, escrow released to the seller", **kw)
    return Notice(event_id="T1:19", recipient="buyer:alice", order=ORDER, what=what)


def test_a_reminder_says_what_to_do_by_when_and_what_happens_otherwise():
    out = render(_reminder(), public_url="https://orders.example.com/")
    assert out.subject == "Reminder: order T1, inspection window due 2026-12-17 13:55 UTC"
    assert "Hello buyer:alice," in out.body
    assert "waiting for you to inspect the goods: confirm receipt, or open a return" in out.body
    assert "Due:       2026-12-17 13:55 UTC (in 3 days)" in out.body
    assert "If nothing is done by then: receipt auto-confirmed, escrow released to the seller" in out.body
    assert "Price:                  1,200.50 CNY" in out.body
    assert "Open the order: https://orders.example.com/orders/T1" in out.body
    assert "Refunded" not in out.body  # zero amounts other than price and paid are left out


def test_a_late_reminder_says_so_and_no_link_without_a_public_url():
    out = render(_reminder(late=True))
    assert out.subject.startswith("Late reminder: order T1")
    assert "could not send it on time" in out.body and "(in 3 days)" not in out.body
    assert "Open the order" not in out.body


def test_a_decision_lists_amounts_in_major_units_and_each_because():
    what = Decision(decision_id="T1-cancellation-1", kind="cancellation", summary="buyer cancels in production",
                    as_of=datetime(2026, 12, 5, 8, 0, tzinfo=UTC),
                    amounts={"buyer_cost": 40_000, "refund": 80_050, "late_penalty": 0},
                    because=(("C3", "materials already bought are the buyer's cost"),), policy="default@1.2.0")
    out = render(Notice(event_id="T1-cancellation-1", recipient="seller:acme", order=ORDER, what=what))
    assert out.subject == "Decision on order T1: cancellation"
    assert "  buyer cost: 400.00 CNY\n  refund:     800.50 CNY" in out.body
    assert "late penalty" not in out.body  # zero amounts are left out
    assert "  - materials already bought are the buyer's cost (rule C3)" in out.body
    assert "Decided on 2026-12-05 08:00 UTC under policy default@1.2.0 (decision T1-cancellation-1)." in out.body
    assert "as the seller on this order" in out.body


def test_text_from_an_order_cannot_break_the_layout_or_the_headers():
    order = OrderFacts(order_id="T2", title="case\r\nBcc: victim@example.com " + "x" * 5000, currency="JPY",
                       price=5000)
    what = Decision(decision_id="d", kind="dispute", summary="s\nBcc: x@y", as_of=None,
                    because=tuple((f"R{i}", "why " * 400) for i in range(100)))
    out = render(Notice(event_id="e", recipient="buyer:b", order=order, what=what))
    assert "\nBcc:" not in out.body and len(out.body) <= MAX_BODY
    assert "Price:                  5,000 JPY" in out.body  # no minor units in yen
    msg = build_message(sender="orders@example.com", to="b@example.com", subject=out.subject, body=out.body,
                        event_id="e", recipient="buyer:b", date=DUE)
    assert msg["Bcc"] is None


def test_the_message_id_is_stable_per_event_and_recipient():
    a = message_id("T1:19", "buyer:alice", "Bespoke <orders@example.com>")
    assert a == message_id("T1:19", "buyer:alice", "orders@example.com") and a.endswith("@example.com>")
    assert a != message_id("T1:19", "seller:acme", "orders@example.com")
