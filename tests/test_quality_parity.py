"""Our quality decisions side by side with datatrove's four filters on real documents.

Protocol: each datatrove filter (default arguments; C4 with filter_no_terminal_punct=False, as FineWeb ran it) gets
its own Document holding the original text, and so do our signals. In a datatrove pipeline C4QualityFilter also
rewrites doc.text to the lines it keeps before FineWebQualityFilter runs; our decision is document-level over the
original text (c4_filtered_lines() gives C4's rewrite separately), so each filter is compared on the same input.
A document is "dropped" when any of the four filters drops it, and we compare that keep/drop.

Remaining differences: none on these corpora (every filter's decision agrees on all documents here, and when
datatrove drops a document its reason is among ours). Where they could still differ, outside these data:
- spaCy's special-case matcher filters overlapping matches over the whole document; we apply it per whitespace
  chunk, so a no-op match spanning two chunks cannot block a real one as it can in spaCy (needs emoticon-like
  special cases split across a space next to one that is not; not seen in any of the documents here).
- Signals of an empty document are 0 where datatrove would divide by zero; it never gets that far with the default
  rules ("empty" / "gopher_short_doc" come first), so only a rule set with those switched off can notice.
"""

from __future__ import annotations

import gzip
import inspect
import json
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("datatrove")
# datatrove's English word tokenizer is spacy.blank("en") (no model download, so it runs offline once installed)
pytest.importorskip("spacy")

from refinery.udfs.ingest.warc import FileOutcome, IngestSettings, read_warc_documents  # noqa: E402
from refinery.udfs.quality.c4 import c4_filtered_lines  # noqa: E402
from refinery.udfs.quality.fineweb import anonymize_pii  # noqa: E402
from refinery.udfs.quality.rules import (  # noqa: E402
    DATATROVE_REASONS,
    RULE_SIGNALS,
    all_quality_signals,
    load_filter_thresholds,
    quality_drop_reasons,
)

from .conftest import SAMPLE  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GOLD_WARC = SHARED_DATA / "warc" / "built_from_gold_pages.warc.gz"
REUTERS = SHARED_DATA / "corpus" / "reuters21578.jsonl.gz"
REUTERS_STEP = 20  # every 20th story keeps the test under a minute: datatrove's C4 runs spaCy line by line
MIN_AGREEMENT = 0.99


@pytest.fixture(scope="module")
def datatrove_filters() -> dict:
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    # FineWeb runs before C4 here so that it reuses datatrove's cached words of the same text; C4's sentence
    # splitting of every line pushes them out of that small cache.
    return {
        "gopher_repetition": GopherRepetitionFilter(),
        "gopher_quality": GopherQualityFilter(),
        "fineweb": FineWebQualityFilter(),
        "c4": C4QualityFilter(filter_no_terminal_punct=False),
    }


@pytest.fixture(scope="module")
def sample_texts() -> list[str]:
    return _warc_texts(sorted(SAMPLE.glob("*.warc*")))


def _warc_texts(paths: list[Path]) -> list[str]:
    settings = IngestSettings(extractor="resiliparse")
    return [doc["text"] for path in paths for doc in read_warc_documents(str(path), settings, FileOutcome(str(path)))]


def _datatrove_reasons(text: str, filters: dict) -> dict[str, str | None]:
    from datatrove.data import Document

    reasons = {}
    for name, datatrove_filter in filters.items():
        result = datatrove_filter.filter(Document(text=text, id="parity"))
        reasons[name] = None if result is True else result[1]
    return reasons


def _assert_parity(corpus: str, texts: list[str], filters: dict) -> None:
    agree, per_filter, reason_found, disagreements = 0, Counter(), Counter(), []
    for i, text in enumerate(texts):
        ours = quality_drop_reasons(all_quality_signals(text))
        theirs = _datatrove_reasons(text, filters)
        agree += bool(ours) == any(theirs.values())
        for name, reason in theirs.items():
            mine = [r for r in ours if r in RULE_SIGNALS[name]]
            per_filter[name] += bool(mine) == (reason is not None)
            reason_found[name] += reason is None or reason in {DATATROVE_REASONS.get(r, r) for r in mine}
            if bool(mine) != (reason is not None):
                disagreements.append(f"{corpus} doc {i} {name}: datatrove {reason or 'keeps'}, ours {mine or 'keep'}"
                                     f" | {text[:80]!r}")
    n = len(texts)
    print(f"\n{corpus}: {n} docs, keep/drop agreement {agree / n:.4f}; per filter "
          + ", ".join(f"{name} {per_filter[name] / n:.4f}" for name in filters)
          + "; datatrove's reason among ours " + ", ".join(f"{name} {reason_found[name] / n:.4f}" for name in filters))
    print("\n".join(disagreements[:50]))
    assert agree / n >= MIN_AGREEMENT
    for name in filters:
        assert per_filter[name] / n >= MIN_AGREEMENT, name


def test_sample_warc_documents_get_datatrove_decisions(sample_texts, datatrove_filters):
    _assert_parity("sample WARCs", sample_texts, datatrove_filters)


@pytest.mark.skipif(not GOLD_WARC.exists(), reason="shared/data is not beside this checkout")
def test_gold_page_documents_get_datatrove_decisions(datatrove_filters):
    _assert_parity("gold pages", _warc_texts([GOLD_WARC]), datatrove_filters)


@pytest.mark.skipif(not REUTERS.exists(), reason="shared/data is not beside this checkout")
def test_reuters_stories_get_datatrove_decisions(datatrove_filters):
    with gzip.open(REUTERS, "rt") as lines:
        texts = [text for row in map(json.loads, lines) if (text := row["text"])]
    _assert_parity(f"Reuters-21578 (every {REUTERS_STEP}th)", texts[::REUTERS_STEP], datatrove_filters)


def test_c4_kept_text_is_the_text_datatrove_writes_back(sample_texts, datatrove_filters):
    from datatrove.data import Document

    kept = 0
    for text in sample_texts:
        doc = Document(text=text, id="parity")
        if datatrove_filters["c4"].filter(doc) is True:
            kept += 1
            assert c4_filtered_lines(text) == doc.text
    assert kept > 100


def test_pii_anonymisation_matches_datatrove_pii_formatter(sample_texts):
    from datatrove.pipeline.formatters import PIIFormatter

    changed = 0
    for text in sample_texts:
        # a fresh formatter per document: datatrove's cycle of stand-ins runs on across documents, ours restarts
        anonymized, emails, ips = anonymize_pii(text)
        assert anonymized == PIIFormatter().format(text)
        changed += anonymized != text
    assert changed >= 3


def test_default_thresholds_are_datatrove_defaults():
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    def defaults(cls) -> dict:
        return {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()}

    conf = load_filter_thresholds()

    def bounds(section: str) -> dict:
        return {rule: spec.get("min", spec.get("max")) for rule, spec in conf[section]["rules"].items()}

    rep, quality, c4, fineweb = (defaults(cls) for cls in (GopherRepetitionFilter, GopherQualityFilter,
                                                              C4QualityFilter, FineWebQualityFilter))
    assert bounds("gopher_repetition") == {
        "gopher_rep_empty": 1, **{k: rep[k] for k in ("dup_para_frac", "dup_para_char_frac", "dup_line_frac",
                                                     "dup_line_char_frac")},
        **{f"top_{n}_gram": v for n, v in rep["top_n_grams"]}, **{f"duplicated_{n}_n_grams": v for n, v in
                                                                  rep["dup_n_grams"]}}
    assert bounds("gopher_quality") == {
        "gopher_short_doc": quality["min_doc_words"], "gopher_long_doc": quality["max_doc_words"],
        "gopher_below_avg_threshold": quality["min_avg_word_length"],
        "gopher_above_avg_threshold": quality["max_avg_word_length"],
        "gopher_too_many_hashes": quality["max_symbol_word_ratio"],
        "gopher_too_many_ellipsis": quality["max_symbol_word_ratio"],
        "gopher_too_many_bullets": quality["max_bullet_lines_ratio"],
        "gopher_too_many_end_ellipsis": quality["max_ellipsis_lines_ratio"],
        "gopher_below_alpha_threshold": quality["max_non_alpha_words_ratio"],
        "gopher_enough_stop_words": quality["min_stop_words"]}
    assert bounds("c4") == {"c4_lorem_ipsum": 0, "c4_curly_bracket": 0, "c4_too_few_sentences": c4["min_num_sentences"]}
    assert conf["c4"]["lines"] == {**{k: c4[k] for k in conf["c4"]["lines"]}, "filter_no_terminal_punct": False}
    assert bounds("fineweb") == {
        "fineweb_empty": 1, "fineweb_line_punct_ratio": fineweb["line_punct_thr"],
        "fineweb_short_line_ratio": fineweb["short_line_thr"],
        "fineweb_char_dup_ratio": fineweb["char_duplicates_ratio"], "fineweb_list_ratio": fineweb["new_line_ratio"]}
    assert conf["fineweb"]["rules"]["fineweb_line_punct_ratio"]["exclude_zero"] == fineweb["line_punct_exclude_zero"]
    assert conf["fineweb"]["short_line_length"] == fineweb["short_line_length"]
