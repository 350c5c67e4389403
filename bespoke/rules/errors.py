"""Errors raised by the rules package.

`PolicyError` is for a policy that cannot be loaded or used (bad file, missing
plugin, unknown policy); `DecisionError` is for facts a policy cannot decide
(no row matches, two `unique` rows match, a fact is missing).
"""

from __future__ import annotations


class PolicyError(Exception):
    """A policy file or reference is invalid; the message is one readable line per problem."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems: list[str] = problems if problems is not None else message.splitlines()


class DecisionError(Exception):
    """A decision could not be made from the given facts with this policy."""


class OverlapError(DecisionError):
    """Two or more rows of a `unique` table matched the same facts."""

    def __init__(self, message: str, *, table: str, rule_ids: tuple[str, ...]) -> None:
        super().__init__(message)
        self.table = table
        self.rule_ids = rule_ids
