"""Query text as search terms: the words, their typo corrections and the to_tsquery input.

Pure functions, no database: search.postgres feeds them what search_terms says about each word
(RESOLVE_TERMS in search.postgres_sql) and puts their output into SEARCH (search.postgres_query)
as $n arguments.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from domain.identifiers import SKU

TOKEN = re.compile(r"[^\W_]+")
OPERATORS = re.compile(r'"|(?:^|\s)-\w|(?:^|\s)or(?:\s|$)', re.IGNORECASE)
MAX_TOKENS = 8
MAX_TOKEN_LENGTH = 40


@dataclass(frozen=True)
class Word:
    """One word of the query and what search_terms knows about it."""

    token: str
    known: bool = True
    completions: tuple[str, ...] = ()
    correction: str | None = None


def tokenize(text: str) -> list[str]:
    """The query's words, lower-cased, as search_terms stores them (at most MAX_TOKENS)."""
    return [t[:MAX_TOKEN_LENGTH] for t in TOKEN.findall(text.lower())][:MAX_TOKENS]


def uses_operators(text: str) -> bool:
    """Whether the text uses websearch syntax ("phrase", -word, or), which we then honour."""
    return OPERATORS.search(text) is not None


def sku_of(text: str) -> str | None:
    """The text as a SKU (upper-cased), or None when it cannot be one."""
    candidate = text.strip().upper()
    return candidate if SKU.fullmatch(candidate) else None


def prefix_end(prefix: str) -> str:
    """The smallest string above every string starting with prefix (for `~<~` range scans)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions, transpositions."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[len(b)]


def allowed_edits(token: str) -> int:
    """How many typos a word may carry: none below 4 letters, one up to 7, then two."""
    return 0 if len(token) < 4 else 1 if len(token) < 8 else 2


def closest(token: str, neighbours: Sequence[str]) -> str | None:
    """The neighbour fewest edits away (within allowed_edits), earliest on a tie."""
    best: tuple[int, str] | None = None
    for term in neighbours:
        distance = edit_distance(token, term)
        if 0 < distance <= allowed_edits(token) and (best is None or distance < best[0]):
            best = (distance, term)
    return None if best is None else best[1]


def _lexeme(word: str, *, prefix: bool = False, weight: str = "") -> str:
    quoted = "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"
    suffix = ("*" if prefix else "") + weight
    return f"{quoted}:{suffix}" if suffix else quoted


def tsquery_text(words: Sequence[Word], *, corrected: bool, weight: str = "") -> str:
    """to_tsquery input: every word (or a completion or, if corrected, its correction), the
    last one as a prefix; weight 'A' restricts the match to names."""
    groups = []
    for position, word in enumerate(words):
        alternatives = [_lexeme(word.token, prefix=position == len(words) - 1, weight=weight)]
        alternatives += [_lexeme(term, weight=weight) for term in word.completions]
        if corrected and word.correction is not None:
            alternatives.append(_lexeme(word.correction, weight=weight))
        groups.append("(" + " | ".join(alternatives) + ")")
    return " & ".join(groups)


def did_you_mean(words: Sequence[Word]) -> str | None:
    """The query with each correction applied, or None when nothing was corrected."""
    if all(word.correction is None for word in words):
        return None
    return " ".join(word.correction or word.token for word in words)
