"""Named timeout and retry presets, spread at call sites."""

from datetime import timedelta

from temporalio.common import RetryPolicy

# Database writes: retried until they succeed (they are idempotent), so an
# outage of the database delays an order but never loses a posting.
DB_WRITE = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(milliseconds=200),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30),
    ),
}

# Pure rule evaluation: a failure is a bug in a policy or plugin, not a blip.
RULES = {
    "start_to_close_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(maximum_attempts=3),
}
