"""Python rule plugins, discovered through the `bespoke.rules` entry-point group.

A plugin is a pure function over frozen facts and the table's outputs, with an id,
a version and a human `because` sentence. A policy names it in `[[plugins.hooks]]`;
after the hooked table is evaluated, the plugin returns the outputs it changes
(or nothing). A separate distribution ships a plugin by declaring, in its
pyproject::

    [project.entry-points."bespoke.rules"]
    "example.materials_reuse" = "bespoke_rules_example:materials_reuse"

and defining it with `@rule_plugin(id=..., version=..., because=...)`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable

from .errors import PolicyError

ENTRY_POINT_GROUP = "bespoke.rules"

PluginFn = Callable[[Mapping[str, Any], Mapping[str, Any]], Mapping[str, Any] | None]


@dataclass(frozen=True)
class RulePlugin:
    """A named, versioned pure rule: `fn(facts, outputs) -> changed outputs or None`."""

    id: str
    version: str
    because: str
    fn: PluginFn

    def __call__(self, facts: Mapping[str, Any], outputs: Mapping[str, Any]) -> Mapping[str, Any] | None:
        return self.fn(facts, outputs)


def rule_plugin(*, id: str, version: str, because: str) -> Callable[[PluginFn], RulePlugin]:
    """Decorator turning a pure function into a `RulePlugin`."""

    def wrap(fn: PluginFn) -> RulePlugin:
        return RulePlugin(id=id, version=version, because=because, fn=fn)

    return wrap


@dataclass(frozen=True)
class ResolvedPlugin:
    name: str
    plugin: RulePlugin
    distribution: str
    distribution_version: str


_CACHE: dict[str, ResolvedPlugin] = {}


def resolve_plugin(name: str, where: str = "") -> ResolvedPlugin:
    """Find and load the plugin registered under `name`; `PolicyError` if absent or malformed."""
    hit = _CACHE.get(name)
    if hit is not None:
        return hit
    at = f"{where}: " if where else ""
    eps = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not eps:
        raise PolicyError(
            f"{at}plugin {name!r} is not installed: expected an entry point named {name!r} in group "
            f"{ENTRY_POINT_GROUP!r} (pip install the distribution that provides it)"
        )
    if len({(ep.value, ep.dist.name if ep.dist else None) for ep in eps}) > 1:
        dists = ", ".join(sorted(ep.dist.name if ep.dist else "?" for ep in eps))
        raise PolicyError(f"{at}plugin {name!r} is registered by more than one distribution ({dists}); expected exactly one")
    ep = eps[0]
    try:
        obj = ep.load()
    except Exception as exc:  # a broken plugin must surface as a policy problem, not a traceback
        raise PolicyError(f"{at}plugin {name!r} ({ep.value}) failed to import: {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, RulePlugin):
        if all(hasattr(obj, a) for a in ("id", "version", "because")) and callable(obj):
            obj = RulePlugin(id=str(obj.id), version=str(obj.version), because=str(obj.because), fn=obj)
        else:
            raise PolicyError(
                f"{at}plugin {name!r} ({ep.value}) is not a rule plugin: expected an object made with "
                "bespoke.rules.rule_plugin(id=..., version=..., because=...)"
            )
    dist = ep.dist
    resolved = ResolvedPlugin(
        name=name,
        plugin=obj,
        distribution=dist.metadata["Name"] if dist is not None else "unknown",
        distribution_version=dist.version if dist is not None else "unknown",
    )
    _CACHE[name] = resolved
    return resolved


# --- which worker may decide for an order: its plugin set ------------------------

_NOT_IN_KEY = re.compile(r"[^A-Za-z0-9.=,+_-]")
PLUGIN_SET_KEY_MAX = 200


def normalize_distribution(name: str) -> str:
    """A distribution name as PEP 503 compares them (`Bespoke_Rules.Example` is
    `bespoke-rules-example`)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def plugin_set_key(distributions: Iterable[tuple[str, str]]) -> str:
    """The name of a set of plugin distributions at their versions, as task queues
    are named after it (`{task_queue}.rules.<key>`): `dist==version` pairs, sorted,
    comma-separated; a hash of them when long or unusual. Pure: the workflow
    computes it from the order's pin, a worker from what it has installed."""
    pairs = sorted({f"{normalize_distribution(d)}=={v}" for d, v in distributions})
    key = ",".join(pairs)
    if len(key) > PLUGIN_SET_KEY_MAX or _NOT_IN_KEY.search(key):
        key = "sha256-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]
    return key


def rules_task_queue(task_queue: str, distributions: Iterable[tuple[str, str]]) -> str:
    """The task queue on which decisions needing exactly these plugin distributions
    (at these versions) are made: only a worker that has them installed polls it."""
    return f"{task_queue}.rules.{plugin_set_key(distributions)}"


def installed_distributions() -> list[tuple[str, str]]:
    """(distribution, version) of each installed distribution that registers
    `bespoke.rules` plugins, as `resolve_plugin` would pin them."""
    found: set[tuple[str, str]] = set()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist
        found.add((dist.metadata["Name"], dist.version) if dist is not None else ("unknown", "unknown"))
    return sorted(found)
