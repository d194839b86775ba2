"""Pure MinHash functions on real Reuters text: datatrove parity, determinism, Jaccard estimates, the S-curve."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refinery.udfs.dedup.minhash import (
    band_hashes,
    candidate_probability,
    estimated_jaccard,
    jaccard,
    permutations,
    shingles,
    signatures,
    simplify_text,
    threshold,
    threshold_curve,
    word_tokens,
)

SLICE = Path(__file__).parent / "data" / "reuters_dedup_slice.jsonl.gz"
PERMS = permutations(112, seed=1)


def _texts() -> list[str]:
    with gzip.open(SLICE, "rt") as lines:
        return [json.loads(line)["text"] for line in lines]


def test_simplified_words_and_shingles_match_datatrove_on_real_text():
    from datatrove.utils.text import ngrams
    from datatrove.utils.text import simplify_text as datatrove_simplify
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    tokenizer = load_word_tokenizer("en")  # what MinhashDedupSignature uses for English
    gold = [json.loads(line) for line in open(Path(__file__).parent / "data" / "gold_first80.jsonl")]
    # Reuters (English news) and the gold pages' multilingual snippets (diacritics, „quotes“, non-Latin scripts).
    texts = _texts() + [" ".join(g["with"] + g["without"]) for g in gold]
    for text in texts:
        simplified = simplify_text(text)
        assert simplified == datatrove_simplify(text)
        words = tokenizer.word_tokenize(datatrove_simplify(text))
        assert word_tokens(simplified) == words
        # Same 5-gram set: ours hashes differently, so compare the number of distinct n-grams and hashes.
        assert len(np.unique(shingles(text))) == len({" ".join(g) for g in ngrams(words, 5)})


def test_spacy_contraction_and_unit_rules_apply_to_simplified_text():
    assert word_tokens(simplify_text("We CANNOT ship 12km of pipe, I'm told; it's £5")) == [
        "we", "can", "not", "ship", "0", "km", "of", "pipe", "i", "m", "told", "it", "s", "£", "0"]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from("abcde XYZ 123 ,.!éü\n"), min_size=0, max_size=300))
def test_identical_texts_give_identical_signatures(text):
    copy = "".join(text)  # a distinct string object with equal contents
    one, two = signatures([shingles(text)], PERMS), signatures([shingles(copy)], PERMS)
    assert (one == two).all()


def test_case_punctuation_and_digits_do_not_change_the_signature():
    text = _texts()[3]
    variant = text.upper().replace(",", " ;").replace("1", "7")
    assert (signatures([shingles(text)], PERMS) == signatures([shingles(variant)], PERMS)).all()


def test_batch_signatures_equal_one_document_at_a_time_including_empty_ones():
    sets = [shingles(t) for t in _texts()[:40]] + [shingles("too short")]
    batch = signatures(sets, PERMS)
    single = np.vstack([signatures([s], PERMS) for s in sets])
    assert (batch == single).all()
    assert (batch[-1] == np.iinfo(np.uint64).max).all()


def test_estimated_jaccard_tracks_true_jaccard_on_real_pairs():
    texts = _texts()
    rng = random.Random(7)
    pairs = []
    for text in texts[:60]:  # real text and a copy with a growing share of its words replaced
        words = text.split()
        for share in (0.02, 0.1, 0.3):
            edited = [w if rng.random() > share else rng.choice(words) + "x" for w in words]
            pairs.append((text, " ".join(edited)))
    errors = []
    for a, b in pairs:
        sa, sb = shingles(a), shingles(b)
        if len(sa) and len(sb):
            sigs = signatures([sa, sb], PERMS)
            errors.append(estimated_jaccard(sigs[0], sigs[1]) - jaccard(sa, sb))
    errors = np.abs(errors)
    # 112 permutations: standard error <= 0.05, so no error should reach 0.2 and the mean stays small.
    assert len(errors) > 100 and errors.max() < 0.2 and errors.mean() < 0.05


def test_band_hashes_differ_only_where_band_values_differ():
    sigs = signatures([shingles(t) for t in _texts()[:2]], PERMS)
    changed = sigs[0].copy()
    changed[8 * 3] += np.uint64(1)  # first value of band 3
    hashed = band_hashes(np.vstack([sigs[0], changed]), 14, 8)
    assert hashed.dtype == np.int64 and hashed.shape == (2, 14)
    assert [b for b in range(14) if hashed[0, b] != hashed[1, b]] == [3]
    with pytest.raises(ValueError, match="bands x rows"):
        band_hashes(sigs, 10, 8)


def test_threshold_curve_is_the_lsh_s_curve():
    assert threshold(14, 8) == pytest.approx(0.719, abs=1e-3)
    assert candidate_probability(0.8, 14, 8) == pytest.approx(0.924, abs=1e-3)  # datatrove's stated figure
    curve = threshold_curve(14, 8)
    probabilities = [p for _, p in curve]
    assert probabilities == sorted(probabilities) and curve[0][0] == 0.5 and curve[-1] == (1.0, 1.0)
