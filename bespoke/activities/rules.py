"""Rules decisions as local activities: the decision (amounts + explanation) is
recorded in workflow history, so replay never re-evaluates a rule, and plugins
run in the worker process, outside the workflow sandbox."""

from __future__ import annotations

from temporalio import activity

from bespoke.domain.models import Frozen
from bespoke.rules import (
    CancellationDecision,
    CancellationFacts,
    DisputeDefaultDecision,
    DisputeFacts,
    Policy,
    RefundDecision,
    RefundFacts,
    ReturnFacts,
    ReturnTermsDecision,
    SettlementDecision,
    SettlementFacts,
    decide_cancellation,
    decide_dispute_default,
    decide_refund,
    decide_return_terms,
    decide_settlement,
)
from bespoke.rules.check import policy_problems
from bespoke.rules.pins import load_pinned


class SettlementRequest(Frozen):
    policy: dict
    facts: SettlementFacts
    decision_id: str


class CancellationRequest(Frozen):
    policy: dict
    facts: CancellationFacts
    decision_id: str


def policy_from_dict(data: dict) -> Policy:
    """The validated pinned policy, shared by content hash with the workflows."""
    return load_pinned(data)[0]


class PolicyCheckRequest(Frozen):
    policy: dict


class PolicyCheckResult(Frozen):
    problems: list[str]


@activity.defn(name="check_pinned_policy")
def pinned_policy_check(req: PolicyCheckRequest) -> PolicyCheckResult:
    """What `bespoke policy check` finds wrong with an order's pinned policy. An
    activity, not workflow code: plugin hooks are resolved from what this worker
    has installed, and the answer is recorded in history."""
    return PolicyCheckResult(problems=policy_problems(policy_from_dict(req.policy)))


@activity.defn(name="decide_settlement")
def settlement_decision(req: SettlementRequest) -> SettlementDecision:
    return decide_settlement(policy_from_dict(req.policy), req.facts, decision_id=req.decision_id)


@activity.defn(name="decide_cancellation")
def cancellation_decision(req: CancellationRequest) -> CancellationDecision:
    return decide_cancellation(policy_from_dict(req.policy), req.facts, decision_id=req.decision_id)


class ReturnTermsRequest(Frozen):
    policy: dict
    facts: ReturnFacts
    decision_id: str


class RefundRequest(Frozen):
    policy: dict
    facts: RefundFacts
    decision_id: str


class DisputeRequest(Frozen):
    policy: dict
    facts: DisputeFacts
    decision_id: str


@activity.defn(name="decide_return_terms")
def return_terms_decision(req: ReturnTermsRequest) -> ReturnTermsDecision:
    return decide_return_terms(policy_from_dict(req.policy), req.facts, decision_id=req.decision_id)


@activity.defn(name="decide_refund")
def refund_decision(req: RefundRequest) -> RefundDecision:
    return decide_refund(policy_from_dict(req.policy), req.facts, decision_id=req.decision_id)


@activity.defn(name="decide_dispute_default")
def dispute_default_decision(req: DisputeRequest) -> DisputeDefaultDecision:
    return decide_dispute_default(policy_from_dict(req.policy), req.facts, decision_id=req.decision_id)
