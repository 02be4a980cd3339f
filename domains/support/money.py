"""Amounts of money in a customer's words: "$5,000", "5000 dollars", "2400 EUR", "€12.50",
"USD 40", "-500", "1e9". Each amount keeps its currency and sign, so that what is named can be
compared with what is proposed, and nothing unnamed or unreadable passes for it."""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUMBER = r"\d{1,3}(?:[,\u00a0 ]\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?"
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
}
_SYMBOL = r"[$€£]"
_CODE = r"\b(?:USD|EUR|GBP)\b"
_WORD = r"(?:usd|eur|gbp|dollars?|bucks|euros?|pounds?)\b"
# "$40", "-$40", "$ -40", "USD 40", "€12.50"
_BEFORE = re.compile(
    rf"(?P<sign>-)?\s?(?P<cur>{_SYMBOL}|{_CODE})\s?(?P<sign2>-)?\s?(?P<num>{_NUMBER})",
    re.IGNORECASE,
)
# "40 dollars", "-500 EUR", "2400€"
_AFTER = re.compile(
    rf"(?<![\w.-])(?P<sign>-)?(?P<num>{_NUMBER})\s?(?P<cur>{_SYMBOL}|{_WORD})", re.IGNORECASE
)
# No currency, but plainly an amount: a signed number ("-500"), or one with an exponent ("1e9").
_BARE = re.compile(
    r"(?<![\w.$€£-])(?P<sign>-)(?P<num>\d+(?:\.\d+)?)\b"
    r"|(?<![\w.])(?P<exp>\d+(?:\.\d+)?[eE][+-]?\d+)\b"
)


@dataclass(frozen=True)
class Amount:
    cents: int  # the magnitude
    currency: str  # USD, EUR, GBP, or "?" when the text gives none
    negative: bool
    text: str

    @property
    def usable(self) -> bool:
        """An amount a refund in dollars may take as asked."""
        return self.currency == "USD" and not self.negative and self.cents > 0

    def __str__(self) -> str:
        sign = "-" if self.negative else ""
        return f"{sign}{self.cents / 100:,.2f} {self.currency}"


def _cents(number: str) -> int:
    digits = re.sub(r"[,\u00a0 ]", "", number)
    try:
        return round(float(digits) * 100)
    except OverflowError:  # "1e999": larger than anything a limit allows
        return 10**18


def amounts_in(text: str) -> list[Amount]:
    """Every amount in ``text``, in order of mention; a span is read once."""
    found: list[tuple[int, int, Amount]] = []
    for pattern in (_BEFORE, _AFTER, _BARE):
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < e and s < end for s, e, _ in found):
                continue
            groups = match.groupdict()
            number = groups.get("num") or groups.get("exp") or ""
            currency = _CURRENCIES.get((groups.get("cur") or "").lower(), "?")
            negative = bool(groups.get("sign") or groups.get("sign2"))
            found.append((start, end, Amount(_cents(number), currency, negative, match.group(0))))
    return [amount for _, _, amount in sorted(found, key=lambda f: f[0])]


def named_cents(text: str) -> list[int]:
    """The dollar amounts a refund may take as asked, in cents, in order of mention."""
    return [a.cents for a in amounts_in(text) if a.usable]


def usd(cents: int) -> str:
    return f"${cents / 100:,.2f}"
