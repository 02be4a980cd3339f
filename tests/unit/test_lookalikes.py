"""tether/lookalikes.py is Unicode's confusables data, not a hand-kept list: derived again from
the data here, it must be the same table."""

from __future__ import annotations

import json
import unicodedata
from importlib.resources import files

from tether.lookalikes import LOOK_ALIKES, PROTOTYPES
from tether.text import said


def derived() -> dict[str, str]:
    """Every single character, not a number, whose one ASCII letter look-alike the data
    names, and that NFKC leaves alone (the full-width and mathematical forms are NFKC's)."""
    data = json.loads(
        (files("confusable_homoglyphs") / "confusables.json").read_text(encoding="utf-8")
    )
    table = {}
    for char, glyphs in data.items():
        if len(char) != 1 or char.isascii() or unicodedata.normalize("NFKC", char) != char:
            continue
        if unicodedata.category(char) in ("Nd", "Nl", "No"):  # a number reads as one
            continue
        latin = {g["c"] for g in glyphs if len(g["c"]) == 1 and g["c"].isascii()}
        latin = {c for c in latin if c.isalpha()}
        if len(latin) == 1:
            table[char] = latin.pop()
    return dict(sorted(table.items()))


def test_the_table_is_the_data() -> None:
    table = derived()
    assert dict(zip(LOOK_ALIKES, PROTOTYPES, strict=True)) == table, (
        "regenerate tether/lookalikes.py from derived(): "
        + repr(("".join(table), "".join(table.values())))
    )


def test_what_a_reader_sees_is_what_is_read() -> None:
    assert said("\u13a1\u0435fun\ua4d2\u0435\u0501") == "Refunded"  # Cherokee, Cyrillic, Lisu
    assert said("\u0399ssued, \u0406ssued, pa\u0131d") == "Issued, Issued, paid"
    # What the data does not name stays as it is: a reply in Russian is not rewritten whole.
    assert said("\u0434\u0430") == "\u0434a"
    # Digits stay the numbers they are (Devanagari 100, Bengali 40, Persian 150), and a
    # letter is never read as a digit (a Cyrillic Ze, be).
    assert said("\u0967\u0966\u0966 \u09ea\u09e6 \u06f1\u06f5\u06f0") == (
        "\u0967\u0966\u0966 \u09ea\u09e6 \u06f1\u06f5\u06f0"
    )
    assert said("\u0417\u0431") == "\u0417\u0431"
