"""Small text helpers shared by the local model and the verifier."""

from __future__ import annotations

import re

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_AMOUNT = re.compile(r"\$\s?(\d{1,7}(?:,\d{3})*(?:\.\d{1,2})?)")


def split_sentences(text: str, *, min_length: int = 3) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if len(s.strip()) >= min_length]


def amounts_in(text: str) -> list[int]:
    """Dollar amounts mentioned in text, in cents, in order of mention."""
    return [round(float(m.replace(",", "")) * 100) for m in _AMOUNT.findall(text)]
