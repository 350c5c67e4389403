"""Pages anyone may read without signing in: the policies in plain words and the
what-if calculator for an order that does not exist yet."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from bespoke.domain.checks import price_problem
from bespoke.domain.money import CURRENCY_EXPONENTS, MoneyError, parse_amount
from bespoke.portal.web import STATIC, PortalError, PortalRoute, render
from bespoke.rules import PolicyError, find_policy, list_policies, policy_sha256
from bespoke.rules.describe import STAGE_TITLES, describe_policy
from bespoke.rules.durations import duration_words
from bespoke.rules.whatif import WHATIF_STAGES, WhatIfError, whatif_cancellation
from bespoke.settings import get_settings

router = APIRouter(route_class=PortalRoute, include_in_schema=False)

STATIC_FILES = {"portal.css": "text/css", "portal.js": "text/javascript"}

# What happens when each deadline passes with nobody acting (README "Deadlines").
DEFAULT_ACTIONS = {
    "seller_acceptance": "the order is cancelled at no cost to anyone",
    "deposit": "the order is cancelled; anything paid is refunded",
    "balance": "the order is cancelled as the buyer's breach; costs are allocated by the policy",
    "retention": "the order completes; the unpaid retention is recorded as the buyer's debt",
    "inspection_window": "receipt is confirmed and the money is released to the seller",
    "credit_settlement": "the buyer's credit is frozen and reminders go out",
    "credit_reminder_interval": "another reminder goes out",
    "production_grace": "the buyer may cancel free of cost and receives the late penalty",
    "cod_remittance": "the case goes to platform operations; the carrier still owes the money",
    "aftersales_window": "no more returns, repairs or disputes; the money is final",
    "return_response": "the return is approved",
    "return_ship": "the case closes and the order goes on as before",
    "return_receive": "the buyer is refunded",
    "partial_offer_response": "the offer lapses and the buyer keeps the goods",
    "dispute_evidence": "the side that sent no evidence loses",
    "escalation": "the case closes",
    "repair_reship": "the buyer is refunded",
}

PLAN_CHOICES_ALL = ("full_prepayment", "credit", "cash_on_delivery", "collection_account")
MAX_FIELD = 40  # characters of any calculator field


def _policy_dirs() -> tuple:
    d = get_settings().policy_dir
    return (d,) if d else ()


def _policy(ref: str):
    if len(ref) > 120:
        raise PortalError(404, "no such policy")
    try:
        return find_policy(ref, _policy_dirs())
    except PolicyError:
        raise PortalError(404, f"no policy {ref!r}") from None


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in STATIC_FILES:
        raise PortalError(404, "not found")
    return FileResponse(STATIC / name, media_type=STATIC_FILES[name], headers={"Cache-Control": "max-age=3600"})


@router.get("/")
async def home(request: Request) -> Response:
    return render(request, "home.html", policies=list_policies(_policy_dirs()))


@router.get("/policies")
async def policies(request: Request) -> Response:
    return render(request, "policies.html", policies=list_policies(_policy_dirs()))


def deadline_rows(policy) -> list[dict[str, str]]:
    d = policy.deadlines
    return [
        {"name": k, "duration": duration_words(d.effective(k)), "default": DEFAULT_ACTIONS.get(k, "")}
        for k in type(d).model_fields
    ]


@router.get("/policies/{ref}")
async def policy_page(request: Request, ref: str) -> Response:
    policy = _policy(ref)
    desc = describe_policy(policy)
    by_stage: dict[str, list[Any]] = {}
    for term in desc.cancellation:
        by_stage.setdefault(term.stage, []).append(term)
    sections = [s for s in desc.sections if not s.title.startswith("Cancelling") and s.title != "Deadlines"]
    return render(
        request, "policy.html", policy=policy, desc=desc, by_stage=by_stage, stage_titles=STAGE_TITLES,
        sections=sections, deadlines=deadline_rows(policy), sha256=policy_sha256(policy),
    )


def plan_choices(policy) -> list[str]:
    out = []
    for p in policy.payment_plans.allowed:
        if p == "staged":
            out.extend("staged:" + "/".join(map(str, r)) for r in policy.payment_plans.staged_ratios)
        else:
            out.append(p)
    return out


def _field(q: dict[str, str], name: str, default: str = "") -> str:
    value = q.get(name, default)
    if len(value) > MAX_FIELD:
        raise WhatIfError(f"{name}: at most {MAX_FIELD} characters")
    return value.strip()


def _amount(policy, q: dict[str, str], name: str, currency: str, label: str) -> int:
    raw = _field(q, name, "0") or "0"
    try:
        value = parse_amount(raw, currency)
    except MoneyError as err:
        raise WhatIfError(f"{label}: {err}") from None
    if value < 0:
        raise WhatIfError(f"{label}: must not be negative")
    if value > policy.limits.max_order_amount:
        raise WhatIfError(f"{label}: more than the largest order this policy allows")
    return value


def whatif_from_query(policy, q: dict[str, str]) -> tuple[Any, Any]:
    """Parse the calculator's fields and decide; WhatIfError names the bad field."""
    plan_text = _field(q, "plan")
    if plan_text not in plan_choices(policy):
        raise WhatIfError("plan: choose one of the plans this policy offers")
    plan, _, ratios_text = plan_text.partition(":")
    ratios = tuple(int(r) for r in ratios_text.split("/")) if ratios_text else ()
    currency = _field(q, "currency", "CNY").upper()
    if currency not in policy.limits.currencies or currency not in CURRENCY_EXPONENTS:
        raise WhatIfError("currency: choose a currency this policy accepts")
    price = _amount(policy, q, "price", currency, "price")
    if price <= 0:
        raise WhatIfError("price: must be more than zero")
    problem = price_problem(price, currency, policy)  # as order creation refuses it
    if problem:
        raise WhatIfError(problem)
    stage = _field(q, "stage")
    if stage not in WHATIF_STAGES:
        raise WhatIfError("stage: choose a stage")
    days_text = _field(q, "days_late", "0") or "0"
    if not days_text.isdigit() or int(days_text) > 3650:
        raise WhatIfError("days late: a whole number of days, at most 3650")
    return whatif_cancellation(
        policy, plan=plan, ratios=ratios, price=price, currency=currency, stage=stage,
        cancelled_by=_field(q, "by", "buyer"),
        costs_incurred=_amount(policy, q, "costs", currency, "costs so far"),
        salvage_value=_amount(policy, q, "salvage", currency, "resale value"),
        days_late=int(days_text), earnest=q.get("earnest") == "on", as_of=datetime.now(UTC),
    )


@router.get("/what-if")
async def what_if(request: Request) -> Response:
    q = dict(request.query_params)
    policy = _policy(q.get("policy") or get_settings().default_policy)
    result = error = None
    if "plan" in q:
        try:
            result = whatif_from_query(policy, q)
        except WhatIfError as err:
            error = str(err)
    status = 422 if error else 200
    return render(
        request, "whatif.html", status=status, policy=policy, q=q, plans=plan_choices(policy),
        stages=WHATIF_STAGES, stage_titles=STAGE_TITLES, currencies=policy.limits.currencies,
        facts=result[0] if result else None, decision=result[1] if result else None, error=error,
    )
