"""The workflow sandbox, without its per-payload detour.

Before an activation and after its completion the SDK visits every payload in it
(temporalio 1.35: four visits per activation, for codecs and external storage),
and for each payload container it asks the workflow instance which serialization
context and which external-store context apply. The sandboxed instance answers
each question by `exec`-ing a snippet inside the sandbox with its import
restrictions applied: about a sixth of a busy worker's Python time went there
(py-spy, bench/RESULTS.md "patch markers bundled, and the sandbox's context
questions answered outside it"), more than the order's own workflow code.

`ContextsOutsideSandbox` wraps the sandboxed runner: activations still run inside
the sandbox, exactly as before; only those two questions are answered outside it,
from the workflow's info. The answers are the workflow-level ones for every
payload. That is exact only while nothing in the data converter reads a context
and no external storage is configured, which holds for bespoke's converter (the
pydantic payload converter and the codecs of bespoke/runtime/codec.py take no
context). `context_free` checks it, and `bespoke.worker.workflow_runner` wraps the
sandbox only for a converter that passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    StorageDriverStoreContext,
    StorageDriverWorkflowInfo,
    WorkflowSerializationContext,
)
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails, WorkflowRunner


def context_free(converter: DataConverter) -> bool:
    """True when no part of `converter` takes a serialization context (each asks
    returns the converter itself) and it stores no payload externally."""
    probes = (WorkflowSerializationContext(namespace="probe", workflow_id="probe"),
              ActivitySerializationContext(namespace="probe", activity_id="1", activity_type="probe",
                                           activity_task_queue="probe", workflow_id="probe",
                                           workflow_type="probe", is_local=True))
    return converter.external_storage is None and all(converter.with_context(c) is converter for c in probes)


class _Instance(WorkflowInstance):
    def __init__(self, inner: WorkflowInstance, det: WorkflowInstanceDetails) -> None:
        self._inner = inner
        info = det.info
        self._context = WorkflowSerializationContext(namespace=info.namespace, workflow_id=info.workflow_id)
        self._store = StorageDriverStoreContext(target=StorageDriverWorkflowInfo(
            id=info.workflow_id, run_id=info.run_id, type=info.workflow_type, namespace=info.namespace))

    def activate(self, act: Any) -> Any:
        return self._inner.activate(act)

    def get_serialization_context(self, command_info: Any) -> WorkflowSerializationContext:
        return self._context

    def get_external_store_context(self, command_info: Any) -> StorageDriverStoreContext:
        return self._store

    def get_info(self) -> Any:
        return self._inner.get_info()

    def get_thread_id(self) -> int | None:
        return self._inner.get_thread_id()


class ContextsOutsideSandbox(WorkflowRunner):
    """`inner` (a SandboxedWorkflowRunner) with the payload-context questions
    answered outside the sandbox."""

    def __init__(self, inner: WorkflowRunner) -> None:
        self.inner = inner

    def prepare_workflow(self, defn: Any) -> None:
        self.inner.prepare_workflow(defn)

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _Instance(self.inner.create_instance(det), det)

    def set_worker_level_failure_exception_types(self, types: Sequence[type[BaseException]]) -> None:
        self.inner.set_worker_level_failure_exception_types(types)
