"""The order timeline's vocabulary: what kinds of entry there are and who the
system actors are. Values are part of the JSON contract (`timeline[].kind`,
`timeline[].actor`) and are recorded in running orders' histories: add members,
never rename one."""

from __future__ import annotations

from enum import StrEnum


class SystemActor(StrEnum):
    """Who acts when no party does."""

    TIMER = "system:timer"  # a deadline passed and its default action ran
    RULES = "system:rules"  # a policy decision moved money or closed a case
    WORKFLOW = "system:workflow"  # the lifecycle moved on (stage changes)


class EventKind(StrEnum):
    """Kinds of timeline entry, grouped by the part of the lifecycle that writes them."""

    # lifecycle
    CREATED = "created"
    STAGE = "stage"
    CANCELLED = "cancelled"
    GOODS_RETURNING = "goods_returning"  # cancelled while shipped: the goods go back to the seller
    # acceptance and money in
    ACCEPTED = "accepted"
    CONSENTED = "consented"  # the buyer agreed to an order someone else created
    CREDIT_RESERVED = "credit_reserved"
    PAYMENT = "payment"
    BALANCE_DUE = "balance_due"
    RETENTION_DUE = "retention_due"
    RETENTION_OVERDUE = "retention_overdue"
    CREDIT_REPAYMENT = "credit_repayment"
    CREDIT_OVERDUE = "credit_overdue"
    CREDIT_REMINDER = "credit_reminder"
    CREDIT_REPAID = "credit_repaid"
    # production
    MILESTONE = "milestone"
    SALVAGE = "salvage"
    PRODUCTION_FINISHED = "production_finished"
    QC_PASSED = "qc_passed"
    QC_FAILED = "qc_failed"
    PROMISED_DATE_PASSED = "promised_date_passed"
    GRACE_PERIOD_OVER = "grace_period_over"
    # delivery
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    REFUSED = "refused"
    COD_REMITTED = "cod_remitted"
    COD_REMITTANCE_OVERDUE = "cod_remittance_overdue"
    CONFIRMED = "confirmed"
    AUTO_CONFIRMED = "auto_confirmed"
    # money out (the kinds are the settlement labels: "settlement", "retention")
    SETTLEMENT = "settlement"
    RETENTION = "retention"
    REFUNDED = "refunded"
    # after-sales
    CASE_OPENED = "case_opened"
    CASE_NOTE = "case_note"
    CASE_CLOSED = "case_closed"
    RETURN_RESPONSE = "return_response"
    RETURN_AUTO_APPROVED = "return_auto_approved"
    OFFER_ANSWER = "offer_answer"
    RETURN_SHIPPED = "return_shipped"
    RETURN_RECEIVED = "return_received"
    RETURN_AUTO_REFUND = "return_auto_refund"
    RESHIPPED = "reshipped"
    DISPUTE_OPENED = "dispute_opened"
    EVIDENCE = "evidence"
    DISPUTE_DEFAULT = "dispute_default"
    ARBITRATED = "arbitrated"
    AFTERSALES_CLOSED = "aftersales_closed"
    # operations
    DEADLINE_OVERRIDDEN = "deadline_overridden"
    DECISION_BLOCKED = "decision_blocked"  # a rules decision keeps failing; retried
    DECISION_UNBLOCKED = "decision_unblocked"
    # notices and extensions (see bespoke/workflows/reminders.py, extensions.py)
    DEADLINE_REMINDER = "deadline_reminder"  # the party who must act is told what happens if not
    DEADLINE_EXTENDED = "deadline_extended"  # a party extended a deadline the policy lets it extend
    MORE_TIME_ASKED = "more_time_asked"  # the seller asks for more production time
    MORE_TIME_ANSWERED = "more_time_answered"  # the buyer accepted or refused it
