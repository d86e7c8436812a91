"""English text normalisation for WER, equivalent to Whisper's ``EnglishTextNormalizer``.

Both sides of a WER comparison go through :func:`normalize_english` so that the score
counts recognition errors, not style: "Mr. Smith's 25 colours" and "mister smith is
twenty five colors" normalise to the same words.

The rules follow openai/whisper's ``whisper/normalizers/english.py`` (MIT licence),
step for step: lower case; drop ``[...]``, ``<...>`` and ``(...)``; drop fillers
(hmm, mm, mhm, mmm, uh, um); expand contractions and titles; spell numbers, currencies
and percentages with digits ("twenty five dollars" -> "$25"); American spellings
(``data/english_spellings.json``, Whisper's table); drop remaining punctuation and
symbols. Like Whisper, "one" stays a word and "'s" always becomes " is".
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from fractions import Fraction
from functools import cache
from importlib import resources

__all__ = ["normalize_english", "normalize_numbers", "remove_symbols_and_diacritics"]

# Non-ASCII letters that NFKD does not split into a base letter and a mark.
_EXTRA_DIACRITICS = {
    "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "ß": "ss", "ẞ": "SS",
    "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th", "Þ": "th", "ł": "l", "Ł": "L",
}  # fmt: skip

_FILLERS = r"\b(hmm|mm|mhm|mmm|uh|um)\b"

# Order matters: specific forms before the general suffix rules.
_CONTRACTIONS: tuple[tuple[str, str], ...] = (
    (r"\bwon't\b", "will not"),
    (r"\bcan't\b", "can not"),
    (r"\blet's\b", "let us"),
    (r"\bain't\b", "aint"),
    (r"\by'all\b", "you all"),
    (r"\bwanna\b", "want to"),
    (r"\bgotta\b", "got to"),
    (r"\bgonna\b", "going to"),
    (r"\bi'ma\b", "i am going to"),
    (r"\bimma\b", "i am going to"),
    (r"\bwoulda\b", "would have"),
    (r"\bcoulda\b", "could have"),
    (r"\bshoulda\b", "should have"),
    (r"\bma'am\b", "madam"),
    # titles and abbreviations
    (r"\bmr\b", "mister "),
    (r"\bmrs\b", "missus "),
    (r"\bst\b", "saint "),
    (r"\bdr\b", "doctor "),
    (r"\bprof\b", "professor "),
    (r"\bcapt\b", "captain "),
    (r"\bgov\b", "governor "),
    (r"\bald\b", "alderman "),
    (r"\bgen\b", "general "),
    (r"\bsen\b", "senator "),
    (r"\brep\b", "representative "),
    (r"\bpres\b", "president "),
    (r"\brev\b", "reverend "),
    (r"\bhon\b", "honorable "),
    (r"\basst\b", "assistant "),
    (r"\bassoc\b", "associate "),
    (r"\blt\b", "lieutenant "),
    (r"\bcol\b", "colonel "),
    (r"\bjr\b", "junior "),
    (r"\bsr\b", "senior "),
    (r"\besq\b", "esquire "),
    # perfect tenses ("'s done" is ambiguous, so left to the general rule)
    (r"'d been\b", " had been"),
    (r"'s been\b", " has been"),
    (r"'d gone\b", " had gone"),
    (r"'s gone\b", " has gone"),
    (r"'d done\b", " had done"),
    (r"'s got\b", " has got"),
    # general suffixes
    (r"n't\b", " not"),
    (r"'re\b", " are"),
    (r"'s\b", " is"),
    (r"'d\b", " would"),
    (r"'ll\b", " will"),
    (r"'t\b", " not"),
    (r"'ve\b", " have"),
    (r"'m\b", " am"),
)
_CONTRACTIONS_RE = tuple((re.compile(p), r) for p, r in _CONTRACTIONS)


def remove_symbols_and_diacritics(text: str, keep: str = "") -> str:
    """Replace marks, symbols and punctuation (Unicode M*, S*, P*) with a space and drop diacritics."""

    def one(c: str) -> str:
        if c in keep:
            return c
        if c in _EXTRA_DIACRITICS:
            return _EXTRA_DIACRITICS[c]
        category = unicodedata.category(c)
        if category == "Mn":
            return ""
        return " " if category[0] in "MSP" else c

    return "".join(one(c) for c in unicodedata.normalize("NFKD", text))


@cache
def _spellings() -> dict[str, str]:
    path = resources.files("saywho").joinpath("data/english_spellings.json")
    return json.loads(path.read_text(encoding="utf-8"))


def normalize_english(text: str) -> str:
    """Normalise English text the way Whisper's ``EnglishTextNormalizer`` does.

    >>> normalize_english("Mr. Smith's twenty-five colours, um, cost $1,000!")
    'mister smith is 25 colors cost $1000'
    """
    s = text.lower()
    s = re.sub(r"[<\[][^>\]]*[>\]]", "", s)  # [noise], <unk>
    s = re.sub(r"\(([^)]+?)\)", "", s)  # (laughs)
    s = re.sub(_FILLERS, "", s)
    s = re.sub(r"\s+'", "'", s)  # "don 't" -> "don't"
    for pattern, replacement in _CONTRACTIONS_RE:
        s = pattern.sub(replacement, s)
    s = re.sub(r"(\d),(\d)", r"\1\2", s)  # 1,000 -> 1000
    s = re.sub(r"\.([^0-9]|$)", r" \1", s)  # periods, but not decimal points
    s = remove_symbols_and_diacritics(s, keep=".%$¢€£")
    s = normalize_numbers(s)
    spellings = _spellings()
    s = " ".join(spellings.get(word, word) for word in s.split())
    # symbols left over that are not attached to a number
    s = re.sub(r"[.$¢€£]([^0-9])", r" \1", s)
    s = re.sub(r"([^0-9])%", r"\1 ", s)
    return re.sub(r"\s+", " ", s).strip()


# --- numbers ------------------------------------------------------------------------------


class _NumberWords:
    """The vocabulary of spelled-out numbers, built once."""

    def __init__(self) -> None:
        ones_names = [
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
        ]
        self.zeros = {"o", "oh", "zero"}
        self.ones = {name: i for i, name in enumerate(ones_names, start=1)}
        ones_plural = {("sixes" if n == "six" else n + "s"): (v, "s") for n, v in self.ones.items()}
        ones_ordinal = {
            "zeroth": (0, "th"), "first": (1, "st"), "second": (2, "nd"), "third": (3, "rd"),
            "fifth": (5, "th"), "twelfth": (12, "th"),
            **{
                n + ("h" if n.endswith("t") else "th"): (v, "th")
                for n, v in self.ones.items()
                if v > 3 and v not in (5, 12)
            },
        }  # fmt: skip
        self.ones_suffixed = {**ones_plural, **ones_ordinal}
        tens_names = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
        self.tens = {name: 10 * i for i, name in enumerate(tens_names, start=2)}
        self.tens_suffixed = {
            **{n.replace("y", "ies"): (v, "s") for n, v in self.tens.items()},
            **{n.replace("y", "ieth"): (v, "th") for n, v in self.tens.items()},
        }
        multiplier_names = [
            "hundred",
            "thousand",
            "million",
            "billion",
            "trillion",
            "quadrillion",
            "quintillion",
            "sextillion",
            "septillion",
            "octillion",
            "nonillion",
            "decillion",
        ]
        self.multipliers = {"hundred": 100, **{n: 1000**i for i, n in enumerate(multiplier_names[1:], 1)}}
        self.multipliers_suffixed = {
            **{n + "s": (v, "s") for n, v in self.multipliers.items()},
            **{n + "th": (v, "th") for n, v in self.multipliers.items()},
        }
        self.decimals = {*self.ones, *self.tens, *self.zeros}
        self.preceding_prefixers = {"minus": "-", "negative": "-", "plus": "+", "positive": "+"}
        self.following_prefixers = {
            "pound": "£", "pounds": "£", "euro": "€", "euros": "€",
            "dollar": "$", "dollars": "$", "cent": "¢", "cents": "¢",
        }  # fmt: skip
        self.prefixes = set(self.preceding_prefixers.values()) | set(self.following_prefixers.values())
        self.suffixers: dict[str, str | dict[str, str]] = {"per": {"cent": "%"}, "percent": "%"}
        self.specials = {"and", "double", "triple", "point"}
        self.words = {
            *self.zeros, *self.ones, *self.ones_suffixed, *self.tens, *self.tens_suffixed,
            *self.multipliers, *self.multipliers_suffixed, *self.preceding_prefixers,
            *self.following_prefixers, *self.suffixers, *self.specials,
        }  # fmt: skip


_NUMERIC = re.compile(r"^\d+(\.\d+)?$")


def _fraction(s: str | int) -> Fraction | None:
    try:
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None


def _join_ones(value: int | str, ones: int, prev: str | None, w: _NumberWords) -> int | str:
    """``value`` followed by a ones word ("twenty" + "five" -> 25, "nineteen" + "five" -> "195")."""
    if isinstance(value, str) or prev in w.ones:
        if prev in w.tens and ones < 10:
            text = str(value)
            return text[:-1] + str(ones) if text.endswith("0") else text + str(ones)
        return str(value) + str(ones)
    if ones < 10:
        return value + ones if value % 10 == 0 else str(value) + str(ones)
    return value + ones if value % 100 == 0 else str(value) + str(ones)


def _number_tokens(tokens: list[str], w: _NumberWords) -> Iterator[str]:
    """Rewrite a token stream, turning runs of number words into digits."""
    prefix: str | None = None
    value: int | str | None = None
    skip = False

    def output(result: int | str) -> str:
        nonlocal prefix, value
        text = str(result)
        if prefix is not None:
            text = prefix + text
        value = None
        prefix = None
        return text

    padded: list[str | None] = [None, *tokens, None]
    for i in range(1, len(padded) - 1):
        prev, current, nxt = padded[i - 1], padded[i], padded[i + 1]
        assert current is not None
        if skip:
            skip = False
            continue
        next_is_numeric = nxt is not None and _NUMERIC.match(nxt) is not None
        has_prefix = current[0] in w.prefixes
        bare = current[1:] if has_prefix else current

        if _NUMERIC.match(bare):  # digits, possibly with a currency/sign prefix
            f = _fraction(bare)
            assert f is not None
            if value is not None:
                if isinstance(value, str) and value.endswith("."):
                    value = value + current  # decimals, "one point 5"
                    continue
                yield output(value)
            prefix = current[0] if has_prefix else prefix
            value = f.numerator if f.denominator == 1 else bare
        elif current not in w.words:
            if value is not None:
                yield output(value)
            yield output(current)
        elif current in w.zeros:
            value = str(value or "") + "0"
        elif current in w.ones:
            ones = w.ones[current]
            value = ones if value is None else _join_ones(value, ones, prev, w)
        elif current in w.ones_suffixed:  # ordinal or plural: the number ends here
            ones, suffix = w.ones_suffixed[current]
            number = ones if value is None else _join_ones(value, ones, prev, w)
            yield output(str(number) + suffix)
        elif current in w.tens:
            tens = w.tens[current]
            if value is None:
                value = tens
            elif isinstance(value, str) or value % 100 != 0:
                value = str(value) + str(tens)
            else:
                value += tens
        elif current in w.tens_suffixed:
            tens, suffix = w.tens_suffixed[current]
            if value is None:
                yield output(str(tens) + suffix)
            elif isinstance(value, str) or value % 100 != 0:
                yield output(str(value) + str(tens) + suffix)
            else:
                yield output(str(value + tens) + suffix)
        elif current in w.multipliers:
            multiplier = w.multipliers[current]
            if value is None:
                value = multiplier
            elif isinstance(value, str) or value == 0:
                f = _fraction(value)
                product = f * multiplier if f is not None else None
                if product is not None and product.denominator == 1:
                    value = product.numerator
                else:
                    yield output(value)
                    value = multiplier
            else:
                value = value // 1000 * 1000 + value % 1000 * multiplier
        elif current in w.multipliers_suffixed:
            multiplier, suffix = w.multipliers_suffixed[current]
            if value is None:
                yield output(str(multiplier) + suffix)
            elif isinstance(value, str):
                f = _fraction(value)
                product = f * multiplier if f is not None else None
                if product is not None and product.denominator == 1:
                    yield output(str(product.numerator) + suffix)
                else:
                    yield output(value)
                    yield output(str(multiplier) + suffix)
            else:
                value = value // 1000 * 1000 + value % 1000 * multiplier
                yield output(str(value) + suffix)
            value = None
        elif current in w.preceding_prefixers:  # minus, plus: only before a number
            if value is not None:
                yield output(value)
            if nxt in w.words or next_is_numeric:
                prefix = w.preceding_prefixers[current]
            else:
                yield output(current)
        elif current in w.following_prefixers:  # dollars, cents: only after a number
            if value is not None:
                prefix = w.following_prefixers[current]
                yield output(value)
            else:
                yield output(current)
        elif current in w.suffixers:  # percent, per cent
            if value is None:
                yield output(current)
                continue
            symbol = w.suffixers[current]
            if isinstance(symbol, dict):
                if nxt is not None and nxt in symbol:
                    yield output(str(value) + symbol[nxt])
                    skip = True
                else:
                    yield output(value)
                    yield output(current)
            else:
                yield output(str(value) + symbol)
        else:  # specials: and, double, triple, point
            if nxt not in w.words and not next_is_numeric:
                if value is not None:
                    yield output(value)
                yield output(current)
            elif current == "and":
                if prev not in w.multipliers:  # "one hundred and five" keeps going
                    if value is not None:
                        yield output(value)
                    yield output(current)
            elif current in ("double", "triple"):
                if nxt in w.ones or nxt in w.zeros:
                    repeats = 2 if current == "double" else 3
                    digit = w.ones.get(nxt or "", 0)
                    value = str(value or "") + str(digit) * repeats
                    skip = True
                else:
                    if value is not None:
                        yield output(value)
                    yield output(current)
            elif current == "point" and (nxt in w.decimals or next_is_numeric):
                value = str(value or "") + "."
    if value is not None:
        yield output(value)


@cache
def _number_words() -> _NumberWords:
    return _NumberWords()


def _half_to_point_five(s: str, w: _NumberWords) -> str:
    """ "two and a half" -> "two point five" (only after a number word)."""
    parts = re.split(r"\band\s+a\s+half\b", s)
    out: list[str] = []
    for i, part in enumerate(parts):
        if not part.strip():
            continue
        out.append(part)
        if i < len(parts) - 1:
            last = part.rsplit(maxsplit=2)[-1]
            out.append("point five" if last in w.decimals or last in w.multipliers else "and a half")
    return " ".join(out)


def _combine_cents(m: re.Match[str]) -> str:
    return f"{m.group(1)}{m.group(2)}.{int(m.group(3)):02d}"


def normalize_numbers(text: str) -> str:
    """Spelled-out numbers to digits ("two thousand and five" -> "2005", "ten percent" -> "10%").

    Expects lower-case text with punctuation already removed (as inside :func:`normalize_english`).
    """
    w = _number_words()
    s = _half_to_point_five(text, w)
    s = re.sub(r"([a-z])([0-9])", r"\1 \2", s)  # letter/number boundaries
    s = re.sub(r"([0-9])([a-z])", r"\1 \2", s)
    s = re.sub(r"([0-9])\s+(st|nd|rd|th|s)\b", r"\1\2", s)  # ...but keep 21st, 1990s
    s = " ".join(_number_tokens(s.split(), w))
    s = re.sub(r"([€£$])([0-9]+) (?:and )?¢([0-9]{1,2})\b", _combine_cents, s)  # "$2 and ¢7" -> "$2.07"
    s = re.sub(r"[€£$]0\.([0-9]{1,2})\b", lambda m: f"¢{int(m.group(1))}", s)
    return re.sub(r"\b1(s?)\b", r"one\1", s)  # Whisper writes "one(s)", not "1(s)"
