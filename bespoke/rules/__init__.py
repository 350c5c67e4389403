"""Pure decision code: versioned policies, decision tables, explanations.

Imports neither temporalio nor sqlmodel: it runs inside the workflow sandbox (the
models) and in local activities (the decisions). No wall clock: `as_of` is a fact.
"""

from .decisions import (
    CancellationDecision,
    DisputeDefaultDecision,
    RefundDecision,
    ReturnTermsDecision,
    SettlementDecision,
    decide_cancellation,
    decide_dispute_default,
    decide_refund,
    decide_return_terms,
    decide_settlement,
    format_money,
)
from .engine import ConditionResult, TableResult, evaluate_table
from .errors import DecisionError, PolicyError
from .explain import (
    Explanation,
    MatchedRule,
    PluginPin,
    PolicyPin,
    canonical_json,
    decision_entry,
    pin_policy,
    policy_sha256,
)
from .facts import CancellationFacts, DisputeFacts, RefundFacts, ReturnFacts, ReturnReason, SettlementFacts
from .loader import BUILTIN_POLICY_DIR, find_policy, list_policies, load_policy, load_policy_text
from .model import (
    Case,
    Deadlines,
    DecisionTable,
    Fees,
    Limits,
    PaymentPlans,
    PluginHook,
    Plugins,
    Policy,
    Rule,
)
from .money import allocate, apply_bps, staged_amounts
from .plugins import RulePlugin, rule_plugin

__all__ = [
    "BUILTIN_POLICY_DIR",
    "CancellationDecision",
    "CancellationFacts",
    "Case",
    "ConditionResult",
    "Deadlines",
    "DecisionError",
    "DecisionTable",
    "DisputeDefaultDecision",
    "DisputeFacts",
    "Explanation",
    "Fees",
    "Limits",
    "MatchedRule",
    "PaymentPlans",
    "PluginHook",
    "PluginPin",
    "Plugins",
    "Policy",
    "PolicyError",
    "PolicyPin",
    "RefundDecision",
    "RefundFacts",
    "ReturnFacts",
    "ReturnReason",
    "ReturnTermsDecision",
    "Rule",
    "RulePlugin",
    "SettlementDecision",
    "SettlementFacts",
    "TableResult",
    "allocate",
    "apply_bps",
    "canonical_json",
    "decide_cancellation",
    "decide_dispute_default",
    "decision_entry",
    "decide_refund",
    "decide_return_terms",
    "decide_settlement",
    "evaluate_table",
    "find_policy",
    "format_money",
    "list_policies",
    "load_policy",
    "load_policy_text",
    "pin_policy",
    "policy_sha256",
    "rule_plugin",
    "staged_amounts",
]
