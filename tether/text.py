"""Small text helpers shared by the local model and the verifier."""

from __future__ import annotations

import re

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str, *, min_length: int = 3) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if len(s.strip()) >= min_length]


def first_sentence(text: str) -> str:
    sentences = split_sentences(text)
    return sentences[0] if sentences else text
