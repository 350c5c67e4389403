"""Rules decisions as activities: the decision (amounts + explanation) is recorded
in workflow history, so replay never re-evaluates a rule, and plugins run in the
worker process, outside the workflow sandbox.

Each request names the order's pin. The policy comes from the policy store by that
pin (its content hashed again and compared before use), or, for orders started
before the store, inline in the request. The decision runs only if the policy's
plugins, as this worker has them installed, are the pinned ones: a decision is
never made with another version of a plugin (`bespoke.rules.decisions.base.check_pin`).
A policy that cannot be had or does not match its pin is a non-retryable failure
naming the pin.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy.engine import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from bespoke.domain.models import Frozen
from bespoke.rules import (
    CancellationDecision,
    CancellationFacts,
    DisputeDefaultDecision,
    DisputeFacts,
    Policy,
    PolicyPin,
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
    pin_policy,
)
from bespoke.rules.check import policy_problems
from bespoke.rules.errors import PolicyError
from bespoke.rules.pins import content_sha256, load_pinned, policy_terms

# The type of the failure when an order's pinned policy cannot be used.
PIN_FAILURE = "PinnedPolicyMismatch"


class RulesRequest(Frozen):
    # The whole policy (orders started before the policy store), or None: the
    # policy is looked up in the store by `pin`.
    policy: dict | None = None
    # The order's PolicyPin (model_dump); absent in requests recorded before pins
    # travelled with them.
    pin: dict | None = None


class SettlementRequest(RulesRequest):
    facts: SettlementFacts
    decision_id: str


class CancellationRequest(RulesRequest):
    facts: CancellationFacts
    decision_id: str


class ReturnTermsRequest(RulesRequest):
    facts: ReturnFacts
    decision_id: str


class RefundRequest(RulesRequest):
    facts: RefundFacts
    decision_id: str


class DisputeRequest(RulesRequest):
    facts: DisputeFacts
    decision_id: str


class PolicyCheckRequest(RulesRequest):
    # sha256 of the terms the workflow runs on (store form): they must be the
    # pinned policy's own.
    terms_sha256: str | None = None


class PolicyCheckResult(Frozen):
    problems: list[str]


def policy_from_dict(data: dict) -> Policy:
    """The validated policy for whole policy content, shared by content hash."""
    return load_pinned(data)[0]


def _pin_ref(pin: dict | None) -> str:
    if not pin:
        return "the order's policy"
    return f"{pin.get('name')}@{pin.get('version')} (sha256 {str(pin.get('sha256', ''))[:12]})"


def _words(plugins: list) -> str:
    return ", ".join(f"{p.name}={p.distribution} {p.version}" for p in plugins) or "none"


def _failure(message: str) -> ApplicationError:
    return ApplicationError(message, type=PIN_FAILURE, non_retryable=True)


# What `check_pinned_policy` works out from a policy alone: the hash of its terms,
# its plugins as this worker has them installed (or why they cannot be), and what
# `bespoke policy check` finds. The same for every order pinned to that content,
# whose Policy object the store and load_pinned share (by content hash): kept per
# object, a bounded few, so an order's start check no longer hashes, resolves and
# checks the whole policy again.
_CHECKED: dict[int, tuple[Policy, str, list | str, tuple[str, ...]]] = {}
_CHECKED_MAX = 32
_CHECKED_LOCK = threading.Lock()


def _checked(policy: Policy) -> tuple[str, list | str, tuple[str, ...]]:
    with _CHECKED_LOCK:
        hit = _CHECKED.get(id(policy))
    if hit is not None and hit[0] is policy:  # the entry holds the object, so its id is not reused
        return hit[1], hit[2], hit[3]
    genuine = content_sha256(policy_terms(policy.model_dump(mode="json")))
    try:
        installed: list | str = pin_policy(policy).plugins
    except PolicyError as err:
        installed = str(err)
    found = tuple(policy_problems(policy))
    with _CHECKED_LOCK:
        if len(_CHECKED) >= _CHECKED_MAX:
            del _CHECKED[next(iter(_CHECKED))]
        _CHECKED[id(policy)] = (policy, genuine, installed, found)
    return genuine, installed, found


class RulesActivities:
    """The rules decisions, bound to the database that holds the policy store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def policy(self, req: RulesRequest) -> Policy:
        """The request's policy, verified against its pin."""
        from bespoke.store.policies import PinnedPolicyError, load_by_pin

        if req.policy is not None:
            policy, sha = load_pinned(req.policy)
            if req.pin is not None and req.pin.get("sha256") != sha:
                raise _failure(f"pinned policy {_pin_ref(req.pin)}: the order's policy content hashes to "
                               f"{sha[:12]}, not to the pin")
            return policy
        if req.pin is None:
            raise _failure("the request names no policy and no pin")
        try:
            return load_by_pin(self.engine, req.pin)
        except PinnedPolicyError as err:
            raise _failure(str(err)) from None

    def _decided(self, decide: Any, req: Any) -> Any:
        """`decide` on the request's policy, facts and pin. A policy problem (the
        installed plugins are not the pinned ones, a table is missing) fails the
        activity without retries: the next attempt would meet the same problem."""
        policy = self.policy(req)
        pin = PolicyPin.model_validate(req.pin) if req.pin is not None else None
        try:
            return decide(policy, req.facts, decision_id=req.decision_id, pin=pin)
        except PolicyError as err:
            raise ApplicationError(str(err), type="PolicyError", non_retryable=True) from None

    @activity.defn(name="check_pinned_policy")
    def check(self, req: PolicyCheckRequest) -> PolicyCheckResult:
        """What `bespoke policy check` finds wrong with an order's pinned policy, and
        whether the order's terms and plugin pins are the policy's. An activity, not
        workflow code: plugin hooks are resolved from what this worker has installed,
        and the answer is recorded in history."""
        try:
            policy = self.policy(req)
        except ApplicationError as err:
            if req.policy is not None:
                raise
            return PolicyCheckResult(problems=[f"pin: {err.message}"])
        genuine, installed, found = _checked(policy)
        problems: list[str] = []
        if req.policy is None:
            # Store form: the terms the workflow enforces must be this policy's.
            if req.terms_sha256 != genuine:
                problems.append(f"terms: not the terms of the pinned policy {_pin_ref(req.pin)}")
        if req.pin is not None:
            pinned = PolicyPin.model_validate(req.pin).plugins
            if sorted(p.name for p in pinned) != policy.plugins.names():
                # The pin does not describe this policy: refused.
                problems.append(f"pin: pinned plugins {_words(pinned)}, but the policy uses "
                                f"{', '.join(policy.plugins.names()) or 'none'}")
            elif installed != pinned:
                # This worker cannot check for the order (it was routed here by
                # mistake): not the order's fault, so no verdict; the order waits.
                raise ApplicationError(
                    f"pinned plugins {_words(pinned)}; this worker has "
                    f"{_words(installed) if not isinstance(installed, str) else installed}", type="PluginMismatch",
                    non_retryable=True)
        if problems:
            return PolicyCheckResult(problems=problems)
        return PolicyCheckResult(problems=list(found))

    @activity.defn(name="decide_settlement")
    def decide_settlement(self, req: SettlementRequest) -> SettlementDecision:
        return self._decided(decide_settlement, req)

    @activity.defn(name="decide_cancellation")
    def decide_cancellation(self, req: CancellationRequest) -> CancellationDecision:
        return self._decided(decide_cancellation, req)

    @activity.defn(name="decide_return_terms")
    def decide_return_terms(self, req: ReturnTermsRequest) -> ReturnTermsDecision:
        return self._decided(decide_return_terms, req)

    @activity.defn(name="decide_refund")
    def decide_refund(self, req: RefundRequest) -> RefundDecision:
        return self._decided(decide_refund, req)

    @activity.defn(name="decide_dispute_default")
    def decide_dispute_default(self, req: DisputeRequest) -> DisputeDefaultDecision:
        return self._decided(decide_dispute_default, req)

    def all(self) -> list[Any]:
        return [self.decide_settlement, self.decide_cancellation, self.decide_return_terms, self.decide_refund,
                self.decide_dispute_default, self.check]


# What the workflow schedules (by activity name; the worker registers the bound
# methods of one RulesActivities).
settlement_decision = RulesActivities.decide_settlement
cancellation_decision = RulesActivities.decide_cancellation
return_terms_decision = RulesActivities.decide_return_terms
refund_decision = RulesActivities.decide_refund
dispute_default_decision = RulesActivities.decide_dispute_default
pinned_policy_check = RulesActivities.check
