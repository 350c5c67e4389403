"""`order ask-more-time`, `answer-more-time` and `extend-inspection` through the
real CLI against `bespoke up`: the timeline shows each, a refused one exits 2 with
one line and changes nothing."""

from __future__ import annotations

from datetime import datetime, timedelta

from bespoke.cli.errors import EXIT_REJECTED

from .conftest import Bespoke
from .test_orders import create, new_id


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_parties_ask_for_and_grant_more_time_through_the_cli(bespoke: Bespoke) -> None:
    oid = new_id("EXT")
    create(bespoke, oid, price="1000.00")
    bespoke.json("order", "accept", oid, "--as", "seller:acme")
    bespoke.json("order", "pay", oid, "--as", "buyer:alice", "--amount", "1000.00", "--reference", f"{oid}-P")
    promised = at(bespoke.status(oid)["promised_at"])

    ask = ["order", "ask-more-time", oid, "--as", "seller:acme", "--by", "P5D", "--reason", "glass supplier late"]
    assert "only the seller" in bespoke.fails(EXIT_REJECTED, "order", "ask-more-time", oid, "--as", "buyer:alice",
                                              "--by", "P5D", "--reason", "x")
    assert "ISO-8601 duration" in bespoke.fails(EXIT_REJECTED, "order", "ask-more-time", oid, "--as", "seller:acme",
                                                "--by", "5 days", "--reason", "x")
    assert "at most 30 days" in bespoke.fails(EXIT_REJECTED, "order", "ask-more-time", oid, "--as", "seller:acme",
                                              "--by", "P31D", "--reason", "x")
    before = bespoke.status(oid)
    assert "has not asked" in bespoke.fails(EXIT_REJECTED, "order", "answer-more-time", oid, "--as", "buyer:alice",
                                            "--accept")
    assert bespoke.status(oid) == before, "a refused action changed the order"
    assert "5 days more production time" in bespoke.json(*ask)["message"]
    result = bespoke.json("order", "answer-more-time", oid, "--as", "buyer:alice", "--accept", "--note", "fine")
    assert "accepted 5 days" in result["message"]
    view = bespoke.status(oid)
    assert at(view["promised_at"]) == promised + timedelta(days=5)
    kinds = [e["kind"] for e in view["timeline"]]
    assert kinds[-2:] == ["more_time_asked", "more_time_answered"]
    assert view["timeline"][-1]["data"]["accepted"] is True

    for args in (["milestone", oid, "--as", "seller:acme", "--milestone", "materials", "--cost", "100.00"],
                 ["finish", oid, "--as", "seller:acme"], ["qc", oid, "--as", "seller:acme", "--pass"],
                 ["ship", oid, "--as", "seller:acme", "--carrier", "sf-express", "--tracking", "SF1"],
                 ["deliver", oid, "--as", "carrier:sf-express"]):
        bespoke.json("order", *args)
    window = at(next(d["due_at"] for d in bespoke.status(oid)["deadlines"] if d["name"] == "inspection_window"))
    assert "or less are left" in bespoke.fails(EXIT_REJECTED, "order", "extend-inspection", oid, "--as",
                                               "buyer:alice")
    result = bespoke.json("order", "extend-inspection", oid, "--as", "seller:acme", "--by", "P5D",
                          "--reason", "buyer asked by phone")
    assert "extended by 5 days" in result["message"]
    view = bespoke.status(oid)
    moved = at(next(d["due_at"] for d in view["deadlines"] if d["name"] == "inspection_window"))
    assert moved == window + timedelta(days=5)
    entry = view["timeline"][-1]
    assert (entry["kind"], entry["actor"], entry["data"]["by"]) == ("deadline_extended", "seller:acme", "P5D")
