"""Email: read the events outbox into the message log, and send one message
(bespoke/mail/outbox.py does both; these are the thin Temporal adapters)."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from temporalio import activity

from bespoke.domain.mail import CollectInput, CollectResult, SendInput, SendResult
from bespoke.mail.outbox import MailConfig, collect, send_one


class EmailActivities:
    def __init__(self, engine: Engine, mail: MailConfig | None) -> None:
        self._engine, self._mail = engine, mail

    @activity.defn(name="collect_email")
    def collect_email(self, inp: CollectInput) -> CollectResult:
        return collect(self._engine, self._mail, limit=inp.limit, due_limit=inp.due_limit)

    @activity.defn(name="send_email")
    def send_email(self, inp: SendInput) -> SendResult:
        return send_one(self._engine, self._mail, inp.message_id)
