"""Inputs of the extensions the parties may ask for (policy `[extensions]`)."""

from __future__ import annotations

from pydantic import Field

from bespoke.domain.actor import ActorInput

# No single extension is longer than a year, whatever the policy says.
MAX_EXTENSION_S = 365 * 86_400


class ExtendInspectionInput(ActorInput):
    """The buyer extends the inspection window by the policy's fixed amount
    (`extend_seconds` 0), or the seller extends it for the buyer by `extend_seconds`."""

    extend_seconds: int = Field(default=0, ge=0, le=MAX_EXTENSION_S)
    reason: str = Field(default="", max_length=1000)


class AskMoreTimeInput(ActorInput):
    """The seller asks the buyer for more production time."""

    extend_seconds: int = Field(gt=0, le=MAX_EXTENSION_S)
    reason: str = Field(min_length=1, max_length=1000)


class AnswerMoreTimeInput(ActorInput):
    """The buyer accepts or refuses the seller's request for more production time."""

    accept: bool
    note: str = Field(default="", max_length=1000)
