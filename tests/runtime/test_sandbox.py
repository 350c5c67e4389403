"""The workers answer the SDK's payload-context questions outside the sandbox only
for a data converter that takes no context (bespoke/runtime/sandbox.py)."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from bespoke.runtime.client import data_converter
from bespoke.runtime.codec import generate_key
from bespoke.runtime.sandbox import ContextsOutsideSandbox, context_free
from bespoke.settings import Settings
from bespoke.worker import workflow_runner


class _ContextCodec(PayloadCodec, WithSerializationContext):
    """A codec that reads the workflow id it is encoding for (say, a key per workflow)."""

    def __init__(self, context: SerializationContext | None = None) -> None:
        self.context = context

    def with_context(self, context: SerializationContext) -> _ContextCodec:
        return _ContextCodec(context)

    async def encode(self, payloads: list[Payload]) -> list[Payload]:
        return payloads

    async def decode(self, payloads: list[Payload]) -> list[Payload]:
        return payloads


def test_bespoke_converters_take_no_context_so_its_workers_skip_the_detour(tmp_path: Path) -> None:
    keyless = data_converter(Settings(home=tmp_path), worker=True)
    keyed = data_converter(Settings(home=tmp_path, payload_key=SecretStr(f"k1:{generate_key()}")), worker=True)
    for converter in (keyless, keyed, data_converter(Settings(home=tmp_path)), pydantic_data_converter):
        assert context_free(converter)
        for strict in (False, True):
            runner = workflow_runner(strict=strict, converter=converter)
            assert isinstance(runner, ContextsOutsideSandbox) and isinstance(runner.inner, SandboxedWorkflowRunner)


def test_a_converter_that_reads_a_context_keeps_the_sandbox_as_the_sdk_has_it() -> None:
    converter = DataConverter(payload_codec=_ContextCodec())
    assert converter.with_context(WorkflowSerializationContext(namespace="n", workflow_id="w")) is not converter
    assert not context_free(converter)
    assert isinstance(workflow_runner(converter=converter), SandboxedWorkflowRunner)
