"""SQLModel tables: the orders read model, the double-entry ledger, the timeline,
the decision audit, buyer accounts and bank transfers.

Table models never cross the workflow boundary (they break the payload
converter); activities convert from the pydantic models in `bespoke.domain`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, JSON, UniqueConstraint, Text
from sqlmodel import Field, SQLModel


class OrderRow(SQLModel, table=True):
    __tablename__ = "orders"

    order_id: str = Field(primary_key=True, max_length=64)
    stage: str = Field(index=True, max_length=32)
    title: str = ""
    buyer: str = Field(index=True)
    seller: str = Field(index=True)
    payment_plan: str = Field(index=True)
    price: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3)
    policy_name: str
    policy_version: str
    paid: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    refunded: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    released_to_seller: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    created_at: datetime
    updated_at: datetime
    # Who must act next and by when (None: no deadline runs on it), and why a rules
    # decision is blocked (None: it is not): the ops queues read these.
    next_step: str = Field(default="", max_length=300, sa_column_kwargs={"server_default": ""})
    next_step_due: datetime | None = Field(default=None, index=True)
    blocked: str | None = Field(default=None, max_length=500, index=True)
    # A fresh random value written by every sync of the row (activities/store.py):
    # while it is unchanged no sync has reached the order, so the API's view cache
    # may serve its last answer without asking Temporal (api/routes/orders.py,
    # ViewCache). Random rather than a counter, so a rebuilt row never repeats one.
    revision: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))


class LedgerEntry(SQLModel, table=True):
    """One leg of a balanced transaction. `(txn_key, leg)` is unique, so a
    retried activity can never post the same transaction twice."""

    __tablename__ = "ledger_entries"
    __table_args__ = (UniqueConstraint("txn_key", "leg", name="uq_ledger_txn_leg"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(index=True, max_length=64)
    txn_key: str = Field(index=True, max_length=200)
    leg: int
    kind: str = Field(max_length=64)
    account: str = Field(max_length=32)
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3)
    memo: str = ""
    at: datetime


class TimelineRow(SQLModel, table=True):
    __tablename__ = "timeline"
    __table_args__ = (UniqueConstraint("order_id", "seq", name="uq_timeline_order_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(index=True, max_length=64)
    seq: int
    at: datetime
    kind: str = Field(max_length=64)
    actor: str
    message: str
    # The entry's structured detail (a reminder's deadline, due time and default
    # action; an extension's old and new due time); None when the message says it all.
    data: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class DebtRow(SQLModel, table=True):
    """What one party owes another on an order (see bespoke.domain.models.Debt);
    the order's rows are replaced at each projection, so they show debts as they
    stand now."""

    __tablename__ = "debts"

    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(index=True, max_length=64)
    debtor: str = Field(index=True, max_length=300)
    creditor: str = Field(max_length=300)
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3)
    why: str
    since: datetime
    due_at: datetime | None = None


class DecisionRow(SQLModel, table=True):
    """Audit of every rules decision with its full explanation."""

    __tablename__ = "decisions"

    decision_id: str = Field(primary_key=True, max_length=200)
    order_id: str = Field(index=True, max_length=64)
    kind: str = Field(max_length=64)
    explanation: dict = Field(sa_column=Column(JSON, nullable=False))
    at: datetime


class PolicyRow(SQLModel, table=True):
    """A pinned policy, stored once, by the sha256 of its canonical content (the
    bytes `bespoke.rules.canonical_json` writes). Written when an order pins it;
    read by the rules activities, which hash the content again before use."""

    __tablename__ = "policies"

    sha256: str = Field(primary_key=True, max_length=64)
    name: str = Field(index=True)
    version: str
    content: str = Field(sa_column=Column(Text, nullable=False))
    stored_at: datetime


class BuyerAccount(SQLModel, table=True):
    """Per-buyer payment facts: the dedicated collection account number and the
    account-period credit line (limit, and frozen when a repayment is overdue)."""

    __tablename__ = "buyer_accounts"

    buyer: str = Field(primary_key=True)
    virtual_account: str = Field(unique=True, max_length=34)
    credit_limit: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(default="CNY", max_length=3)
    frozen: bool = False
    frozen_reason: str = ""


class CreditReservation(SQLModel, table=True):
    """Credit used by one order until the buyer repays it."""

    __tablename__ = "credit_reservations"

    order_id: str = Field(primary_key=True, max_length=64)
    buyer: str = Field(index=True)
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3)
    released: bool = False
    overdue: bool = False


class BankTransfer(SQLModel, table=True):
    """An incoming transfer to a buyer's dedicated collection account."""

    __tablename__ = "bank_transfers"

    reference: str = Field(primary_key=True, max_length=200)
    virtual_account: str = Field(index=True, max_length=34)
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3)
    matched_order_id: str | None = None
    # held (waiting for ops; "unmatched" in rows written before `bank held`) |
    # matched | refunded; "matching" while `bank match` is paying it to an order.
    status: str = Field(max_length=32)
    received_at: datetime
    held_reason: str = Field(default="", sa_column_kwargs={"server_default": ""})
    resolved_by: str = Field(default="", max_length=200, sa_column_kwargs={"server_default": ""})
    resolved_reason: str = Field(default="", max_length=500, sa_column_kwargs={"server_default": ""})
    resolved_at: datetime | None = None


class CreditChange(SQLModel, table=True):
    """Audit trail of ops changing a buyer's credit line: who, why, from what to
    what. Written by `bespoke buyer credit` in the same transaction as the change."""

    __tablename__ = "credit_changes"

    id: int | None = Field(default=None, primary_key=True)
    buyer: str = Field(index=True)
    actor: str = Field(max_length=200)
    reason: str = Field(max_length=500)
    old_limit: int = Field(sa_column=Column(BigInteger, nullable=False))
    new_limit: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3)
    unfroze: bool = False
    at: datetime


# --- Portal sign-in (issue 13): passwords, sessions, invitations, failed attempts.
# A principal is named `role:name` as actors are ("buyer:alice"). Secrets are never
# stored: passwords as argon2id hashes, session and invitation tokens as sha256.


class PortalPassword(SQLModel, table=True):
    """A principal's password for the portal (argon2id hash), set by ops or an invitation."""

    __tablename__ = "portal_passwords"

    principal: str = Field(primary_key=True, max_length=250)
    password_hash: str = Field(max_length=500)
    set_by: str = Field(max_length=250)
    updated_at: datetime


class PortalSession(SQLModel, table=True):
    """A signed-in browser: the cookie holds the token, this row its sha256."""

    __tablename__ = "portal_sessions"

    token_sha256: str = Field(primary_key=True, max_length=64)
    principal: str = Field(index=True, max_length=250)
    csrf_token: str = Field(max_length=64)
    created_at: datetime
    expires_at: datetime


class PortalInvitation(SQLModel, table=True):
    """A one-time link that lets a principal choose a password."""

    __tablename__ = "portal_invitations"

    token_sha256: str = Field(primary_key=True, max_length=64)
    principal: str = Field(index=True, max_length=250)
    created_by: str = Field(max_length=250)
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


class PortalSignInFailure(SQLModel, table=True):
    """A failed sign-in, counted per account and per client address to rate-limit."""

    __tablename__ = "portal_signin_failures"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(index=True, max_length=300)
    at: datetime = Field(index=True)


# --- HTTP API (issue 11): principals, idempotency keys, signed callback events.


class ApiPrincipal(SQLModel, table=True):
    """A party the API knows: `role:name`, its bearer token's sha256, its scopes
    (an integration's `carrier:NAME` or `bank`), and for integrations the secret
    their signed callbacks use."""

    __tablename__ = "api_principals"

    principal: str = Field(primary_key=True, max_length=250)
    role: str = Field(max_length=20)
    name: str = Field(max_length=200)
    token_sha256: str = Field(unique=True, max_length=64)
    scopes: str = Field(default="", max_length=1000)
    # Standard Webhooks needs the shared secret itself to check an HMAC, so unlike
    # the token it cannot be stored as a hash.
    webhook_secret: str | None = Field(default=None, max_length=100)
    # Where reminders and decisions are emailed to (BESPOKE_SMTP_URL); None: no email.
    email: str | None = Field(default=None, max_length=254)
    revoked: bool = False
    created_by: str = Field(max_length=250)
    created_at: datetime
    rotated_at: datetime | None = None
    revoked_at: datetime | None = None


class ApiIdempotency(SQLModel, table=True):
    """The first response to a POST with an Idempotency-Key, replayed on retries."""

    __tablename__ = "api_idempotency"

    principal: str = Field(primary_key=True, max_length=250)
    key: str = Field(primary_key=True, max_length=200)
    fingerprint: str = Field(max_length=64)
    status: int  # 0 while the first request is still running
    body: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    created_at: datetime = Field(index=True)


class ApiCallbackEvent(SQLModel, table=True):
    """A signed callback received: applied, or held for ops (unknown account or
    tracking number, or the order refused it); its id is never accepted twice."""

    __tablename__ = "api_callback_events"

    principal: str = Field(primary_key=True, max_length=250)
    event_id: str = Field(primary_key=True, max_length=200)
    kind: str = Field(max_length=40)
    status: str = Field(index=True, max_length=20)
    detail: str = Field(default="", max_length=1000)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    received_at: datetime


# --- Email (issue 12): what was sent to whom, and how far the outbox was read.


class EmailMessageRow(SQLModel, table=True):
    """One email: an event (a reminder, a decision) for one recipient, rendered once
    when the event is read and sent from this row, so every attempt sends the same
    message. (event_id, recipient) is unique: a retried or replayed activity finds
    the row and never makes a second message. `pending` until `sent`, `failed` (the
    server refused it for good) or `given_up` (still failing after days)."""

    __tablename__ = "email_messages"
    __table_args__ = (UniqueConstraint("event_id", "recipient", name="uq_email_messages_event_recipient"),)

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=200)
    recipient: str = Field(max_length=250)  # the principal, role:name
    address: str = Field(max_length=254)
    order_id: str = Field(index=True, max_length=64)
    subject: str = Field(max_length=300)
    body: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(index=True, max_length=20)
    attempts: int = 0
    last_error: str = Field(default="", max_length=500)
    created_at: datetime
    next_attempt_at: datetime  # a pending message is not tried before this (backoff)
    sent_at: datetime | None = None


class EmailCursor(SQLModel, table=True):
    """How far email has read the events outbox (`events.id`), apart from any
    webhook subscription's progress."""

    __tablename__ = "email_cursor"

    name: str = Field(primary_key=True, max_length=40)
    position: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime


# --- Notifications (issue 12): the events outbox, webhook subscriptions, deliveries.


class EventRow(SQLModel, table=True):
    """The events outbox: one row per timeline entry and per decision, written by
    `project_order` in the same transaction as the read model, so an event exists
    exactly when the entry it describes does. Rows are never updated. Webhook
    deliveries and email read it; `id` is the order they were recorded in.

    `event_id` is derived from what the event describes (`ORDER:SEQ` for a
    timeline entry, the decision id for a decision), never from a counter, so a
    retried projection or a rebuild can never give one event a second id. `seq`
    numbers an order's events 1, 2, 3… in the order they were recorded."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("order_id", "seq", name="uq_events_order_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(unique=True, max_length=200)
    order_id: str = Field(index=True, max_length=64)
    seq: int
    type: str = Field(index=True, max_length=64)  # the catalogue's name: order.stage_changed, decision.made …
    kind: str = Field(max_length=64)  # the timeline kind it comes from, or "decision"
    actor: str = Field(max_length=300)
    at: datetime  # when it happened (workflow time)
    # Who may see it (the API's rule): the order's buyer, seller and carrier names.
    buyer: str = Field(max_length=200)
    seller: str = Field(max_length=200)
    carrier: str | None = Field(default=None, max_length=100)
    payload: dict = Field(sa_column=Column(JSON, nullable=False))  # the body a webhook sends, bounded
    recorded_at: datetime  # wall clock when the outbox row was written


class WebhookSubscription(SQLModel, table=True):
    """A principal's webhook: an endpoint URL, the event types it wants, and the
    Standard Webhooks secret its deliveries are signed with (kept as is: the
    receiver checks an HMAC with the same secret)."""

    __tablename__ = "webhook_subscriptions"

    id: str = Field(primary_key=True, max_length=40)
    principal: str = Field(index=True, max_length=250)
    url: str = Field(max_length=2000)
    event_types: str = Field(max_length=1000)  # space-separated patterns: order.* deadline.reminder
    secret: str = Field(max_length=100)
    enabled: bool = True
    disabled_reason: str = Field(default="", max_length=500)
    disabled_at: datetime | None = None
    failing_since: datetime | None = None  # first failure after the last success
    last_success_at: datetime | None = None
    created_at: datetime


class WebhookDelivery(SQLModel, table=True):
    """One event to one subscription: its delivery log (attempts, last status
    code and error). `pending` until delivered or given up; an order's later
    event waits while an earlier one of the same subscription is pending."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id", name="uq_webhook_deliveries_sub_event"),
        Index("ix_webhook_deliveries_pending", "status", "subscription_id", "order_id", "event_pk"),
    )

    id: int | None = Field(default=None, primary_key=True)
    subscription_id: str = Field(index=True, max_length=40)
    event_pk: int  # events.id: the order deliveries go out in
    event_id: str = Field(max_length=200)
    order_id: str = Field(max_length=64)
    event_type: str = Field(max_length=64)
    status: str = Field(max_length=20)  # pending | delivered | given_up
    attempts: int = 0
    pending_since: datetime  # when it was recorded, or asked to be redelivered: retries stop 3 days on
    next_attempt_at: datetime
    last_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str = Field(default="", max_length=500)
    delivered_at: datetime | None = None
