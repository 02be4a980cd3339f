"""Amounts of money in a customer's words: "$5,000", "5000 dollars", "2400 EUR", "€12.50",
"USD 40", "USD40", "-500", "1e9", "$1.5k", "2 million euros", "50000 cents", "100,00 €",
"five hundred dollars", and the full-width forms. Each amount keeps its currency and sign, so that what is
named can be compared with what is proposed, and nothing unnamed or unreadable passes for it."""

from __future__ import annotations

import re
from dataclasses import dataclass

# "1.000,50" and "100,00" (a decimal comma: two digits after it), "1,000.50", "40", "1e9".
_NUMBER = (
    r"\d{1,3}(?:\.\d{3})+,\d{2}(?![\d,.])"
    r"|\d+,\d{2}(?![\d,.])"
    r"|\d{1,3}(?:[,\u00a0 ]\d{3})+(?:\.\d+)?"
    r"|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?"
)
_SCALES = {
    "hundred": 10**2,
    "k": 10**3,
    "thousand": 10**3,
    "m": 10**6,
    "mn": 10**6,
    "million": 10**6,
    "bn": 10**9,
    "billion": 10**9,
}
# "1k", "$20M", "1.5 million", "5 hundred": a scale after the number. A letter alone only
# right after a digit and before no word ("$20 M&S voucher", "$40 m." are no millions).
_SCALE = (
    r"(?P<scale>(?<=\d)[km](?![\w&'-])"
    r"|\s?(?:hundred|thousand|million|billion|mn|bn)(?![\w-]))?"
)
# Other currencies by code: named, so that an amount in one is never taken for dollars.
_OTHER_CODES = (
    *("CAD", "AUD", "NZD", "CHF", "JPY", "CNY", "INR", "SEK", "NOK", "DKK", "MXN"),
    *("BRL", "ZAR", "SGD", "HKD", "PLN", "CZK"),
)
_CURRENCIES = {
    "$": "USD",
    "usd": "USD",
    "dollar": "USD",
    "dollars": "USD",
    "bucks": "USD",
    "€": "EUR",
    "eur": "EUR",
    "euro": "EUR",
    "euros": "EUR",
    "£": "GBP",
    "gbp": "GBP",
    "pound": "GBP",
    "pounds": "GBP",
    "cent": "USD",
    "cents": "USD",
    "¢": "USD",
    "usdollar": "USD",
    "usdollars": "USD",
    "yen": "JPY",
    "franc": "CHF",
    "francs": "CHF",
    "rupee": "INR",
    "rupees": "INR",
    **{code.lower(): code for code in _OTHER_CODES},
}
_IN_CENTS = {"cent", "cents", "¢"}
_SYMBOL = r"[$€£]"
_CODES = "|".join(("USD", "EUR", "GBP", *_OTHER_CODES))
_CODE = rf"\b(?:{_CODES})(?![a-z])"  # "USD40" too
_WORD = (
    rf"(?:{_CODES}|u\.?s\.?\s?dollars?|dollars?|bucks|euros?|pounds?|cents?|yen|francs?"
    r"|rupees?)\b|¢"
)
# "$40", "-$40", "$ -40", "USD 40", "€12.50", "$1.5k"
_BEFORE = re.compile(
    rf"(?P<sign>-)?\s?(?P<cur>{_SYMBOL}|{_CODE})\s?(?P<sign2>-)?\s?(?P<num>{_NUMBER}){_SCALE}",
    re.IGNORECASE,
)
# "40 dollars", "-500 EUR", "2400€", "2 million euros", "50000 cents"
# Right after a group of a thousands chain ("1 111 ", " 111 ", and so on): a group that
# continues it.
_MID_CHAIN = (
    r"(?:(?<=[,\u00a0 ]\d{3}[,\u00a0 ])|(?<=(?<![\w.-])\d[,\u00a0 ])"
    r"|(?<=(?<![\w.-])\d{2}[,\u00a0 ])|(?<=(?<![\w.-])\d{3}[,\u00a0 ]))"
)
# Never from the middle of "1 111 111": its groups are read from the first (and a text of
# them is read in linear time, not once from each group).
_AFTER = re.compile(
    rf"(?<![\w.-])(?!{_MID_CHAIN}\d{{3}}(?!\d))"
    rf"(?P<sign>-)?(?P<num>{_NUMBER}){_SCALE}\s?(?P<cur>{_SYMBOL}|{_WORD})",
    re.IGNORECASE,
)
# No currency, but plainly an amount: a signed number ("-500"), or one with an exponent ("1e9").
_BARE = re.compile(
    r"(?<![\w.$€£-])(?P<sign>-)(?P<num>\d+(?:\.\d+)?)\b"
    r"|(?<![\w.])(?P<exp>\d+(?:\.\d+)?[eE][+-]?\d+)\b"
)
_UNITS = {
    w: n
    for n, w in enumerate(
        (
            *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
            *("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen"),
            *("seventeen", "eighteen", "nineteen"),
        )
    )
}
_TENS = {
    w: 10 * n
    for n, w in enumerate(
        ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"), 2
    )
}
_NUMBER_WORD = "|".join([*_UNITS, *_TENS, "hundred", "thousand", "million", "billion"])
# "five hundred dollars", "a thousand euros", "twenty-five bucks", "one hundred and ten pounds";
# twelve words at most, so that text of many ("one one one ...") is read in linear time. Not
# idioms: "a dollar" and "a cent" alone, any number of cents in words ("my two cents").
_SPELLED = re.compile(
    rf"(?<![\w-])(?P<sign>minus\s+)?(?P<words>(?:a\s+(?=hundred|thousand|million|billion))?"
    rf"(?:{_NUMBER_WORD})(?:(?:\s+and)?[\s-]+(?:{_NUMBER_WORD})){{0,11}})"
    rf"\s+(?P<cur>(?:usd|eur|gbp|dollars?|bucks|euros?|pounds?)\b)",
    re.IGNORECASE,
)
_MORE_WORDS = re.compile(rf"(?<![\w-])(?:{_NUMBER_WORD})(?:\s+and)?[\s-]+$", re.IGNORECASE)
# Full-width forms (U+FF04 for $, U+FF15 for 5) read as what they show; one character for one, so that
# what is found is where the text has it.
_WIDE = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0xFE69: ord("$"), 0xFFE1: ord("£")}


@dataclass(frozen=True)
class Amount:
    cents: int  # the magnitude
    currency: str  # USD, EUR, GBP, or "?" when the text gives none
    negative: bool
    text: str
    spelled: bool = False  # in words, not digits

    @property
    def usable(self) -> bool:
        """An amount a refund in dollars may take as asked."""
        return self.currency == "USD" and not self.negative and self.cents > 0

    def __str__(self) -> str:
        sign = "-" if self.negative else ""
        return f"{sign}{self.cents / 100:,.2f} {self.currency}"


def _cents(number: str, scale: str | None = None, in_cents: bool = False) -> int:
    european = re.fullmatch(r"[\d.]*,\d{2}", number)  # a decimal comma
    digits = number.replace(".", "").replace(",", ".") if european else number
    digits = re.sub(r"[,\u00a0 ]", "", digits)
    factor = _SCALES[scale.strip().lower()] if scale else 1
    try:
        return round(float(digits) * factor * (1 if in_cents else 100))
    except OverflowError:  # "1e999": larger than anything a limit allows
        return 10**18


def _spelled(words: str) -> int | None:
    """A number in English words ("two thousand five hundred"), or None if it is not one."""
    total = current = 0
    said = False
    for word in re.split(r"[\s-]+", words.lower()):
        if word == "and":
            continue
        if word in _UNITS or word in _TENS or word == "a":
            current += _UNITS.get(word, _TENS.get(word, 1))
        elif word == "hundred":
            current = (current or 1) * 100
        else:  # thousand, million, billion
            total += (current or 1) * _SCALES[word]
            current = 0
        said = True
    return total + current if said else None


def amounts_in(text: str) -> list[Amount]:
    """Every amount in ``text``, in order of mention; a span is read once."""
    seen = text.translate(_WIDE)
    found: list[tuple[int, int, Amount]] = []
    for pattern in (_BEFORE, _AFTER, _SPELLED, _BARE):
        for match in pattern.finditer(seen):
            start, end = match.span()
            if any(start < e and s < end for s, e, _ in found):
                continue
            groups = match.groupdict()
            unit = re.sub(r"[\s.]", "", (groups.get("cur") or "").lower())  # "u.s. dollars"
            currency = _CURRENCIES.get(unit, "?")
            negative = bool(groups.get("sign") or groups.get("sign2"))
            if groups.get("words"):
                number = _spelled(groups["words"])
                if number is None:
                    continue
                cents = number * (1 if unit in _IN_CENTS else 100)
                if _MORE_WORDS.search(
                    seen, max(0, start - 40), start
                ):  # past twelve words: not small
                    cents = 10**18
            else:
                number_text = groups.get("num") or groups.get("exp") or ""
                cents = _cents(number_text, groups.get("scale"), unit in _IN_CENTS)
            spelled = bool(groups.get("words"))
            found.append((start, end, Amount(cents, currency, negative, text[start:end], spelled)))
    return [amount for _, _, amount in sorted(found, key=lambda f: f[0])]


def named_cents(text: str) -> list[int]:
    """The dollar amounts a refund may take as asked, in cents: those in digits in order of
    mention, then those in words ("the one dollar store; refund $40" asks for $40)."""
    usable = [a for a in amounts_in(text) if a.usable]
    return [a.cents for a in usable if not a.spelled] + [a.cents for a in usable if a.spelled]


def usd(cents: int) -> str:
    return f"${cents / 100:,.2f}"
