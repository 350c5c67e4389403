"""The scenario tests get a time-skipping server of their own, not the session's.

A workflow terminated in the middle of a workflow task leaves the time-skipping
server holding a lock on time it never gives back (sdk-java#1138); from then on
every test that waits on a timer waits in real time, until its timeout. Since the
read-model sync became a local activity (sync-local-v1) a workflow task lasts
longer, and one such order left by a test in an earlier package made every
scenario test here time out. A package-scoped fixture defined here is this
package's alone, so a leak elsewhere cannot reach these tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.conftest import time_skipping_env


@pytest.fixture(scope="package")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with time_skipping_env() as environment:
        yield environment
