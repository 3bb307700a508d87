"""Finding a model's quote in a document's text, as a reader would: despite typography.

PDF text differs from what a model copies out of it in ways that do not change the words:
compatibility characters (ligatures such as "ﬁ", full-width forms), curly quotes and dashes,
soft hyphens, words hyphenated at line ends, and runs of white space and line breaks. Both sides
are normalised the same way, and every normalised character remembers the offset it came from, so
a match gives offsets in the original text (and so its page or section). Letters, digits and case
must match: a quote is verbatim or it is not found.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

_TYPOGRAPHY = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2015": "-",
        "\u2212": "-",
        # pdfium marks a hyphen it found at a line end with U+0002 or U+FFFE (and joins the lines):
        # "cost\ufffeeffective" and "PE\ufffe5" are "cost-effective" and "PE-5".
        "\x02": "-",
        "\ufffe": "-",
        "\u00ad": "",
        "\u200b": "",
    }
)


@dataclass(frozen=True)
class Span:
    start: int
    end: int


class SearchableText:
    """A text normalised once, to find many quotes in it (a document's reduce step)."""

    def __init__(self, text: str):
        self.text = text
        self._normalized, self._origins = _normalize(text)

    def find(self, quote: str, start: int = 0) -> Span | None:
        """The first occurrence of the quote at or after offset `start` of the original text."""
        needle, _ = _normalize(quote)
        needle = needle.strip()
        if not needle:
            return None
        begin = bisect_left_origin(self._origins, start)
        found = self._normalized.find(needle, begin)
        if found < 0:
            return None
        return Span(self._origins[found], self._origins[found + len(needle) - 1] + 1)


def find_quote(quote: str, text: str) -> Span | None:
    return SearchableText(text).find(quote)


def normalize(text: str) -> str:
    """The form both sides are compared in (for keys, such as duplicates across chunks)."""
    return _normalize(text)[0].strip()


def bisect_left_origin(origins: list[int], offset: int) -> int:
    low, high = 0, len(origins)
    while low < high:
        middle = (low + high) // 2
        if origins[middle] < offset:
            low = middle + 1
        else:
            high = middle
    return low


def _normalize(text: str) -> tuple[str, list[int]]:
    chars: list[str] = []
    origins: list[int] = []
    pending_space = -1  # offset of the first white space of a run not yet written
    for offset, raw in enumerate(text):
        piece = raw if " " <= raw <= "~" else unicodedata.normalize("NFKC", raw).translate(_TYPOGRAPHY)
        for char in piece:
            if char.isspace():
                if pending_space < 0:
                    pending_space = offset
                continue
            if pending_space >= 0:
                if _joins_hyphenated_word(chars, char):
                    # "imple-\nment" reads "implement"; "risk-\nbased" and "risk-based" both
                    # read "riskbased" on both sides, so either way a quote finds it.
                    chars.pop()
                    origins.pop()
                elif chars:
                    chars.append(" ")
                    origins.append(pending_space)
                pending_space = -1
            elif char.isalpha() and len(chars) >= 2 and chars[-1] == "-" and chars[-2].isalpha():
                chars.pop()
                origins.pop()
            chars.append(char)
            origins.append(offset)
    return "".join(chars), origins


def _joins_hyphenated_word(chars: list[str], following: str) -> bool:
    return following.isalpha() and len(chars) >= 2 and chars[-1] == "-" and chars[-2].isalpha()
