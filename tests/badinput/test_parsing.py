"""Bad input, parsed and validated without a server: the order fields of `bespoke
order create` and of import rows (`order_input`), import files (`read_rows`),
amounts (`parse_amount`) and names. Each bad value is refused with one readable
line; good values come through exact.

Decisions recorded here (DESIGN.md leaves them open):
- Names are compared as Unicode NFC: "José" typed with a combining accent (NFD, as
  some macOS tools produce) is the same buyer as "José" precomposed. Whitespace and
  zero-width characters (zero-width space, joiners, word joiner, BOM) around a name
  are dropped; a name of only invisible characters is refused. Inside a name,
  control characters (newline, NUL, ESC), bidirectional controls (U+202A-202E,
  U+2066-2069) and every other invisible format character are refused, so nobody
  can register a second "alice" that looks like the first; a zero-width joiner or
  non-joiner stays only after a virama, where Indic scripts need it (emoji ZWJ
  families are refused: see clean_name in domain/models.py).
- Amounts typed as text are plain decimals: ASCII digits, an optional sign and
  decimals, commas only grouping thousands. "1e3", "1_000", ".5", fullwidth or
  Arabic-Indic digits are refused (Decimal would read them). JSON numbers in an
  import are numbers, read exactly.
- Commas in an amount only group thousands: "12,50" is refused, not read as 1250.
- A JSON `null` is an absent field; a JSON number is read exactly (Decimal), never
  through a float; text fields must be JSON strings (an order id may be a number).
- Unknown fields or columns are refused: a misspelt "curency" would otherwise be
  ignored and the order created in CNY.
"""

from __future__ import annotations

import json
import unicodedata
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bespoke.cli.errors import Rejected
from bespoke.cli.order.create import order_input
from bespoke.cli.order.importer import BadLine, read_rows, row_id
from bespoke.domain.models import Actor, OrderInput, PaymentPlan
from bespoke.domain.money import MoneyError, parse_amount
from bespoke.settings import Settings

CREATED_BY = Actor.parse("ops:test")
GOOD = {"order_id": "BAD-1", "buyer": "alice", "seller": "acme", "price": "1200.50"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


def order(settings: Settings, **fields: Any) -> OrderInput:
    return order_input(settings, {**GOOD, **fields}, CREATED_BY)


def refused(settings: Settings, **fields: Any) -> str:
    with pytest.raises(Rejected) as info:
        order(settings, **fields)
    message = info.value.message
    assert "\n" not in message and len(message) < 300, message
    assert info.value.code == 2
    return message


# ------------------------------------------------------------------ wrong types, bad values

BAD_FIELDS = [
    # wrong types and words where numbers belong
    ({"price": "abc"}, "'abc' is not a number"),
    ({"price": ""}, "missing field 'price'"),
    ({"price": None}, "missing field 'price'"),
    ({"price": True}, "must be a number"),
    ({"price": [12]}, "must be a number"),
    ({"price": {"amount": 12}}, "must be a number"),
    ({"price": "NaN"}, "not a finite number"),
    ({"price": "-Infinity"}, "not a finite number"),
    ({"production_days": "ten"}, "production_days must be a whole number of days, got 'ten'"),
    ({"production_days": "1.5"}, "whole number of days"),
    ({"production_days": Decimal("1.5")}, "whole number of days"),
    ({"production_days": True}, "whole number of days, got True (a boolean)"),
    ({"production_days": [14]}, "whole number of days"),
    ({"production_days": "1e3"}, "whole number of days"),
    ({"production_days": 0}, "between 1 and 365, got 0"),
    ({"production_days": "-3"}, "between 1 and 365"),
    ({"production_days": 10**30}, "between 1 and 365"),
    ({"earnest": "maybe", "plan": "staged:20/80"}, "earnest must be true or false (yes/no, 1/0), got 'maybe'"),
    ({"earnest": 2, "plan": "staged:20/80"}, "earnest must be true or false"),
    ({"earnest": [], "plan": "staged:20/80"}, "earnest must be true or false"),
    ({"buyer": 5}, "buyer must be text, got 5 (a number)"),
    ({"buyer": ["alice"]}, "buyer must be text"),
    ({"seller": {"name": "acme"}}, "seller must be text"),
    ({"title": {"x": 1}}, "title must be text"),
    ({"currency": 156}, "currency must be text"),
    ({"plan": 5}, "plan must be text"),
    ({"policy": 1}, "policy must be text"),
    ({"order_id": True}, "order_id must be text"),
    ({"order_id": 1.5}, "order_id must be text"),
    # huge amounts
    ({"price": "1e30"}, "too large"),
    ({"price": "1e100000"}, "too large"),
    ({"price": 10**20}, "exceeds the policy's maximum order amount 10,000,000.00 CNY"),
    ({"price": "99999999999999999999.99"}, "exceeds the policy's maximum order amount"),
    ({"price": "9" * 5000}, "too long to be an amount"),
    # negative and zero
    ({"price": "0"}, "price must be positive, got 0"),
    ({"price": "0.00"}, "positive"),
    ({"price": "-0.00"}, "positive"),
    ({"price": "-12.00"}, "positive"),
    ({"price": -5}, "positive"),
    # more decimals than the currency has
    ({"price": "12.345"}, "'12.345' has more than 2 decimal places for CNY"),
    ({"price": "1.5", "currency": "JPY"}, "'1.5' has more than 0 decimal places for JPY"),
    ({"price": "1e-100000"}, "more than 2 decimal places"),
    ({"price": "12,50"}, "commas may only group thousands"),
    ({"price": "1,2,3"}, "commas may only group thousands"),
    # spellings Decimal reads but a person rarely means
    ({"price": "1e3"}, "'1e3' is not a plain decimal number"),
    ({"price": "1.2005e3"}, "not a plain decimal number"),
    ({"price": "1_000"}, "not a plain decimal number"),
    ({"price": ".5"}, "not a plain decimal number"),
    ({"price": "5."}, "not a plain decimal number"),
    ({"price": "١٢٣"}, "not a plain decimal number"),  # Arabic-Indic digits
    ({"price": "１２００.５"}, "not a plain decimal number"),  # fullwidth digits
    ({"price": "1\u00a0000"}, "is not a number"),
    # unknown currency
    ({"currency": "XYZ"}, "unknown currency 'XYZ' (known: CNY, EUR, GBP, HKD, JPY, USD)"),
    ({"currency": "人民币"}, "unknown currency '人民币'"),
    ({"currency": "X" * 10_000}, "unknown currency 'XXXXXXXXXXXXXXXXXXXX...'"),
    # names
    ({"buyer": ""}, "missing field 'buyer'"),
    ({"buyer": "   "}, "missing field 'buyer'"),
    ({"buyer": "\u200b"}, "buyer is empty (or only invisible characters)"),
    ({"buyer": "\ufeff\u200b\u2060"}, "only invisible characters"),
    ({"buyer": "a\x00b"}, "buyer contains a control character"),
    ({"seller": "acme\nmallory"}, "seller contains a control character"),
    ({"buyer": "a" * 201}, "buyer is longer than 200 characters"),
    ({"title": "t" * 501}, "title is longer than 500 characters"),
    ({"title": "oak\x1b[31m"}, "title contains a control character"),
    ({"buyer": "\u202eecila"}, "buyer contains a bidirectional-text control (U+202E)"),
    ({"buyer": "ali\u2066ce"}, "bidirectional-text control (U+2066)"),
    ({"buyer": "al\u200bice"}, "buyer contains an invisible character (U+200B)"),
    ({"buyer": "al\u200dice"}, "invisible character (U+200D)"),
    ({"seller": "ac\u2060me"}, "invisible character (U+2060)"),
    ({"seller": "ac\ufeffme"}, "invisible character (U+FEFF)"),
    ({"seller": "acme\u00adx"}, "invisible character (U+00AD)"),
    ({"buyer": "👨\u200d👩\u200d👧"}, "invisible character (U+200D)"),
    # order ids
    ({"order_id": "A B"}, "order id 'A B' is not valid"),
    ({"order_id": "A/B"}, "not valid"),
    ({"order_id": "../etc"}, "not valid"),
    ({"order_id": "A" * 200}, "not valid: use 1-64 letters"),
    ({"order_id": "订单1"}, "not valid"),
    ({"order_id": "ABC\n"}, "not valid"),
    ({"order_id": "-ABC"}, "not valid"),
    ({"order_id": "A'; DROP TABLE orders;--"}, "not valid"),
    # plans and policies
    ({"plan": "barter"}, "unknown payment plan 'barter'"),
    ({"plan": "staged:a/b"}, "staged ratios must be integers"),
    ({"plan": "staged:" + "1/" * 100_000}, "at most 10 parts"),
    ({"plan": "staged:50/50"}, "not offered"),
    ({"plan": "credit:0"}, "credit settlement days must be between 1 and 365, got '0'"),
    ({"plan": "credit:99999999999999999999"}, "between 1 and 365"),
    ({"plan": "full_prepayment:3"}, "takes no argument"),
    ({"earnest": "yes"}, "an earnest deposit needs a staged plan"),
    ({"earnest": "yes", "plan": "staged:30/70"}, "at most 20% of the price, not 30%"),
    ({"policy": "../../etc/passwd"}, "not found"),
    ({"policy": "default@9.9.9"}, "policy default@9.9.9 not found"),
    # unknown fields
    ({"curency": "USD"}, "unknown field 'curency'"),
    ({"price ": "1"}, "unknown field 'price '"),
]


@pytest.mark.parametrize(("fields", "expected"), BAD_FIELDS, ids=[repr(f)[:60] for f, _ in BAD_FIELDS])
def test_bad_order_fields_are_refused_with_one_clear_line(settings: Settings, fields: dict, expected: str) -> None:
    assert expected in refused(settings, **fields)


def test_a_missing_required_field_is_named(settings: Settings) -> None:
    for key in ("buyer", "seller", "price"):
        row = {k: v for k, v in GOOD.items() if k != key}
        with pytest.raises(Rejected, match=f"missing field '{key}'"):
            order_input(settings, row, CREATED_BY)


GOOD_VARIANTS = [
    ({"price": "1,200.50"}, 120_050),
    ({"price": " 1200.5 "}, 120_050),
    ({"price": Decimal("1200.50")}, 120_050),
    ({"price": 1200}, 120_000),  # a JSON integer is major units
    ({"price": "+1200.50"}, 120_050),
    ({"price": Decimal("1.2005E+3")}, 120_050),  # a JSON number is a number, exponent and all
    ({"price": "1200", "currency": "jpy"}, 1200),
    ({"price": "1200.0", "currency": "JPY"}, 1200),
    ({"price": "99999.99", "currency": "USD"}, 9_999_999),
]


@pytest.mark.parametrize(("fields", "minor"), GOOD_VARIANTS, ids=[repr(f) for f, _ in GOOD_VARIANTS])
def test_good_amounts_in_any_spelling_come_through_exact(settings: Settings, fields: dict, minor: int) -> None:
    assert order(settings, **fields).price == minor


def test_good_optional_fields_and_their_defaults(settings: Settings) -> None:
    plain = order(settings, currency=None, plan="", production_days=None, earnest=None, title=None, policy=None)
    assert (plain.currency, plain.plan.label(), plain.production_days, plain.earnest_deposit, plain.title) == (
        "CNY", "full_prepayment", 14, False, "")
    staged = order(settings, plan="staged:20/80", earnest="Yes", production_days="30", order_id=1001)
    assert (staged.plan.ratios, staged.earnest_deposit, staged.production_days, staged.order_id) == (
        (20, 80), True, 30, "1001")
    for word, value in (("1", True), ("true", True), ("y", True), ("0", False), ("no", False), ("", False),
                        (True, True), (False, False), (0, False), (1, True)):
        assert order(settings, plan="staged:20/80", earnest=word).earnest_deposit is value, word


# ------------------------------------------------------------------ unicode and hostile text


@pytest.mark.parametrize("name", ["张伟", "王小明 (深圳)", "🦊 fox & co", "\u0915\u094d\u200d\u0937\u092e\u093e", "מרים כהן", "فاطمة الزهراء",
                                  "O'Brien", "'; DROP TABLE orders;--", "Robert\"); --", "%s%n{0}", "${jndi:x}",
                                  "ＡＣＭＥ"])
def test_unicode_and_sql_looking_names_are_kept_verbatim(settings: Settings, name: str) -> None:
    inp = order(settings, buyer=name, seller=f"{name} (maker)", title=name)
    assert inp.buyer == inp.title == unicodedata.normalize("NFC", name)
    assert inp.seller == unicodedata.normalize("NFC", f"{name} (maker)")


def test_nfc_and_nfd_spellings_are_the_same_buyer(settings: Settings) -> None:
    nfc, nfd = unicodedata.normalize("NFC", "José Müller"), unicodedata.normalize("NFD", "José Müller")
    assert nfc != nfd
    assert order(settings, buyer=nfd).buyer == order(settings, buyer=nfc).buyer == nfc
    # The actor given to --as is normalised the same way, so the buyer can act on the order.
    assert Actor.parse(f"buyer:{nfd}").name == nfc


def test_zero_width_characters_around_a_name_are_dropped_and_inside_it_refused(settings: Settings) -> None:
    assert order(settings, buyer="\ufeff\u200balice\u200b\u200d ").buyer == "alice"
    # Neither a second "alice" nor silently merged with the first: refused.
    assert "invisible character (U+200B)" in refused(settings, buyer="al\u200bice")
    # After a virama a joiner picks a letter form (Devanagari KA, VIRAMA, ZWJ, SSA): it stays.
    assert order(settings, buyer="क्\u200dष").buyer == "क्\u200dष"


@pytest.mark.parametrize("text", ["buyer:\u200b", "buyer:a\x00b", "buyer:a\nb", "buyer:" + "a" * 201, "buyer",
                                  "wizard:merlin"])
def test_bad_actor_names_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Actor.parse(text)


# ------------------------------------------------------------------ amounts on their own


@pytest.mark.parametrize("text", ["", " ", "1.2.3", "1e", "0x10", "1/2", "½", "1 000", "--1", "12,5", "1,23",
                                  "1,0000", ",100", "100,", "1e999999999", "9" * 65, None, [1], {}, b"10"])
def test_parse_amount_refuses_what_is_not_an_amount(text: Any) -> None:
    with pytest.raises(MoneyError):
        parse_amount(text, "CNY")


def test_parse_amount_is_exact_far_beyond_float_precision() -> None:
    assert parse_amount("12345678901234567.89", "USD") == 1234567890123456789
    assert parse_amount(Decimal("0.10"), "CNY") == 10
    assert parse_amount("1,234,567.89", "CNY") == 123_456_789


# ------------------------------------------------------------------ import files


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


HEADER = "order_id,buyer,seller,price,currency\n"

BAD_FILES = [
    ("syntax.json", '[{"buyer": "a", "seller": "b", "price": "1"},]', "not valid JSON (line 1"),
    ("truncated.json", '[{"buyer": ', "not valid JSON"),
    ("empty.json", "", "the file is empty"),
    ("blank.json", "  \n\n ", "the file is empty"),
    ("object.json", '{"buyer": "a", "seller": "b", "price": "1"}', "expected a JSON list of order objects"),
    ("string.json", '"orders"', "expected a JSON list"),
    ("number.json", "42", "expected a JSON list"),
    ("null.json", "null", "expected a JSON list"),
    ("orders-not-list.json", '{"orders": {"buyer": "a"}}', "expected a JSON list"),
    ("items.json", '[{"buyer": "a", "seller": "b", "price": "1"}, "oops"]', "item 2 is str, not an order object"),
    ("nested.json", '[[{"buyer": "a"}]]', "item 1 is list"),
    ("deep.json", "[" * 100_000 + "]" * 100_000, "not usable JSON (RecursionError"),
    ("bigint.json", '[{"buyer": "a", "seller": "b", "price": ' + "9" * 5000 + "}]", "not usable JSON (ValueError"),
    ("empty.csv", "", "the file is empty"),
    ("no-header.csv", "O-1,alice,acme,10.00,CNY\n", "expected a CSV header with at least buyer,seller,price"),
    ("missing-columns.csv", "order_id,buyer\nO-1,alice\n", "(missing: seller,price)"),
    ("semicolons.csv", "order_id;buyer;seller;price\nO-1;alice;acme;10.00\n", "separated by semicolons; use commas"),
    ("tabs.csv", "order_id\tbuyer\tseller\tprice\nO-1\talice\tacme\t10.00\n", "separated by tabs"),
    ("unknown-column.csv", "order_id,buyer,seller,price,curency\nO-1,a,b,1,USD\n", "unknown column 'curency'"),
    ("duplicate-column.csv", "buyer,seller,price,price\na,b,1,2\n", "column 'price' appears twice"),
    ("json-named.csv", '[{"buyer": "a", "seller": "b", "price": "1"}]', "looks like JSON; name the file .json"),
    ("binary.csv", bytes(range(256)) * 4, "not UTF-8 text"),
    ("png.json", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8 text"),
    ("latin1.csv", "buyer,seller,price\nJos\xe9,acme,1\n".encode("latin-1"), "not UTF-8 text"),
    ("utf16.csv", "buyer,seller,price\nalice,acme,1\n".encode("utf-16"), "looks like UTF-16: save it as UTF-8"),
    ("nul.csv", b"buyer,seller,price\nalice\x00,acme,1\n", "contains NUL bytes"),
    ("huge-field.csv", "buyer,seller,price\n\"" + "a" * 200_000 + "\",acme,1\n", "not valid CSV (field larger"),
]


@pytest.mark.parametrize(("name", "content", "expected"), BAD_FILES, ids=[n for n, _, _ in BAD_FILES])
def test_malformed_import_files_are_refused_whole_with_one_line(tmp_path: Path, name: str, content: str | bytes,
                                                                 expected: str) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(Rejected) as info:
        read_rows(path)
    assert expected in info.value.message and "\n" not in info.value.message, info.value.message
    assert info.value.message.startswith(str(path))


RAGGED = [
    ("ragged-long.csv", HEADER + "O-1,alice,acme,1,500.00,CNY\n", 0, "line 2 has 6 values for 5 columns"),
    ("ragged-short.csv", HEADER + "O-1,alice,acme,10.00,CNY\nO-2,bob,acme\n", 1, "line 3 has 3 values for 5 columns"),
    ("open-quote.csv", 'buyer,seller,price\n"alice,acme,1\n', 0, "line 2 has 1 values for 3 columns"),
]


@pytest.mark.parametrize(("name", "content", "bad", "expected"), RAGGED, ids=[n for n, *_ in RAGGED])
def test_a_csv_line_with_the_wrong_number_of_values_is_one_bad_row_not_a_bad_file(
    tmp_path: Path, name: str, content: str, bad: int, expected: str
) -> None:
    # The report: one line with too few values aborted the whole file; it is now
    # that row's rejection ("row N: rejected: ...") and the other rows import.
    rows = read_rows(write(tmp_path, name, content))
    assert isinstance(rows[bad], BadLine) and expected in rows[bad].error and "\n" not in rows[bad].error
    assert all(not isinstance(r, BadLine) for i, r in enumerate(rows) if i != bad)


def test_a_missing_file_or_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(Rejected, match="no such file"):
        read_rows(tmp_path / "nope.csv")
    with pytest.raises(Rejected, match="cannot read"):
        read_rows(tmp_path)


def test_good_csv_quirks_are_read(tmp_path: Path) -> None:
    """A spreadsheet's BOM and CRLF, spaces around header names, blank lines, quoted
    commas, and a title holding U+2028 (which str.splitlines would break the row at)."""
    text = ("\ufefforder_id , buyer,seller ,price,title\r\n"
            'Q-1,张伟,acme,"1,500.00","oak, walnut"\r\n'
            "\r\n"
            "Q-2,bob,acme,10,shelf\u2028two\r\n")
    rows = read_rows(write(tmp_path, "quirks.csv", text))
    assert rows == [
        {"order_id": "Q-1", "buyer": "张伟", "seller": "acme", "price": "1,500.00", "title": "oak, walnut"},
        {"order_id": "Q-2", "buyer": "bob", "seller": "acme", "price": "10", "title": "shelf\u2028two"},
    ]


def test_header_only_csv_and_empty_json_list_are_an_empty_import(tmp_path: Path) -> None:
    assert read_rows(write(tmp_path, "h.csv", "buyer,seller,price\n")) == []
    assert read_rows(write(tmp_path, "e.json", "[]")) == []
    assert read_rows(write(tmp_path, "o.json", '{"orders": []}')) == []


def test_json_numbers_are_read_exactly(tmp_path: Path, settings: Settings) -> None:
    path = write(tmp_path, "n.json", '[{"order_id": "N-1", "buyer": "a", "seller": "b", "price": 1200.10},'
                                     ' {"order_id": "N-2", "buyer": "a", "seller": "b", "price": 0.3}]')
    rows = read_rows(path)
    assert rows[0]["price"] == Decimal("1200.10")
    assert [order_input(settings, r, CREATED_BY).price for r in rows] == [120_010, 30]


def test_json_row_with_wrong_types_is_refused_by_row(tmp_path: Path, settings: Settings) -> None:
    rows = read_rows(write(tmp_path, "t.json", json.dumps(
        [{"buyer": None, "seller": "b", "price": "1"}, {"buyer": "a", "seller": "b", "price": "1", "earnest": "maybe"},
         {"buyer": "a", "seller": "b", "price": "1", "production_days": "ten"}])))
    messages = []
    for row in rows:
        with pytest.raises(Rejected) as info:
            order_input(settings, {**row, "order_id": row_id(row)}, CREATED_BY)
        messages.append(info.value.message)
    assert messages == ["missing field 'buyer'", "earnest must be true or false (yes/no, 1/0), got 'maybe'",
                        "production_days must be a whole number of days, got 'ten'"]


def test_derived_row_ids_are_unchanged_so_old_files_rerun_without_duplicates(tmp_path: Path) -> None:
    """Ids of rows without one are a digest of the row; these values were computed
    by the importer before JSON numbers were read as Decimal. If they changed,
    re-importing an old file would create every such order a second time."""
    path = write(tmp_path, "a.json", '[{"buyer": "erin", "seller": "acme", "price": 1200.10, "production_days": 12,'
                                     ' "plan": "staged:30/70"}]')
    assert row_id(read_rows(path)[0]) == "IMP-EDF3E0B1A6B9"
    path = write(tmp_path, "a.csv", "order_id,buyer,seller,price,currency,plan,production_days,title\n"
                                    ",carol,acme,800.00,CNY,staged:30/70,12,oak\n")
    assert row_id(read_rows(path)[0]) == "IMP-0E242527E6EF"
    assert row_id({"order_id": "  X-1 ", "buyer": "a"}) == "X-1"


def test_payment_plan_parse_messages() -> None:
    assert PaymentPlan.parse("credit:45").settlement_days == 45
    assert PaymentPlan.parse("cod").kind.value == "cash_on_delivery"
    with pytest.raises(ValueError, match="between 1 and 365"):
        PaymentPlan.parse("credit:400")
