"""Loading policies from TOML and finding them by name.

Errors become one `PolicyError` whose message has one line per problem:
`<file>: <field path>: <what was expected>`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from .errors import PolicyError
from .limits import MAX_POLICY_BYTES, text_problems
from .model import Policy, clean_msg, format_loc
from .plugins import resolve_plugin

# No .resolve(): this module is imported in the workflow sandbox, where it is I/O.
BUILTIN_POLICY_DIR = Path(__file__).parent / "policies"


def _problems_from_validation(exc: ValidationError) -> list[str]:
    lines: list[str] = []
    for err in exc.errors():
        loc = format_loc(tuple(err["loc"]))
        if err["type"] == "policy":  # cross-field problems already carry their paths
            lines.extend(str(err["msg"]).splitlines())
        else:
            lines.append(f"{loc or '(top level)'}: {clean_msg(err)}")
    return lines


def load_policy_text(text: str, source: str) -> Policy:
    """Parse and validate a policy from TOML text; `source` names it in errors.

    The size limits (`limits`) are checked first: on the text before parsing, on
    the parsed data before validating."""
    problems = text_problems(text)
    if problems:
        raise PolicyError("\n".join(f"{source}: {line}" for line in problems))
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:  # the nesting check above should make this unreachable
        raise PolicyError(f"{source}: nested too deeply to parse") from None
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        problems = [f"{source}: {line}" for line in _problems_from_validation(exc)]
        raise PolicyError("\n".join(problems), problems) from None
    problems = []
    for i, hook in enumerate(policy.plugins.hooks):
        try:
            resolve_plugin(hook.plugin)
        except PolicyError as exc:
            problems.append(f"{source}: plugins.hooks[{i}].plugin: {exc}")
    if problems:
        raise PolicyError("\n".join(problems), problems)
    return policy


def load_policy(path: str | Path) -> Policy:
    """Load and validate one policy file."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_POLICY_BYTES + 1)  # never read more of a huge file than it takes to refuse it
    except FileNotFoundError:
        raise PolicyError(f"{p}: no such policy file") from None
    except OSError as exc:
        raise PolicyError(f"{p}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError(f"{p}: more than {MAX_POLICY_BYTES:,} bytes; a policy file may have at most {MAX_POLICY_BYTES:,} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    return load_policy_text(text, str(p))


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Order versions naturally: 2 < 10, 1.2 < 1.10, numbers before words."""
    parts = re.split(r"[.+-]", version)
    return tuple((0, int(x)) if x.isdigit() else (1, x) for x in parts)


def _policy_files(dirs: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise PolicyError(f"{d}: policy directory does not exist")
        files.extend(sorted(d.glob("*.toml")))
    return files


def list_policies(extra_dirs: Sequence[Path] = ()) -> list[Policy]:
    """All policies in `extra_dirs` then the built-in directory, sorted by name and version.

    A policy (name@version) found in an earlier directory shadows a later one.
    """
    seen: dict[tuple[str, str], Policy] = {}
    for path in _policy_files([*extra_dirs, BUILTIN_POLICY_DIR]):
        policy = load_policy(path)
        seen.setdefault((policy.name, policy.version), policy)
    return sorted(seen.values(), key=lambda p: (p.name, version_key(p.version)))


def find_policy(ref: str, extra_dirs: Sequence[Path] = ()) -> Policy:
    """`name` (highest version) or `name@version`, from `extra_dirs` then built-ins."""
    name, _, version = ref.partition("@")
    if not name:
        raise PolicyError(f"{ref!r}: expected NAME or NAME@VERSION")
    candidates = [p for p in list_policies(extra_dirs) if p.name == name]
    if version:
        for p in candidates:
            if p.version == version:
                return p
        known = ", ".join(p.version for p in candidates) or "none"
        raise PolicyError(f"policy {name}@{version} not found (versions of {name}: {known})")
    if not candidates:
        raise PolicyError(f"policy {name!r} not found")
    return max(candidates, key=lambda p: version_key(p.version))


_PINNED: dict[str, Policy] = {}
_PINNED_MAX = 256


def pinned_policy(data: dict, sha256: str | None) -> Policy:
    """The validated Policy for an order's pinned policy content.

    Orders pinned to the same content (same sha256) share one validated, frozen
    Policy instead of each holding its own copy (about 140 KiB each), which counts
    when a worker keeps a thousand orders in its cache. Workflows import this module
    passed through the sandbox, so the table is per worker process. Without a pin
    (or when the table is full) the policy is validated on its own."""
    if sha256:
        policy = _PINNED.get(sha256)
        if policy is not None:
            return policy
    policy = Policy.model_validate(data)
    if sha256 and len(_PINNED) < _PINNED_MAX:
        _PINNED[sha256] = policy
    return policy
