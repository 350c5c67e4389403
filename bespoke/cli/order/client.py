"""The one way `bespoke` commands reach an order's workflow.

`run(work)` connects once, hands `work` an :class:`OrderClient`, and turns every
Temporal failure into the contract's error (`temporal_failure`, the only place
that maps them): 2 rejected (a validator refused, or the order is closed), 3 no
such order, 4 Temporal, or the order's worker, did not answer in time. Every wait
is bounded by ``BESPOKE_CLI_TIMEOUT``: a worker that is down or stuck (a corrupt
read-model database made `order pay` hang forever) ends a command with exit 4.

temporalio is imported here and nowhere at the top of a command module, so
commands that never talk to Temporal (`--help`, `order list`) do not pay for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from bespoke.cli.errors import CliError, NotFound, Rejected, Unreachable, run_async
from bespoke.domain.names import workflow_id_for
from bespoke.settings import Settings, get_settings

if TYPE_CHECKING:
    from temporalio.client import Client

T = TypeVar("T")


class OrderClient:
    """A connected client, addressing orders by id."""

    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    def handle(self, order_id: str) -> Any:
        return self.client.get_workflow_handle(workflow_id_for(order_id))

    async def query(self, order_id: str, name: str, *args: Any, result_type: type[T],
                    refusal_rejects: bool = False) -> T:
        """Ask the order's workflow; `refusal_rejects`: a query the workflow refuses
        (raises in its handler) means "not now" (exit 2) rather than a fault."""
        try:
            return await self._bounded(self.handle(order_id).query(name, args=list(args), result_type=result_type),
                                       order_id, f"answer `{name}`")
        except CliError:
            raise
        except Exception as err:
            raise _translated(err, order_id, refusal_rejects=refusal_rejects) from None

    async def update(self, order_id: str, name: str, payload: Any, result_type: type[T] | None = None) -> T:
        """Send an action (an update: its validator rejects bad input, recording nothing)."""
        if result_type is None:
            from bespoke.domain.models import ActionResult

            result_type = ActionResult  # type: ignore[assignment]
        try:
            return await self._bounded(
                self.handle(order_id).execute_update(name, payload, result_type=result_type),
                order_id, f"take the `{name}` action",
                # A started update may still be applied by a worker that comes back.
                after=f" (it may still be applied when a worker picks it up: see `bespoke order status {order_id}`)",
            )
        except CliError:
            raise
        except Exception as err:
            raise _translated(err, order_id) from None

    async def view(self, order_id: str, timeline_limit: int | None = None,
                   timeline_before: int | None = None) -> Any:
        """The order's live state (the `status` query), with a page of its timeline."""
        from bespoke.domain.models import OrderView

        if timeline_limit is None and timeline_before is None:
            return await self.query(order_id, "status", result_type=OrderView)
        return await self.query(order_id, "status", timeline_limit, timeline_before, result_type=OrderView)

    async def revision(self, order_id: str) -> tuple[str, int]:
        """(run id, history length) of the order's current run, from the Temporal
        server alone (the worker is not asked). Every change to an order's state
        is an event in its history and a query adds none, so while this pair
        stands still, the `status` query answers the same."""
        from temporalio.api.common.v1 import WorkflowExecution
        from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest

        request = DescribeWorkflowExecutionRequest(namespace=self.client.namespace,
                                                   execution=WorkflowExecution(workflow_id=workflow_id_for(order_id)))
        try:
            described = await self._bounded(self.client.workflow_service.describe_workflow_execution(request),
                                            order_id, "answer")
        except CliError:
            raise
        except Exception as err:
            raise _translated(err, order_id) from None
        info = described.workflow_execution_info
        return info.execution.run_id, info.history_length

    async def currency(self, order_id: str) -> str:
        return (await self.view(order_id)).currency

    async def bounded(self, call: Awaitable[T], what: str) -> T:
        """A call to the Temporal server itself (start an order, list, count), within
        ``BESPOKE_CLI_TIMEOUT``: a server that accepted the connection and then
        stopped answering ends the command with exit 4 instead of hanging it."""
        timeout = self.settings.cli_timeout
        try:
            return await asyncio.wait_for(call, timeout)
        except TimeoutError:
            raise Unreachable(f"{what}: Temporal at {self.settings.temporal_address} did not answer within "
                              f"{timeout:g}s (BESPOKE_CLI_TIMEOUT sets the wait)") from None

    async def _bounded(self, call: Awaitable[T], order_id: str, what: str, after: str = "") -> T:
        timeout = self.settings.cli_timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            return await asyncio.wait_for(call, timeout)
        except Exception as err:
            # Cancelled at the deadline, the SDK raises its own error for an update
            # (WorkflowUpdateRPCTimeoutOrCancelledError), not TimeoutError.
            if not isinstance(err, TimeoutError) and loop.time() < deadline:
                raise
        raise Unreachable(
            f"order {order_id} did not {what} within {timeout:g}s{after}. Is a worker polling task queue "
            f"{self.settings.task_queue!r} (`bespoke up` or `bespoke worker`), and is its log clean? "
            "(BESPOKE_CLI_TIMEOUT sets the wait)"
        )


def run(work: Callable[[OrderClient], Awaitable[T]], settings: Settings | None = None) -> T:
    """Connect (once), run `work` with the client, and return its result; any
    Temporal failure leaves as a CliError with the contract's exit code."""

    async def go() -> T:
        from bespoke.runtime.client import connect

        chosen = settings or get_settings()
        try:
            client = await connect(chosen)
        except Exception as err:
            raise _translated(err, None) from None
        try:
            return await work(OrderClient(client, chosen))
        except CliError:
            raise
        except Exception as err:
            failure = temporal_failure(err)
            if failure is None:
                raise
            raise failure from None

    return run_async(go())


def _translated(err: Exception, order_id: str | None, *, refusal_rejects: bool = False) -> Exception:
    failure = temporal_failure(err, order_id, refusal_rejects=refusal_rejects)
    return failure if failure is not None else err


def temporal_failure(exc: BaseException, order_id: str | None = None, *,
                     refusal_rejects: bool = False) -> CliError | None:
    """The contract's error for a failure from Temporal (None: not one of those)."""
    from bespoke.runtime.errors import TemporalUnreachable

    if isinstance(exc, TemporalUnreachable):
        return Unreachable(str(exc))
    if not type(exc).__module__.startswith("temporalio"):
        return None
    from temporalio.client import (
        WorkflowQueryFailedError,
        WorkflowUpdateFailedError,
        WorkflowUpdateRPCTimeoutOrCancelledError,
    )
    from temporalio.service import RPCError, RPCStatusCode

    the_order = f"order {order_id}" if order_id else "the order"
    if isinstance(exc, WorkflowUpdateFailedError):
        # The validator (or the handler) refused: nothing was written to history.
        cause = exc.cause
        return Rejected(f"rejected: {getattr(cause, 'message', None) or str(cause or exc)}")
    if isinstance(exc, WorkflowQueryFailedError):
        if refusal_rejects:
            return Rejected(f"rejected: {exc}")
        return CliError(f"{the_order} could not answer: {exc}")
    if isinstance(exc, WorkflowUpdateRPCTimeoutOrCancelledError):
        return Unreachable(f"{the_order} did not answer the action in time; check `bespoke order status`")
    if isinstance(exc, RPCError):
        if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            return Unreachable(str(TemporalUnreachable(_configured_address(), exc.message)))
        if exc.status == RPCStatusCode.NOT_FOUND:
            # A closed order answers NOT_FOUND to an update: say it is closed, not missing.
            if "workflow execution already completed" in exc.message.lower():
                return Rejected(f"rejected: {the_order} is closed")
            if order_id:
                return NotFound(f"order {order_id} not found")
            if "workflow" in exc.message.lower():
                return NotFound(f"order not found ({exc.message})")
        return CliError(f"Temporal error {exc.status.name if exc.status else ''}: {exc.message}")
    return None


def _configured_address() -> str:
    try:
        return get_settings().temporal_address
    except Exception:  # noqa: BLE001 - the settings may be what is broken
        return "the configured address"
