"""Small text helpers: sentences (the local model, the verifier), and text from data made fit
to show (the report's page, the incident timeline's lines)."""

from __future__ import annotations

import re
import unicodedata

from tether.lookalikes import LOOK_ALIKES, PROTOTYPES

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
# Where a claim ends in text that is checked claim by claim: a sentence end, with or without
# a space after it ("...in 5 days.It was paid..."), a semicolon, a line break, or another
# script's full stop. Two claims glued into one sentence would share one score.
_CLAIM_END = re.compile(
    r"(?<=[.!?])\s+|(?<=[a-z0-9)\]][.!?])(?=[A-Z])|[;\n\r\u2028\u2029\u3002\uff01\uff1f\uff1b]+\s*"
)
# Line and paragraph separators: shown as a space, like the controls that are whitespace
# (tab, newline...), since a line or a column would break at them.
_BREAKS = frozenset({"Zl", "Zp"})
# Control, format (direction overrides, zero-width) and surrogate characters: dropped.
_HIDDEN = frozenset({"Cc", "Cf", "Cs"})


def hidden(text: str, allowed: str = "") -> list[str]:
    """The control, format and surrogate characters in ``text`` (but ``allowed``), sorted: a
    terminal obeys them, and a name holding one is not the name it shows."""
    return sorted({c for c in text if unicodedata.category(c) in _HIDDEN and c not in allowed})


def visible(text: str, kept: str = "\n\t") -> str:
    """``text`` with each control, format or surrogate character (but ``kept``) written as
    its escape (``\\x1b``, ``\\u202e``): shown, never obeyed by a terminal."""
    if not any(unicodedata.category(c) in _HIDDEN for c in text):
        return text
    return "".join(
        c
        if c in kept or unicodedata.category(c) not in _HIDDEN
        else (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
        for c in text
    )


def split_sentences(text: str, *, min_length: int = 3) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if len(s.strip()) >= min_length]


# One apostrophe, and Latin for what a reader takes for it ("paid" with a Cyrillic a): what a
# pattern reads is what a reader sees. Unicode's confusables (tether/lookalikes.py) map the
# letters that look like a capital I to "l", as a skeleton does; Greek and Cyrillic capital I
# are read as the I they are written for.
_READ_AS_I = {"\u0399": "I", "\u0406": "I"}
_AS_SEEN = str.maketrans(
    {"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2032": "'"}
    | dict(zip(LOOK_ALIKES, PROTOTYPES, strict=True))
    | _READ_AS_I
)


# Every way to break a line, and the blanks around it: one line break.
_LINE_BREAK = re.compile(r"\s*[\n\r\x0b\x0c\x85\u2028\u2029]\s*")
_BLANKS = re.compile(r"[^\S\n]+")


def said(text: str) -> str:
    """Text as a reader takes it, for checks of what it says: compatibility forms folded
    (full-width, ligatures), one apostrophe, Latin for its look-alikes, no invisible
    characters (a soft hyphen, a zero-width space) to hide a word from a pattern, one space
    for any run of blanks and one line break for any run of breaks (a pattern's ``\\s`` reads
    across it: a line break does not cut a claim in two; ``asserted`` ends a clause there)."""
    folded = unicodedata.normalize("NFKC", text).translate(_AS_SEEN)
    shown = "".join(c for c in folded if unicodedata.category(c) != "Cf")
    return _BLANKS.sub(" ", _LINE_BREAK.sub("\n", shown)).strip()


# Where a clause begins: a negation or a question is its own clause's, not a neighbour's
# ("Sorry it didn't arrive, so we have sent it" says it was sent). A colon does not end
# one ("your parcel: it has been sent"), nor a comma inside a number ("$5,000.00").
_CLAUSE_BREAK = re.compile(
    r"[,;](?=\s|$)|[\n\u2014]|\b(?:but|so|and|however|although|though|while|whereas|once|when|after"
    r"|because|since|if|unless)\b",
    re.IGNORECASE,
)
# Not a bare "no": "No worries we have sent it" says it was sent (a pack's own patterns
# refuse "no <thing>").
_NEGATION = re.compile(r"\b(?:not|never|none|cannot|no longer)\b|n't\b", re.I)
_STOP = re.compile(r"[.!?](?=\s|$)|\n")  # not the point in "$5,000.00"


def clause(text: str, start: int, end: int) -> tuple[int, int]:
    """Where the clause holding ``text[start:end]`` begins and ends."""
    begin = max((m.end() for m in _CLAUSE_BREAK.finditer(text, 0, start)), default=0)
    after = _CLAUSE_BREAK.search(text, end)
    stop = _STOP.search(text, end)
    ends = [m.start() for m in (after, stop) if m is not None]
    return begin, min(ends, default=len(text))


def negated(text: str, start: int, end: int) -> bool:
    """Whether a negation in its clause comes before ``text[start:end]`` ends ("do not
    restart it", "it wasn't sent"; not "it is slow, restart it")."""
    begin, _ = clause(text, start, end)
    return _NEGATION.search(text, begin, end) is not None


def asserted(text: str, start: int, end: int) -> bool:
    """Whether what ``text[start:end]`` says is asserted: no negation in its clause up to its
    end, and the sentence it is in, up to its stop or line break, is not a question."""
    return not negated(text, start, end) and not questioned(text, end)


def questioned(text: str, end: int) -> bool:
    """Whether the sentence holding ``text[:end]``'s end, up to its stop or line break, is a
    question."""
    stop = _STOP.search(text, end)
    return stop is not None and stop.group() == "?"


def own_sentences(text: str, sources: list[str], *, min_length: int = 3) -> list[str]:
    """The sentences of ``text`` (read by ``said``) that are not copied from one of
    ``sources`` (texts read by ``said`` too): a copy is the source's word, however it wraps
    its lines."""
    flat = [" ".join(source.split()) for source in sources]
    return [
        s
        for s in split_sentences(said(text), min_length=min_length)
        if not any(" ".join(s.split()) in source for source in flat)
    ]


def split_claims(text: str, *, min_length: int = 3) -> list[str]:
    """``text`` cut wherever one claim may end and another begin (see ``_CLAIM_END``)."""
    return [s.strip() for s in _CLAIM_END.split(text) if len(s.strip()) >= min_length]


def first_sentence(text: str) -> str:
    sentences = split_sentences(text)
    return sentences[0] if sentences else text


def clean(text: str, limit: int = 60) -> str:
    """Text from data, fit for any page or line: no control, format or surrogate characters
    (XML takes none of them, UTF-8 no surrogate, a terminal obeys escapes), a space for each
    tab or line break, at most ``limit`` characters. Still to be escaped for HTML."""
    kept = []
    for c in text:
        kind = unicodedata.category(c)
        if c.isspace() and (kind in _BREAKS or kind in _HIDDEN):
            kept.append(" ")
        elif kind not in _HIDDEN:
            kept.append(c)
    shown = "".join(kept)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"
