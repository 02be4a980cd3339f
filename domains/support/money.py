"""Amounts of money in a customer's words, in cents."""

from __future__ import annotations

import re

_AMOUNT = re.compile(r"\$\s?(\d{1,7}(?:,\d{3})*(?:\.\d{1,2})?)")


def amounts_in(text: str) -> list[int]:
    """Dollar amounts mentioned in text, in cents, in order of mention."""
    return [round(float(m.replace(",", "")) * 100) for m in _AMOUNT.findall(text)]


def usd(cents: int) -> str:
    return f"${cents / 100:,.2f}"
