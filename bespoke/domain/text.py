"""Names and identifiers as typed by people: normalised, and refused when they would
look like another name or rewrite the operator's terminal. Pure, so the workflow's
validators use the same function as the CLI and the API."""

from __future__ import annotations

import unicodedata


def clean_name(text: str, what: str, *, max_length: int) -> str:
    """A person's or account's name, or an identifier (carrier, tracking number,
    reference), as typed: Unicode NFC (so "José" typed with a combining accent is the
    same buyer as "José" typed precomposed: the workflow compares names exactly),
    without surrounding whitespace. Pure, so the workflow's validators call it too.

    Refused, because they make one name look like another or rewrite the operator's
    terminal: control characters (a NUL cannot be stored in PostgreSQL text, an ESC
    starts a terminal escape), bidirectional embeddings, overrides and isolates
    (U+202A-202E, U+2066-2069: "\u202eecila" shows as "alice"), and every other
    invisible format character (Unicode category Cf: zero-width space, word joiner,
    BOM, soft hyphen, tag characters) inside a name: "al\u200bice" is not a second
    "alice". Zero-width characters at the very start or end (U+200B-200D, U+2060,
    U+FEFF) are dropped instead: copy-paste from spreadsheets and web pages leaves
    them there, and without them the name is exactly what the operator sees.

    Zero-width joiner and non-joiner (U+200D, U+200C) are kept only right after a
    virama, where Indic scripts need them to choose a letter's form (IDNA2008's
    CONTEXTJ rule, RFC 5892 A.1/A.2). Emoji ZWJ sequences ("👨\u200d👩\u200d👧")
    and Persian ZWNJ spellings are refused: each renders like another name, and
    both can be written without the joiner.

    Applied where text comes in (the CLI, imports, `build_order_input`, the
    workflow's validators), not in the models, so histories already recorded decode."""
    if not isinstance(text, str):
        raise ValueError(f"{what} must be text, got {text!r}")
    name = _strip_edges(unicodedata.normalize("NFC", text))
    if not name:
        raise ValueError(f"{what} is empty (or only invisible characters)")
    for i, c in enumerate(name):
        category = unicodedata.category(c)
        if category == "Cc":
            raise ValueError(f"{what} contains a control character: {name[:40]!r}")
        if category == "Cf" and not (c in _JOINERS and i and unicodedata.combining(name[i - 1]) == _VIRAMA):
            kind = "a bidirectional-text control" if c in _BIDI_CONTROLS else "an invisible character"
            raise ValueError(f"{what} contains {kind} (U+{ord(c):04X}): {name[:40]!r}")
    if len(name) > max_length:
        raise ValueError(f"{what} is longer than {max_length} characters")
    return name


_ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff")
_JOINERS = frozenset("\u200c\u200d")
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
_VIRAMA = 9  # canonical combining class of a virama (Devanagari ्, Tamil ், ...)


def _strip_edges(name: str) -> str:
    def blank(c: str) -> bool:
        return c.isspace() or c in _ZERO_WIDTH

    start, end = 0, len(name)
    while start < end and blank(name[start]):
        start += 1
    while end > start and blank(name[end - 1]):
        end -= 1
    return name[start:end]
