"""Bad input, fuzzed, at the support pack's reading of money: whatever the text, amounts_in
raises nothing (it documents no error) and returns whole cents, never negative, found in the
text in order and read as the number written (a number past every limit reads past 10**18
cents, never as a small one); an amount spelled the usual ways reads back as written."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation, Overflow

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.hostile import texts
from tether.domains.support.money import (
    _NUMBER,
    _OTHER_CODES,
    _SCALES,
    _WIDE,
    _spelled,
    amounts_in,
    named_cents,
)

pytestmark = pytest.mark.fuzz

CAP = 10**18  # what money.py reads a number past a float's range as
PIECES = [
    *"$€£-+., eE\u00a0\u0663\u0967\uff11",
    *["USD", "usd", "EUR", "GBP", "dollars", "bucks", "euro", "pounds", "1,000", "1e9", "1e999"],
    *["0", "5", "40", "4.50", "99999999999999999999", "ORD-1001", "refund", "\n"],
    *["k", " m", "bn", " million", "cents", "¢", "100,00", "1.000,50", "\uff04", "\uff15"],
    *["five", " hundred", " and", "-", "twenty", " thousand", "a ", "minus "],
]
MONEYISH = st.lists(st.sampled_from(PIECES) | texts(max_size=3), max_size=8).map("".join)
# As long as a request may be (4000 characters), one money-like piece over and over.
LONG = st.builds(lambda piece, times: (piece * times)[:4_000], MONEYISH, st.integers(1, 1_000))


def _written(text: str) -> Decimal:
    """The number of cents an amount's text writes, exactly: its number (a decimal comma when
    two digits follow the last comma), times its scale (k, million, ...), in cents unless it
    says cents; in words, what the words say."""
    seen = text.translate(_WIDE)
    number = re.search(_NUMBER, seen)
    if number is None:  # in words
        spelled = _spelled(re.sub(r"(?i)^minus\s+|\s+\S+$", "", seen.strip()))
        assert spelled is not None, text
        return Decimal(spelled) * (1 if _says_cents(seen) else 100)
    raw = number.group(0)
    if re.fullmatch(r"[\d.]*,\d{2}", raw):
        raw = raw.replace(".", "").replace(",", ".")
    digits = re.sub(r"[,\u00a0 ]", "", raw)
    after = seen[number.end() :]
    scale = re.match(r"([km])(?![\w&'-])", after, re.I) or re.match(
        r"\s?(hundred|thousand|million|billion|mn|bn)(?![\w-])", after, re.I
    )
    factor = Decimal(_SCALES[scale.group(1).lower()] if scale else 1)
    factor *= 1 if _says_cents(seen) else 100
    try:
        return Decimal(digits) * factor
    except (
        InvalidOperation,
        Overflow,
    ):  # an exponent past what Decimal holds: nothing, or past any cap
        mantissa, _, exponent = digits.lower().partition("e")
        nothing = Decimal(mantissa) == 0 or exponent.startswith("-")
        return Decimal(0) if nothing else Decimal("Infinity")


# Number words run on before what was read (more than twelve of them).
NUMBER_WORD_BEFORE = re.compile(
    r"(?i)(?<![\w-])(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
    r"\w+teen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|million|"
    r"billion)(?:\s+and)?[\s-]+$"
)


def _says_cents(text: str) -> bool:
    return re.search(r"(?i)(?:cents?|¢)$", text.strip()) is not None


@given(st.one_of(MONEYISH, MONEYISH, LONG, texts(max_size=80)))
def test_any_text_reads_as_whole_cents_where_it_says_them(text: str) -> None:
    amounts = amounts_in(text)
    at = 0
    for amount in amounts:
        assert type(amount.cents) is int and amount.cents >= 0
        assert amount.currency in {"USD", "EUR", "GBP", "?", *_OTHER_CODES}
        found = text.index(amount.text, at)
        at = found + len(amount.text)  # in the text, in order, apart
        cents = _written(amount.text)
        spelled = re.search(_NUMBER, amount.text.translate(_WIDE)) is None
        if spelled and re.search(NUMBER_WORD_BEFORE, text[:found].translate(_WIDE)):
            cents = Decimal("Infinity")  # a spelled number longer than is read: never small
        if cents < Decimal(CAP):
            assert abs(amount.cents - cents) <= max(1, cents / 10**15)  # a float's precision
        else:
            assert amount.cents >= CAP, (amount, cents)
        str(amount)  # and it can be said
    assert named_cents(text) == [a.cents for a in amounts if a.usable]


FORMS = [  # (spelling of a number of dollars, its currency, negative)
    ("${:,.2f}", "USD", False),
    ("$ {:.2f}", "USD", False),
    ("{:.2f} dollars", "USD", False),
    ("USD {:,.2f}", "USD", False),
    ("{:,.2f} bucks", "USD", False),
    ("-${:.2f}", "USD", True),
    ("€{:,.2f}", "EUR", False),
    ("{:.2f} EUR", "EUR", False),
    ("£{:.2f}", "GBP", False),
    ("{:.2f} pounds", "GBP", False),
    ("USD{:.2f}", "USD", False),
    ("\uff04{:.2f}", "USD", False),
    ("{:.2f}\u00a0EUR", "EUR", False),
]
SAID = ["please", "refund", "my", "order", "ORD-1001", "the", "jacket", "thanks,", "\n"]


@given(
    cents=st.integers(0, 10**12),
    form=st.sampled_from(FORMS),
    before=st.lists(st.sampled_from(SAID), max_size=3),
    after=st.lists(st.sampled_from(SAID), max_size=3),
)
def test_an_amount_spelled_the_usual_ways_reads_back(
    cents: int, form: tuple[str, str, bool], before: list[str], after: list[str]
) -> None:
    spelling, currency, negative = form
    text = " ".join([*before, spelling.format(cents / 100), *after])
    [amount] = amounts_in(text)
    assert (amount.cents, amount.currency, amount.negative) == (cents, currency, negative)
    assert named_cents(text) == ([cents] if amount.usable else [])
