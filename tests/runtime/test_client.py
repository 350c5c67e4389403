import time

import pytest

from bespoke.runtime.client import connect
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
