"""Loading policies from TOML and finding them by name.

Errors become one `PolicyError` whose message has one line per problem:
`<file>: <field path>: <what was expected>`.
"""

from __future__ import annotations

import re
import tomllib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
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


# The policies files gave, by path, with the bytes they were read from: a file is
# still read on every load, and parsed and validated again only when its bytes
# changed. `bespoke order create`, `POST /api/orders` and the portal's policy pages
# find a policy by scanning every file, which cost more CPU than the rest of
# creating an order. Bounded; only policies that loaded are kept (an error is
# found again each time). Plugins are resolved once per process either way
# (plugins.py), so a kept policy is what a fresh load would give.
_LOADED: OrderedDict[str, tuple[bytes, Policy]] = OrderedDict()
_LOADED_MAX = 32


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
    key = str(p)
    kept = _LOADED.get(key)
    if kept is not None and kept[0] == raw:
        _LOADED.move_to_end(key)
        return kept[1]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    policy = load_policy_text(text, str(p))
    _LOADED[key] = (raw, policy)
    _LOADED.move_to_end(key)
    while len(_LOADED) > _LOADED_MAX:
        _LOADED.popitem(last=False)
    return policy


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


@dataclass(frozen=True)
class BrokenPolicy:
    """A policy file that could not be loaded, with one line per problem."""

    path: Path
    problems: list[str]


@dataclass(frozen=True)
class PolicyScan:
    """The policies of some directories: the good ones, sorted by name and version
    (each name@version from the first directory that has it, with the file it came
    from), and the files that could not be loaded."""

    policies: list[Policy]
    files: dict[tuple[str, str], Path] = field(default_factory=dict)
    broken: list[BrokenPolicy] = field(default_factory=list)


def scan_policies(extra_dirs: Sequence[Path] = ()) -> PolicyScan:
    """Load every policy in `extra_dirs` then the built-in directory.

    A file that does not load is reported in `broken` instead of stopping the scan,
    so one bad file never blocks orders on the other policies.
    """
    seen: dict[tuple[str, str], Policy] = {}
    files: dict[tuple[str, str], Path] = {}
    broken: list[BrokenPolicy] = []
    for path in _policy_files([*extra_dirs, BUILTIN_POLICY_DIR]):
        try:
            policy = load_policy(path)
        except PolicyError as exc:
            broken.append(BrokenPolicy(path, exc.problems))
            continue
        key = (policy.name, policy.version)
        if key not in seen:
            seen[key], files[key] = policy, path
    ordered = sorted(seen.values(), key=lambda p: (p.name, version_key(p.version)))
    return PolicyScan(ordered, files, broken)


def list_policies(extra_dirs: Sequence[Path] = ()) -> list[Policy]:
    """All policies that load from `extra_dirs` then the built-in directory, sorted
    by name and version; a policy (name@version) in an earlier directory shadows a
    later one. Files that do not load are skipped (`scan_policies` lists them)."""
    return scan_policies(extra_dirs).policies


def find_policy(ref: str, extra_dirs: Sequence[Path] = ()) -> Policy:
    """`name` (highest version) or `name@version`, from `extra_dirs` then built-ins."""
    name, _, version = ref.partition("@")
    if not name:
        raise PolicyError(f"{ref!r}: expected NAME or NAME@VERSION")
    scan = scan_policies(extra_dirs)
    candidates = [p for p in scan.policies if p.name == name]
    if version:
        for p in candidates:
            if p.version == version:
                return p
        known = ", ".join(p.version for p in candidates) or "none"
        raise PolicyError(f"policy {name}@{version} not found (versions of {name}: {known}){_broken_note(scan)}")
    if not candidates:
        raise PolicyError(f"policy {name!r} not found{_broken_note(scan)}")
    return max(candidates, key=lambda p: version_key(p.version))


def _broken_note(scan: PolicyScan) -> str:
    """Why a policy may be missing: the files that did not load (it may be in one)."""
    if not scan.broken:
        return ""
    shown = "; ".join(b.problems[0] if b.problems else str(b.path) for b in scan.broken[:2])
    more = f" (+{len(scan.broken) - 2} more)" if len(scan.broken) > 2 else ""
    n = len(scan.broken)
    return f"; {n} policy file{'s' if n != 1 else ''} could not be loaded: {shown}{more}"
