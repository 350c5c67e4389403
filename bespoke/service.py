"""Client-side operations shared by the CLI, the importer and the tests:
building a validated order input, starting its workflow, and reaching it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from bespoke.domain.accounts import virtual_account_for
from bespoke.domain.models import Actor, OrderInput, OrderResult, PaymentPlan, PlanKind, clean_name
from bespoke.domain.money import check_currency
from bespoke.rules import Policy, pin_policy
from bespoke.rules.pins import policy_terms
from bespoke.domain.checks import order_problems, price_problem
from bespoke.rules.check import policy_problems
from bespoke.domain.names import ORDER_WORKFLOW, workflow_id_for

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


class OrderRejected(ValueError):
    """The order input is invalid; nothing was started."""


class OrderExists(Exception):
    """An order with this id already exists (safe re-runs of an import)."""


def pydantic_message(err: ValidationError) -> str:
    """One readable line out of a pydantic ValidationError."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "input"
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def build_order_input(
    *,
    order_id: str,
    buyer: str,
    seller: str,
    price: int,
    currency: str,
    plan: PaymentPlan,
    production_days: int,
    policy: Policy,
    created_by: Actor,
    title: str = "",
    earnest_deposit: bool = False,
    shipping_address: str = "",
    store: Engine | None = None,
) -> OrderInput:
    """Validate an order against its policy and pin the policy: the input carries
    the policy's terms and the pin, and the policy goes into the policy store of
    the database `store` (where the worker's rules activities look it up by the
    pin). Without `store` the caller stores it (`bespoke.store.policies.save_policy`);
    an order whose pinned policy is not in the worker's store fails at start.

    A policy that fails `bespoke policy check` is refused: pinned, it could leave an
    order undecidable (two `unique` rows that both match make every cancellation
    fail). The check is cached per policy content, so it runs once per policy."""
    currency = check_currency(currency)
    try:
        buyer = clean_name(buyer, "buyer", max_length=200)
        seller = clean_name(seller, "seller", max_length=200)
        title = clean_name(title, "title", max_length=500) if title and title.strip() else ""
    except ValueError as err:
        raise OrderRejected(str(err)) from None
    problems = policy_problems(policy)
    if problems:
        raise OrderRejected(policy_check_failure(policy, problems))
    problem = price_problem(price, currency, policy)  # before the model's own, larger bound
    if problem:
        raise OrderRejected(problem)
    try:
        inp = OrderInput(
            order_id=order_id,
            buyer=buyer,
            seller=seller,
            title=title,
            price=price,
            currency=currency,
            plan=plan,
            production_days=production_days,
            earnest_deposit=earnest_deposit,
            terms=_pinned(policy)[1],
            pin=_pinned(policy)[2],
            created_by=created_by,
            virtual_account=virtual_account_for(buyer) if plan.kind is PlanKind.COLLECTION_ACCOUNT else None,
            shipping_address=shipping_address,
        )
    except ValidationError as err:
        raise OrderRejected(pydantic_message(err)) from None
    # The same checks the workflow runs on its own input when it starts.
    problems = order_problems(inp, policy)
    if problems:
        raise OrderRejected("; ".join(problems))
    if store is not None:
        from bespoke.store.policies import save_policy

        save_policy(store, policy, sha256=inp.pin["sha256"])
    return inp


def policy_check_failure(policy: Policy, problems: list[str], *, shown: int = 3) -> str:
    """One line: why `policy` cannot be pinned (its first few check problems)."""
    n = len(problems)
    more = f" (+{n - shown} more; run `bespoke policy check` on its file)" if n > shown else ""
    return (
        f"policy {policy.name}@{policy.version} fails `bespoke policy check` "
        f"({n} problem{'s' if n != 1 else ''}), so no order may pin it: " + "; ".join(problems[:shown]) + more
    )


# The dumped policy, its terms and its pin, for the last few Policy objects: dumping
# and hashing the policy is most of the cost of building an order input (tens of
# ms), and an import builds thousands from one policy. The Policy is kept in the
# entry, so its id() cannot be reused while cached; policies are frozen, so the
# dump stays right.
_PINNED: dict[int, tuple[Policy, dict[str, Any], dict[str, Any], dict[str, Any]]] = {}


def _pinned(policy: Policy) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    hit = _PINNED.get(id(policy))
    if hit is None or hit[0] is not policy:
        if len(_PINNED) >= 8:
            _PINNED.clear()
        dump = policy.model_dump(mode="json")
        hit = _PINNED[id(policy)] = (policy, dump, policy_terms(dump), pin_policy(policy).model_dump(mode="json"))
    return hit[1], hit[2], hit[3]


async def start_order(client: Client, inp: OrderInput, *, task_queue: str) -> WorkflowHandle[Any, Any]:
    """Start the order's workflow; raises OrderExists if the id is taken (even
    by a closed order), which makes bulk imports safe to run twice. With payload
    encryption the buyer and seller are indexed by a keyed hash, not by name."""
    from bespoke.runtime.codec import EncryptionCodec

    codec = client.data_converter.payload_codec
    if isinstance(codec, EncryptionCodec):
        inp = inp.model_copy(update={"index_buyer": codec.index_value(inp.buyer),
                                     "index_seller": codec.index_value(inp.seller)})
    try:
        return await client.start_workflow(
            ORDER_WORKFLOW,
            inp,
            id=workflow_id_for(inp.order_id),
            task_queue=task_queue,
            result_type=OrderResult,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
    except WorkflowAlreadyStartedError:
        raise OrderExists(f"order {inp.order_id} already exists") from None


def order_handle(client: Client, order_id: str) -> WorkflowHandle[Any, Any]:
    return client.get_workflow_handle(workflow_id_for(order_id))
