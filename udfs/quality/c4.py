"""C4 heuristics (Raffel et al. 2020) as datatrove 0.10's C4QualityFilter applies them: line filter, document rules."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from refinery.udfs.quality.text import count_sentences

CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
END_PUNCTUATION = (".", "?", "!", '"', "'")
POLICY_PHRASES = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")


@dataclass(frozen=True)
class C4LineSettings:
    # C4QualityFilter's line filter. Defaults are FineWeb's run: filter_no_terminal_punct=False, the rest datatrove's.
    remove_citations: bool = True
    filter_no_terminal_punct: bool = False
    min_words_per_line: int = 3  # -1 = off
    max_word_length: int = 1000  # -1 = off
    filter_javascript: bool = True
    filter_policy: bool = True
    # When a document rule is switched off its lines go on through the later checks, as in datatrove.
    filter_lorem_ipsum: bool = True
    filter_curly_bracket: bool = True

    @classmethod
    def from_thresholds(cls, thresholds: Mapping[str, Any] | None) -> C4LineSettings:
        """Line settings from load_filter_thresholds()'s "c4" section (the defaults when None)."""
        if not thresholds:
            return cls()
        c4 = thresholds["c4"]
        rules = c4["rules"]
        return cls(**c4["lines"], filter_lorem_ipsum=rules["c4_lorem_ipsum"]["enabled"],
                   filter_curly_bracket=rules["c4_curly_bracket"]["enabled"])


def c4_signals(text: str, settings: C4LineSettings | None = None) -> dict[str, float]:
    """Sentences in the lines C4 keeps, and the lines that make C4 drop the whole document."""
    kept, lorem, curly, sentences = _filter_lines(text, settings or C4LineSettings(), count=True)
    return {
        "c4_sentences": sentences,
        "c4_kept_lines": len(kept),
        "c4_lorem_ipsum_lines": lorem,
        "c4_curly_bracket_lines": curly,
    }


def c4_filtered_lines(text: str, thresholds: Mapping[str, Any] | None = None) -> str:
    """The text C4 keeps (its line filter), which datatrove writes back into doc.text for the documents it keeps."""
    kept, _, _, _ = _filter_lines(text, C4LineSettings.from_thresholds(thresholds), count=False)
    return "\n".join(kept).strip()


def _filter_lines(text: str, settings: C4LineSettings, count: bool) -> tuple[list[str], int, int, int]:
    # datatrove returns at the first lorem-ipsum or curly-bracket line; we go on, so all reasons can be reported.
    # Such a line drops the document either way, so the keep/drop decision is the same.
    kept: list[str] = []
    lorem = curly = sentences = 0
    max_word, min_words = settings.max_word_length, settings.min_words_per_line
    for line in text.splitlines():
        line = line.strip()
        words = line.split()
        if max_word != -1 and any(len(word) > max_word for word in words):
            continue
        if settings.remove_citations and "[" in line:
            line = CITATION.sub("", line)
        if settings.filter_no_terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith("...")):
            continue
        if len(words) < min_words:
            continue
        lowered = line.lower()
        if settings.filter_lorem_ipsum and "lorem ipsum" in lowered:
            lorem += 1
            continue
        if settings.filter_javascript and "javascript" in lowered:
            continue
        if settings.filter_curly_bracket and "{" in line:
            curly += 1
            continue
        if settings.filter_policy and any(phrase in lowered for phrase in POLICY_PHRASES):
            continue
        if count:
            sentences += count_sentences(line)
        kept.append(line)
    return kept, lorem, curly, sentences
