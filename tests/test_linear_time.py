"""Every function that runs over document (or model) text takes linear time on adversarial input.

Each generator makes a hostile text of a given size; time(10x size) must stay within 15 x time(1x size). A
quadratic pattern gives ~100x at these sizes. Timings take the best of a few runs (the CI machine is shared) and
a floor keeps sub-millisecond timings from turning noise into a ratio. bench/hostile_text.py has the before/after
figures.
"""

from __future__ import annotations

import time

import pytest

from refinery.udfs.decontaminate import ngrams
from refinery.udfs.dedup import minhash
from refinery.udfs.ingest import extract
from refinery.udfs.quality import c4 as quality_c4
from refinery.udfs.quality import fineweb as quality_fineweb
from refinery.udfs.quality import rules as quality_rules
from refinery.udfs.quality import text as qt
from refinery.udfs.rewrite import postprocess

SCALE, MAX_RATIO, FLOOR_S = 10, 15.0, 0.001


def _cycle(unit: str):
    return lambda n: (unit * (n // len(unit) + 1))[:n]


GENERATORS = {
    "equals_run": _cycle("="),
    "bang_question_run": _cycle("!?"),
    "apostrophe_run": _cycle("'"),
    "dollar_run": _cycle("$"),
    "bracket_run": _cycle("["),
    "backtick_run": _cycle("`"),
    "hash_run": _cycle("#"),
    "dot_run": _cycle("."),
    "quote_dot": _cycle("'."),
    "colon_pairs": _cycle("a:"),
    "repeated_separator": _cycle("-- "),
    "blank_lines": _cycle("\n"),
    "space_run": lambda n: "Answer" + " " * n + "x",
    "one_long_line": _cycle("Some words, then more words; and again. "),
    "no_whitespace": _cycle("abcXYZ019"),
    "email_like_dash": lambda n: _cycle("a-")(n) + "@",
    "email_like_dot": lambda n: _cycle("a.")(n) + "@-",
    "at_run": _cycle("a@"),
    "ip_like": _cycle("1."),
    "ip_like_octets": _cycle("255."),
    "mixed_scripts": _cycle("aб中ع1.ß😀 "),
    "zero_width_rtl": _cycle("a\u200b\u200f\u202eב\u200d"),
    "nul": _cycle("a\x00"),
    "bold_unclosed": _cycle("__a "),
    "rule_column": lambda n: _cycle("-\n")(n) + "x",
    "title_tags": _cycle("<title>"),
}


def _uncached(fn):
    def run(text):  # the tokenizer memoises chunks: each timing starts cold
        qt._chunk_cache.clear()
        return fn(text)
    return run


FUNCTIONS = {
    "split_into_words": (_uncached(qt.split_into_words), 4_000),
    "count_sentences": (_uncached(qt.count_sentences), 4_000),
    "quality_signals": (_uncached(quality_rules.all_quality_signals), 3_000),  # Gopher, FineWeb, C4
    "c4_filtered_lines": (_uncached(quality_c4.c4_filtered_lines), 4_000),
    "anonymize_pii": (quality_fineweb.anonymize_pii, 5_000),
    "minhash_shingles": (minhash.shingles, 5_000),  # simplify_text + word_tokens (the dedup normaliser)
    "ngram_tokens": (lambda t: (ngrams.normalize_tokens(t), ngrams.token_spans(t)), 5_000),  # decontamination
    "remove_markdown": (postprocess.remove_markdown, 5_000),
    "parse_qa_pairs": (postprocess.parse_qa_pairs, 5_000),
    "html_title": (extract._title, 5_000),
}


def _best(fn, text, runs):
    best = float("inf")
    for _ in range(runs):
        start = time.thread_time()
        fn(text)
        best = min(best, time.thread_time() - start)
    return best


@pytest.mark.parametrize("name", FUNCTIONS)
def test_time_grows_linearly_on_hostile_text(name):
    fn, base = FUNCTIONS[name]
    slow = []
    for generator, make in GENERATORS.items():
        small, large = make(base), make(base * SCALE)
        fn(small)  # warm caches and lazy imports
        allowed = MAX_RATIO * max(_best(fn, small, 5), FLOOR_S)
        took = _best(fn, large, 1)
        if took > allowed:  # a second look before calling it superlinear: the machine is shared
            took = min(took, _best(fn, large, 2))
        if took > allowed:
            slow.append(f"{generator}: {took:.3f}s at {base * SCALE} chars, allowed {allowed:.3f}s")
    assert not slow, f"{name} is superlinear on: " + "; ".join(slow)
