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

# Read-model writes as local activities ("sync-local-v1"): a short transaction run
# inside the workflow task. A few attempts in the worker (about 3 s of backoff in
# all, so the workflow task stays short: while it is open no update is accepted);
# a database still down then gets the write as a regular activity with DB_WRITE,
# retried by the server until it succeeds, adding nothing to the history per
# attempt. start_to_close is above SQLite's busy timeout (store/db.py, 10 s).
# (Attempts bound it, not schedule_to_close: the SDK core did not end a local
# activity retrying in the worker at its schedule_to_close, measured on 1.35.0.)
DB_LOCAL_WRITE = {
    "start_to_close_timeout": timedelta(seconds=15),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(milliseconds=200),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=2),
        maximum_attempts=5,
    ),
}
