"""Language for a page: the `lang` cookie (the switch), else Accept-Language;
English and Simplified Chinese. Amounts and dates are formatted per language."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import Request

from bespoke.domain.money import format_amount

LANGUAGES = ("en", "zh-CN")
DEFAULT = "en"


def _parse_accept(header: str) -> list[tuple[float, str]]:
    out = []
    for part in header.split(",")[:20]:  # bounded: a header is attacker-controlled
        bits = part.strip().split(";")
        tag = bits[0].strip().lower()
        q = 1.0
        for b in bits[1:]:
            if b.strip().startswith("q="):
                try:
                    q = float(b.strip()[2:])
                except ValueError:
                    q = 0.0
        if tag:
            out.append((q, tag))
    return sorted(out, key=lambda x: -x[0])


def language_for(request: Request) -> str:
    chosen = request.cookies.get("lang")
    if chosen in LANGUAGES:
        return chosen
    for q, tag in _parse_accept(request.headers.get("accept-language", "")):
        if q <= 0:
            continue
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT


def translator(lang: str) -> Callable[[str], str]:
    if lang == "zh-CN":
        from bespoke.portal.zh import ZH

        return lambda text: ZH.get(text, text)
    return lambda text: text


_SYMBOLS = {"CNY": "¥", "USD": "US$", "EUR": "€", "GBP": "£", "HKD": "HK$", "JPY": "JP¥"}


def money_formatter(lang: str) -> Callable[[int, str], str]:
    """English: `12,000.00 CNY` (as the CLI prints); Chinese: `¥12,000.00`."""
    if lang == "zh-CN":

        def zh(minor: int, currency: str) -> str:
            text = format_amount(minor, currency).rsplit(" ", 1)[0]
            sign = "-" if text.startswith("-") else ""
            return f"{sign}{_SYMBOLS.get(currency, currency + ' ')}{text.lstrip('-')}"

        return zh
    return format_amount


def date_formatter(lang: str) -> Callable[[datetime | None], str]:
    """English: `2 Dec 2026, 14:05 UTC`; Chinese: `2026年12月2日 14:05 UTC`."""

    def fmt(at: datetime | None) -> str:
        if at is None:
            return "—"
        at = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
        if lang == "zh-CN":
            return f"{at.year}年{at.month}月{at.day}日 {at:%H:%M} UTC"
        return f"{at.day} {at:%b %Y, %H:%M} UTC"

    return fmt


def plain_amount(minor: int, currency: str) -> str:
    """Major units as a form field takes them back: 120050 CNY -> `1200.50`."""
    return format_amount(minor, currency).rsplit(" ", 1)[0].replace(",", "")
