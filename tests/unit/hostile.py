"""Hostile input for the property tests: text no form should trust, numbers in every
spelling, JSON-like values of any shape, and values near a model's JSON schema (mostly
conforming; now and then a field hostile, missing or extra)."""

from __future__ import annotations

import json
import random
import re
import re._constants as sre
import re._parser
from datetime import UTC
from typing import Any

from hypothesis import strategies as st


def _pick(values: list[Any]) -> st.SearchStrategy[Any]:
    """sampled_from(values), with a short repr: hypothesis prints strategies in its reports."""
    return st.integers(0, len(values) - 1).map(lambda i: values[i])


# Control characters, invisible and direction-changing ones, lone surrogates (which no UTF-8
# encoder takes), combining marks, digits of other scripts, astral emoji.
ODD = [
    *map(chr, [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]),
    *"\u00a0\u200b\u200d\u202e\u2028\u2029\ufeff\ufffd\ud800\udfff\u0301\u0660\u0663\u0967",
    *"\U0001f600\U0001f1fa\U000e0041\u0130\u0131\u00df\ufb01\uff21\uff11",
]
SURROGATE = re.compile("[\ud800-\udfff]")


def _spliced(text: str, odd: str, at: int) -> str:
    return text[:at] + odd + text[at:]


def texts(
    *, min_size: int = 0, max_size: int = 24, encodable: bool = False
) -> st.SearchStrategy[str]:
    """Any text (lone surrogates too, unless ``encodable``: what UTF-8 can carry), and text
    with one of the ODD characters spliced in. (A plain alphabet keeps hypothesis fast: it
    draws such a string in one step, where an alphabet of its own costs a step a character.)"""
    # codec="utf-8": recent hypothesis draws lone surrogates from a bare characters() too.
    every = st.characters(codec="utf-8") if encodable else st.characters(exclude_categories=())
    odd = [c for c in ODD if not (encodable and SURROGATE.match(c))]
    plain = st.text(every, min_size=min_size, max_size=max_size)
    shorter = st.text(every, min_size=max(min_size - 1, 0), max_size=max_size - 1)
    return st.one_of(plain, st.builds(_spliced, shorter, _pick(odd), st.integers(0, max_size)))


# Large strings cost little to build (one piece, repeated) and reach past every max_length.
HUGE = st.builds(
    lambda piece, times: piece * times,
    texts(min_size=1, max_size=3),
    st.integers(min_value=1_000, max_value=40_000),
)
TEXT = st.one_of(texts(), HUGE)

SPELLED = _pick(
    [
        "NaN", "nan", "-Infinity", "inf", "1e999", "-1e999", "1e-999", "0x2A", "0o52", "0b101",
        "1_000", " 42 ", "+42", "-0", "00", "4.", ".5", "4,000", "4 000", "4\u00a0000", "true",
        "\u0664\u0662", "\u096a\u0968", "\uff11\uff12", "\u216b", "1" * 400, "9" * 5_000, "",
    ]
)  # fmt: skip
FORMATS = st.sampled_from(["{}", "{!r}", "{:e}", "{:,}", "{:_}", "{:.2f}", "${:,.2f}", " {} "])
NUMBERS = st.one_of(
    st.integers(),
    _pick([2**31, 2**53 + 1, 2**63, -(2**63) - 1, 2**64, 10**100, -(10**400)]),
    st.floats(),  # nan and the infinities included
    st.booleans(),
    SPELLED,
    st.builds(lambda form, x: form.format(x), FORMATS, st.integers() | st.floats()),
)


class Raw(str):
    """A number as JSON text spells it, written unquoted by ``json_text``."""


# Past what a float holds, past the digits Python converts to an int (4300), or no JSON at all.
RAW = st.one_of(
    st.sampled_from(["1e999", "-1e999", "1e-999", "NaN", "Infinity", "-0", "01", "1.", "+1"]),
    st.builds(lambda digit, times: digit * times, st.sampled_from("19"), st.integers(1, 6_000)),
).map(Raw)
KEYS = st.one_of(st.sampled_from(["a", "tool", "arguments", "order_id", "kind"]), TEXT)
SCALARS = st.one_of(st.none(), NUMBERS, RAW, TEXT)


def _containing(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=2) | st.dictionaries(KEYS, inner, max_size=2)


JSON = st.recursive(SCALARS, _containing, max_leaves=5)


def _nested(opening: str, depth: int, closed: bool) -> str:
    closing = {"[": "]", '{"a":': "}"}[opening]
    return opening * depth + ("1" + closing * depth if closed else "")


# Nesting deeper than any parser's stack.
DEEP = st.builds(_nested, st.sampled_from(["[", '{"a":']), st.integers(1, 20_000), st.booleans())


def json_text(value: Any) -> str:
    """``value`` as JSON text, with each Raw number written as it is spelled."""
    raw: list[str] = []

    def mark(v: Any) -> Any:
        if isinstance(v, Raw):
            raw.append(str(v))
            return f"@raw{len(raw) - 1}@"
        if isinstance(v, dict):
            return {k: mark(x) for k, x in v.items()}
        if isinstance(v, list):
            return [mark(x) for x in v]
        return v

    text = json.dumps(mark(value))
    return re.sub(r'"@raw(\d+)@"', lambda m: raw[int(m.group(1))], text)


INDEX = st.integers(min_value=0)
FORMS = st.sampled_from(["whole", "whole", "whole", "cut", "deep", "text"])


@st.composite
def documents(draw: st.DrawFn, values: st.SearchStrategy[Any]) -> str:
    """JSON text of ``values``, now and then cut short; or nested past any stack; or any text."""
    form = draw(FORMS)
    if form == "deep":
        return draw(DEEP)
    if form == "text":
        return draw(TEXT)
    text = json_text(draw(values))
    return text[: draw(INDEX) % (len(text) + 1)] if form == "cut" else text


def near(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values near pydantic's JSON ``schema`` of a model: mostly conforming; in an object now
    and then one field hostile, one missing or one extra; a list's items hostile one in five."""
    return _conforming(schema, schema.get("$defs", {}))


@st.composite
def _mostly(draw: st.DrawFn, fitting: st.SearchStrategy[Any]) -> Any:
    return draw(SCALARS if draw(st.integers(0, 4)) == 0 else fitting)


def _conforming(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "$ref" in schema:
        return _conforming(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in schema:
        return st.one_of([_conforming(s, defs) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        low = schema.get("minimum", schema.get("exclusiveMinimum", -(2**63) - 1) + 1)
        high = schema.get("maximum", schema.get("exclusiveMaximum", 2**63 + 1) - 1)
        return st.integers(min_value=low, max_value=high)
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        items = _mostly(_conforming(schema.get("items", {}), defs))
        low = schema.get("minItems", 0)
        return st.lists(items, min_size=low, max_size=min(schema.get("maxItems", 2), low + 2))
    if kind == "object":
        return _object(schema, defs)
    return JSON


def _string(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    if "pattern" in schema:
        return matching(schema["pattern"])
    if schema.get("format") == "date-time":
        return st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())
    low, high = schema.get("minLength", 0), schema.get("maxLength", 10_000)
    short = texts(min_size=low, max_size=min(high, low + 24), encodable=True)
    if high < 1_000:
        return short
    return st.one_of(short, HUGE.filter(lambda s: low <= len(s) <= high))


def _object(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    fields = {name: _conforming(sub, defs) for name, sub in schema.get("properties", {}).items()}
    extra = schema.get("additionalProperties", False)
    more = (
        st.dictionaries(
            KEYS, _conforming(extra if isinstance(extra, dict) else {}, defs), max_size=2
        )
        if extra is not False
        else st.just({})
    )
    optional = [name for name in fields if name not in schema.get("required", [])]
    return _shaped(fields, optional, st.integers(0, 2 ** len(optional) - 1), more)


# Which field of an object is made hostile, dropped or added: one draw for all (hypothesis's
# cost is by the draw). Below len(fields): that field is hostile; the next two: one dropped,
# one added; above: none.
FATE = st.integers(min_value=0, max_value=2**16)


@st.composite
def _shaped(
    draw: st.DrawFn,
    fields: dict[str, st.SearchStrategy[Any]],
    optional: list[str],
    present: st.SearchStrategy[int],
    more: st.SearchStrategy[dict[str, Any]],
) -> dict[str, Any]:
    bits = draw(present)
    absent = {name for i, name in enumerate(optional) if not bits >> i & 1}
    fate = draw(FATE) % (3 * len(fields) + 3)
    value = {
        name: draw(SCALARS if i == fate else field)
        for i, (name, field) in enumerate(fields.items())
        if name not in absent
    }
    value |= draw(more)
    if fate == len(fields) and value:
        del value[sorted(value)[draw(INDEX) % len(value)]]
    elif fate == len(fields) + 1:
        value[draw(KEYS)] = draw(JSON)
    return value


# --- strings that match a pattern --------------------------------------------------------

DIGITS = "0123456789\u0660\u0663\u0967\uff11"  # \d matches other scripts' digits too
ENDS = (sre.AT_BEGINNING, sre.AT_BEGINNING_STRING, sre.AT_END, sre.AT_END_STRING)
# A pattern as a tree of: a string (a character from it), a list (each in turn), a tuple
# (one of them), a repeat.
Node = Any


class _Repeat:
    def __init__(self, low: int, high: int, inner: Node) -> None:
        self.low, self.high, self.inner = low, high, inner


def matching(pattern: str) -> st.SearchStrategy[str]:
    """Strings that fully match ``pattern`` (mostly short, now and then long), one drawn seed
    each: st.from_regex takes a step a character, a millisecond a string. It remains the
    fallback for a pattern of more than literals, classes, groups, alternatives, repeats.
    (It reads the pattern with the standard library's own parser, re._parser.)"""
    try:
        tree = _compiled(re._parser.parse(pattern))
    except NotImplementedError:
        return st.from_regex(pattern, fullmatch=True)
    return st.integers(0, 2**32 - 1).map(lambda seed: _walk(tree, random.Random(seed)))


def _compiled(items: Any) -> list[Node]:
    nodes: list[Node] = []
    for op, arg in items:
        if op is sre.LITERAL:
            nodes.append(chr(arg))
        elif op is sre.IN:
            nodes.append("".join(_members(arg)))
        elif op is sre.BRANCH:
            nodes.append(tuple(_compiled(branch) for branch in arg[1]))
        elif op is sre.SUBPATTERN:
            nodes.append(_compiled(arg[-1]))
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            nodes.append(_Repeat(arg[0], arg[1], _compiled(arg[2])))
        elif not (op is sre.AT and arg in ENDS):
            raise NotImplementedError(op)
    return nodes


def _members(items: Any) -> list[str]:
    members = []
    for op, arg in items:
        if op is sre.LITERAL:
            members.append(chr(arg))
        elif op is sre.RANGE:
            members += map(chr, range(arg[0], arg[1] + 1))
        elif op is sre.CATEGORY and arg is sre.CATEGORY_DIGIT:
            members += DIGITS
        else:
            raise NotImplementedError(op)
    return members


def _walk(node: Node, rnd: random.Random) -> str:
    if isinstance(node, str):
        return rnd.choice(node)
    if isinstance(node, list):
        return "".join(_walk(n, rnd) for n in node)
    if isinstance(node, tuple):
        return _walk(rnd.choice(node), rnd)
    longest = node.low + (8 if rnd.random() < 0.9 else 200)
    times = rnd.randint(node.low, min(node.high, longest))
    return "".join(_walk(node.inner, rnd) for _ in range(times))
