"""Public endpoints (no token): the policies in plain words and as JSON, so a buyer
can read the terms before ordering; and the principal's own profile."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from bespoke.api.auth import Caller, engine_for, settings_for
from bespoke.api.problems import Problem, responses
from bespoke.rules.describe import PolicyDescription

router = APIRouter(prefix="/api")


class PolicySummary(BaseModel):
    name: str
    version: str
    description: str
    sha256: str


class PolicyDocument(BaseModel):
    """A policy: its pin, its terms in plain words, and the policy itself."""

    name: str
    version: str
    sha256: str
    words: PolicyDescription
    policy: dict[str, Any]


def _dirs(request: Request) -> list[Any]:
    settings = settings_for(request)
    return [settings.policy_dir] if settings.policy_dir else []


@router.get("/policies", tags=["policies"], summary="Every policy an order may pin (public)")
def policies(request: Request) -> list[PolicySummary]:
    from bespoke.rules import list_policies
    from bespoke.rules import policy_sha256

    return [PolicySummary(name=p.name, version=p.version, description=p.description, sha256=policy_sha256(p))
            for p in list_policies(_dirs(request))]


@router.get("/policies/{ref}", tags=["policies"], summary="One policy, in plain words and as JSON (public)",
            responses=responses("not-found"))
def policy(request: Request, ref: str) -> PolicyDocument:
    from bespoke.rules import PolicyError, find_policy
    from bespoke.rules.describe import describe_policy
    from bespoke.rules import policy_sha256

    if len(ref) > 200:
        raise Problem("not-found", "no such policy")
    try:
        found = find_policy(ref, _dirs(request))
    except PolicyError:
        raise Problem("not-found", "no such policy") from None
    return PolicyDocument(name=found.name, version=found.version, sha256=policy_sha256(found),
                          words=describe_policy(found), policy=found.model_dump(mode="json"))


class Profile(BaseModel):
    """The principal's own account: role, name, scopes; a buyer's credit line and
    dedicated collection account."""

    principal: str
    role: str
    name: str
    scopes: list[str]
    email: str | None = None  # where its reminders and decisions are emailed (set by ops)
    credit_limit: int | None = None
    credit_currency: str | None = None
    credit_frozen: bool | None = None
    collection_account: str | None = None


@router.get("/me", tags=["me"], summary="The calling principal's own profile",
            responses=responses("unauthenticated", "too-many-requests"))
def me(request: Request, caller: Caller) -> Profile:
    from sqlmodel import Session

    from bespoke.domain.accounts import virtual_account_for
    from bespoke.domain.models import Role
    from bespoke.store.tables import ApiPrincipal, BuyerAccount

    with Session(engine_for(request)) as s:
        row = s.get(ApiPrincipal, caller.ref)
        account = s.get(BuyerAccount, caller.name) if caller.role is Role.BUYER else None
    profile = Profile(principal=caller.ref, role=caller.role.value, name=caller.name, scopes=list(caller.scopes),
                      email=row.email if row is not None else None)
    if caller.role is Role.BUYER:
        profile.collection_account = account.virtual_account if account else virtual_account_for(caller.name)
        if account is not None:
            profile.credit_limit, profile.credit_currency = account.credit_limit, account.currency
            profile.credit_frozen = account.frozen
    return profile
