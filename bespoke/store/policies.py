"""The content-addressed policy store: each pinned policy once, keyed by the sha256
of its canonical content (table `policies`).

Written where an order pins a policy (`bespoke.service.build_order_input` with a
`store`), before its workflow starts; read by the rules activities and by readers
such as `order quote-cancel`, which look a policy up by the order's pin and hash
the content again before using it: a row whose content does not hash to its key
is never used (nor cached).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bespoke.rules import Policy, canonical_json
from bespoke.rules.errors import PolicyError
from bespoke.rules.pins import load_pinned, verified_policy
from bespoke.store.tables import PolicyRow

# (database, sha256) pairs this process has stored or found: an import pins one
# policy for thousands of rows, and one lookup per policy and database is enough.
_STORED: set[tuple[str, str]] = set()


class PinnedPolicyError(PolicyError):
    """The pinned policy cannot be had from the store: absent, or its content does
    not hash to the pin."""


def store_policy(*, session: Session, policy: Policy) -> str:
    """Add `policy` to the store unless it is there; its key is the sha256 this
    function computes from the content. Returns it."""
    import hashlib

    content = canonical_json(policy)
    sha = hashlib.sha256(content).hexdigest()
    if session.get(PolicyRow, sha) is None:
        session.add(PolicyRow(sha256=sha, name=policy.name, version=policy.version,
                              content=content.decode("utf-8"), stored_at=datetime.now(UTC)))
    return sha


def save_policy(engine: Engine, policy: Policy, *, sha256: str | None = None) -> str:
    """`store_policy` in its own transaction (once per process, database and
    content; `sha256`, when the caller has it, saves hashing the policy again)."""
    if sha256 is not None and (str(engine.url), sha256) in _STORED:
        return sha256
    with Session(engine) as session:
        sha = store_policy(session=session, policy=policy)
        try:
            session.commit()
        except IntegrityError:  # another process stored the same content meanwhile
            session.rollback()
    _STORED.add((str(engine.url), sha))
    return sha


def load_by_pin(engine: Engine, pin: dict) -> Policy:
    """The validated policy `pin` names, from the store, once its content is hashed
    and the hash is the pin's; PinnedPolicyError (naming the pin) otherwise.
    Content already verified in this process is not read again."""
    sha = str(pin.get("sha256", ""))
    ref = f"{pin.get('name')}@{pin.get('version')} (sha256 {sha[:12]})"
    policy = verified_policy(sha)
    if policy is None:
        with Session(engine) as session:
            row = session.get(PolicyRow, sha)
            content = row.content if row is not None else None
        if content is None:
            raise PinnedPolicyError(f"pinned policy {ref} is not in the policy store")
        try:
            policy, computed = load_pinned(json.loads(content))
        except ValueError as err:
            raise PinnedPolicyError(f"pinned policy {ref}: the stored content is not a valid policy "
                                    f"({str(err).splitlines()[0][:200]})") from None
        if computed != sha:
            raise PinnedPolicyError(f"pinned policy {ref}: the stored content hashes to {computed[:12]}, "
                                    "not to the pin; it is not used")
    if (policy.name, policy.version) != (pin.get("name"), pin.get("version")):
        raise PinnedPolicyError(f"pinned policy {ref}: the content with that hash is "
                                f"{policy.name}@{policy.version}")
    return policy


def order_policy(engine: Engine, pinned: dict | None, pin: dict) -> Policy:
    """The policy an order is pinned to, for readers (`order quote-cancel`, the
    portal's quote): from the workflow's `pinned_policy` query where the order
    carries it whole (started before the store), else from the store by the order's
    `policy_pin`. Either way its computed hash is the pin's."""
    if pinned is not None:
        policy, sha = load_pinned(pinned)
        if sha != pin.get("sha256"):
            raise PinnedPolicyError(f"the order's policy content hashes to {sha[:12]}, not to its pin "
                                    f"{pin.get('name')}@{pin.get('version')} (sha256 {str(pin.get('sha256'))[:12]})")
        return policy
    return load_by_pin(engine, pin)
