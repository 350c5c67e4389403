"""`bespoke policy`: list, show and check rule policies.

Errors print one line per problem on stderr and exit 2; never a traceback.
"""

from __future__ import annotations

import json
import os

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from bespoke.rules import PolicyError, find_policy, list_policies, load_policy
from bespoke.rules.check import check_policy
from bespoke.rules.describe import describe_policy
from bespoke.rules.durations import format_duration
from bespoke.rules.explain import pin_policy

EXIT_REJECTED = 2
ENV_POLICY_DIR = "BESPOKE_POLICY_DIR"

app = typer.Typer(
    help="Rule policies: list them, read one in plain words, check a policy file.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

PolicyDirOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--policy-dir",
        help=f"Extra directory of policy *.toml files, searched before the built-in ones (repeatable; env {ENV_POLICY_DIR}, {os.pathsep}-separated).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]


def _fail(lines: list[str] | str) -> NoReturn:
    from bespoke.cli.errors import error_prefix

    for line in [lines] if isinstance(lines, str) else lines:
        typer.echo(f"{error_prefix()}{line}", err=True)
    raise typer.Exit(EXIT_REJECTED)


@contextmanager
def _policy_errors() -> Iterator[None]:
    try:
        yield
    except PolicyError as exc:
        _fail(exc.problems or [str(exc)])


def _dirs(policy_dir: list[Path] | None) -> list[Path]:
    if policy_dir:
        return list(policy_dir)
    env = os.environ.get(ENV_POLICY_DIR, "")
    return [Path(p) for p in env.split(os.pathsep) if p]


def _print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=False))


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


@app.command("list")
def list_cmd(policy_dir: PolicyDirOpt = None, as_json: JsonOpt = False) -> None:
    """List available policies (built-in and from --policy-dir), newest version last."""
    with _policy_errors():
        policies = list_policies(_dirs(policy_dir))
    if as_json:
        _print_json(
            {"policies": [{"name": p.name, "version": p.version, "description": p.description} for p in policies]}
        )
        return
    table = Table("Policy", "Version", "Description")
    for p in policies:
        table.add_row(p.name, p.version, p.description)
    _console().print(table)


@app.command("show")
def show_cmd(
    ref: Annotated[str, typer.Argument(help="NAME (highest version) or NAME@VERSION.", show_default=False)],
    policy_dir: PolicyDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a policy in plain words: what cancelling costs at each stage, late delivery, returns, deadlines."""
    with _policy_errors():
        policy = find_policy(ref, _dirs(policy_dir))
        pin = pin_policy(policy)
    desc = describe_policy(policy)
    if as_json:
        _print_json(
            {
                "name": policy.name,
                "version": policy.version,
                "sha256": pin.sha256,
                "plugins": [p.model_dump(mode="json") for p in pin.plugins],
                "description": policy.description,
                "deadlines": {k: format_duration(v) for k, v in policy.deadlines.__dict__.items()},
                "fees": policy.fees.model_dump(mode="json"),
                "plain_words": desc.model_dump(mode="json"),
                "policy": policy.model_dump(mode="json"),
            }
        )
        return
    con = _console()
    con.print(f"[bold]{policy.name}@{policy.version}[/bold]  sha256 {pin.sha256[:12]}")
    if policy.description:
        con.print(policy.description)
    for section in desc.sections:
        con.print(f"\n[bold]{section.title}[/bold]")
        for line in section.lines:
            con.print(f"  • {line}")


@app.command("check")
def check_cmd(
    file: Annotated[Path, typer.Argument(help="Policy TOML file to validate and test.", show_default=False)],
    as_json: JsonOpt = False,
) -> None:
    """Validate a policy file, run its golden cases, report overlapping and unreached rows.

    Exit 0 when all is good, 2 with one line per problem otherwise.
    """
    path = _resolve_file(file)
    try:
        policy = load_policy(path)
    except PolicyError as exc:
        if as_json:
            _print_json({"file": str(path), "ok": False, "problems": exc.problems})
            raise typer.Exit(EXIT_REJECTED) from None
        _fail(exc.problems)
    report = check_policy(policy)
    if as_json:
        _print_json({"file": str(path), **report.model_dump(mode="json")})
        if not report.ok:
            raise typer.Exit(EXIT_REJECTED)
        return
    passed = sum(1 for c in report.cases if c.ok)
    rows = sum(len(t.rules) for t in policy.tables.values())
    typer.echo(
        f"{path}: {policy.ref}: {passed}/{len(report.cases)} cases pass, {rows} rows in {len(policy.tables)} tables, "
        f"{len(report.overlaps)} overlaps, {len(report.unreached)} unreached rows"
    )
    if not report.ok:
        _fail(report.problems)


def _resolve_file(file: Path) -> Path:
    """A path as given; failing that, relative to the bespoke package (`rules/policies/default.toml`)."""
    if file.exists() or file.is_absolute():
        return file
    pkg = Path(__file__).resolve().parent.parent
    for candidate in (pkg / file, pkg.parent / file):
        if candidate.exists():
            return candidate
    return file


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - convenience entry
    app(argv)


