"""How the CLI prints: user text literally, whatever it contains.

Names, notes, carriers, tracking numbers and policy texts come from other people.
Printed through Rich's markup, a seller note `[/oops]` raised MarkupError (so
`order status` failed for that order forever), `[green]VERIFIED[/green]` rendered
as formatting and `:thumbs_up:` as an emoji; printed raw, an ESC in a note rewrote
the operator's terminal and a U+202E reversed the rest of the line. So every
console here has markup, emoji codes and highlighting off (styles are given as
`Text` spans, never parsed out of strings), and `shown()` makes every character a
terminal would act on visible as a Python-style escape (`\\x1b`, `\\u202e`, `\\n`).
JSON output is left alone: `json.dumps` escapes control characters itself, and
scripts must see the exact values.
"""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

# Control, format (bidi, zero-width), line/paragraph separators, surrogates and
# unassigned code points. Spaces of every kind (NBSP, the ideographic space in
# "王小明　(深圳)") print as what they are.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Cn"})
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shown(text: object) -> str:
    """`text` as a terminal may print it: unchanged unless it holds characters a
    terminal acts on, which become visible escapes."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(_escape(c) if unicodedata.category(c) in _ESCAPED_CATEGORIES else c for c in text)


def _escape(c: str) -> str:
    if c in _SHORT:
        return _SHORT[c]
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def console(*, stderr: bool = False) -> Console:
    """A Rich console that never interprets the text it is given."""
    from rich.console import Console

    return Console(stderr=stderr, markup=False, emoji=False, highlight=False)


class LazyConsole:
    """`console()`, made on first use: a module-level `out` then costs nothing to
    commands that print only JSON (Rich's console is ~25 ms to import)."""

    def __init__(self, *, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def __getattr__(self, name: str) -> object:
        if self._console is None:
            self._console = console(stderr=self._stderr)
        return getattr(self._console, name)


def text(*parts: object) -> Text:
    """One line, every part shown literally; a `(value, style)` pair is styled."""
    from rich.text import Text

    line = Text()
    for part in parts:
        value, style = part if isinstance(part, tuple) else (part, None)
        line.append(shown(value), style=style or None)
    return line


def cell(value: object) -> Text:
    """A table cell holding a user value."""
    from rich.text import Text

    return Text(shown(value))


def lines(values: object) -> Text:
    """A table cell of several user values, one per line."""
    from rich.text import Text

    return Text("\n").join(Text(shown(v)) for v in values)  # type: ignore[attr-defined]
