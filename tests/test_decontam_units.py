import gzip
import json

import numpy as np
import pytest

from refinery.jobs.config import ConfigError, load_benchmarks
from refinery.udfs.decontaminate.benchmarks import BenchmarkNgram, BenchmarkSpec, RowProblem, item_text, read_benchmark
from refinery.udfs.decontaminate.bloom import BloomFilter
from refinery.udfs.decontaminate.ngrams import ngram_hash, ngram_hashes, normalize_tokens, token_hashes
from refinery.udfs.decontaminate.scan import bloom_candidates, gpt3_clean, matched_spans

from .conftest import REPO

GSM8K = REPO / "data" / "benchmarks" / "gsm8k_test.jsonl.gz"
GSM8K_SPEC = BenchmarkSpec("gsm8k", str(GSM8K), ("question", "answer"))


def _first_gsm8k_question() -> str:
    import json

    with gzip.open(GSM8K, "rt") as stream:
        return json.loads(stream.readline())["question"]


def test_normalisation_ignores_case_punctuation_and_whitespace():
    question = _first_gsm8k_question()
    altered = question.upper().replace(" ", " \n\t ").replace("’", "'").replace(".", " ;")
    assert normalize_tokens(altered) == normalize_tokens(question)
    assert normalize_tokens("Janet’s ducks, (16) eggs!") == ["janets", "ducks", "16", "eggs"]


def test_ngram_hash_of_one_ngram_equals_the_rolling_hash_at_its_position():
    tokens = normalize_tokens(_first_gsm8k_question())
    rolling = ngram_hashes(token_hashes(tokens), [8, 13])
    assert len(rolling[13]) == len(tokens) - 12 and len(rolling[8]) == len(tokens) - 7
    assert ngram_hash(tokens[5:18]) == int(rolling[13][5])
    assert ngram_hash(tokens[3:11]) == int(rolling[8][3])
    assert ngram_hash(tokens[0:13]) != ngram_hash(tokens[0:12] + ["x"])


def test_bloom_filter_has_no_false_negatives_and_meets_its_false_positive_target():
    rng = np.random.default_rng(7)
    members = rng.integers(0, 2**63, 50_000, dtype=np.int64).astype(np.uint64)
    bloom = BloomFilter.for_capacity(len(members), 1e-3)
    bloom.add(members)
    assert bloom.contains(members).all()
    others = rng.integers(0, 2**63, 1_000_000, dtype=np.int64).astype(np.uint64)
    assert bloom.contains(others).mean() < 3e-3


def test_bloom_filters_built_in_parts_union_to_the_whole():
    keys = np.arange(1, 20_001, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    whole = BloomFilter.for_capacity(len(keys), 1e-4)
    whole.add(keys)
    left, right = (BloomFilter(np.zeros_like(whole.bits), whole.num_bits, whole.num_hashes) for _ in range(2))
    left.add(keys[:7000])
    right.add(keys[7000:])
    assert np.array_equal(left.union(right).bits, whole.bits)


def test_item_text_reads_nested_fields_and_lists_in_order():
    record = {"q": "What?", "meta": {"ctx": "Some context"}, "choices": ["a", ["b", "c"]], "n": 3}
    assert item_text(record, ("meta.ctx", "q", "choices", "n", "missing")) == "Some context What? a b c"


def test_real_benchmark_items_become_13_grams_and_short_items_are_counted(tmp_path):
    rows = list(read_benchmark(GSM8K_SPEC, str(GSM8K), 13, 8))
    ngrams = [r for r in rows if isinstance(r, BenchmarkNgram)]
    assert {r.item_id for r in ngrams} == {f"line {i}" for i in range(1, 1320)}
    assert all(len(r.ngram.split()) == 13 for r in ngrams)
    copa = REPO / "data" / "benchmarks" / "copa.jsonl.gz"
    short = list(read_benchmark(BenchmarkSpec("copa", str(copa), ("query",)), str(copa), 13, 8))
    assert any(isinstance(r, RowProblem) and r.kind == "short" for r in short)
    assert any(isinstance(r, BenchmarkNgram) and 8 <= r.length < 13 for r in short)


def test_malformed_benchmark_rows_name_the_file_and_line(tmp_path):
    lines = gzip.open(GSM8K, "rt").read().splitlines()[:5]
    lines[2] = lines[2][:40]  # a truncated JSON line
    lines[3] = '["not", "an", "object"]'
    broken = tmp_path / "gsm8k_broken.jsonl"
    broken.write_text("\n".join(lines) + "\n")
    problems = [r for r in read_benchmark(GSM8K_SPEC, str(broken), 13, 8) if isinstance(r, RowProblem)]
    assert [(p.line, p.kind) for p in problems] == [(3, "malformed"), (4, "malformed")]
    assert "gsm8k_broken.jsonl line 3: not valid JSON" in problems[0].describe()
    assert "expected a JSON object" in problems[1].message


def test_shipped_benchmarks_file_lists_every_shipped_set():
    entries = load_benchmarks()
    assert len(entries) == 12
    for entry in entries:
        assert (REPO / entry.path).is_file(), entry.path


def test_bad_benchmarks_file_names_the_entry(tmp_path):
    bad = tmp_path / "benchmarks.yaml"
    bad.write_text("benchmarks:\n  - name: ok\n    path: x.jsonl\n    fields: [q]\n  - name: broken\n    path: y\n")
    with pytest.raises(ConfigError, match=r"(?s)entry 2: .*config key fields: Field required"):
        load_benchmarks(bad)


def test_gpt3_cleaning_cuts_the_hit_and_keeps_long_clean_pieces():
    question = _first_gsm8k_question()
    tokens = normalize_tokens(question)
    bloom = BloomFilter.for_capacity(100, 1e-6)
    bloom.add(ngram_hashes(token_hashes(tokens[:13]), [13])[13])
    before, after = "Intro paragraph about farming. " * 20, " Closing remarks on markets." * 20
    text = before + question + after
    _, candidates = bloom_candidates(text, bloom, [13])
    spans = matched_spans(text, set(candidates), [13])
    assert len(spans) == 1 and text[spans[0][0]:].startswith("Janet")
    pieces = gpt3_clean(text, spans)
    assert len(pieces) == 2
    assert "Janet" not in "".join(pieces) and pieces[0].startswith("Intro") and pieces[1].rstrip().endswith("markets.")
    assert gpt3_clean(text, spans * 11) == []  # more than 10 hits drop the document


def test_batched_scan_equals_scanning_each_text_alone():
    from refinery.udfs.decontaminate.scan import bloom_candidates_batch

    question = _first_gsm8k_question()
    tokens = normalize_tokens(question)
    bloom = BloomFilter.for_capacity(100, 1e-6)
    bloom.add(ngram_hashes(token_hashes(tokens), [13])[13])
    texts = ["", "too short", "Prefix words. " + question, question.upper() + " tail " * 5, "unrelated " * 40]
    assert bloom_candidates_batch(texts, bloom, [8, 13]) == [bloom_candidates(t, bloom, [8, 13]) for t in texts]
    assert bloom_candidates_batch(texts, bloom, [13])[2][1]  # the planted question is a candidate


def test_an_item_that_repeats_an_ngram_yields_it_once():
    truthfulqa = REPO / "data" / "benchmarks" / "truthfulqa.jsonl.gz"
    spec = BenchmarkSpec("truthfulqa", str(truthfulqa), ("Question", "Best Answer", "Correct Answers",
                                                         "Incorrect Answers"))
    rows = [(r.item_id, r.ngram_hash) for r in read_benchmark(spec, spec.path, 13, 8) if isinstance(r, BenchmarkNgram)]
    assert len(rows) == len(set(rows))
    assert sum(1 for item, _ in rows if item == "line 251") > 0


def test_choice_variants_let_a_page_with_context_and_a_later_gold_answer_match(tmp_path):
    # a short context whose gold answer is the second choice: the flattened item puts the first choice after the
    # context, so no n-gram spans the context and the gold answer unless the item is expanded per choice
    item = {"query": "The man turned on the faucet, therefore", "gold": 1,
            "choices": ["the toilet filled with water.", "water flowed from the spout."]}
    path = tmp_path / "copa.jsonl"
    path.write_text(json.dumps(item) + "\n")
    spec = BenchmarkSpec("copa", str(path), ("query", "choices"), choices=("choices",), answer="gold")
    page = normalize_tokens("Blog post. The man turned on the faucet, therefore water flowed from the spout. Then")

    def page_hits(variants: bool) -> set[str]:
        grams = [r for r in read_benchmark(spec, str(path), 13, 8, variants) if isinstance(r, BenchmarkNgram)]
        page_grams = {" ".join(page[i:i + g.length]) for g in grams for i in range(len(page) - g.length + 1)}
        return {g.ngram for g in grams if g.ngram in page_grams}

    assert page_hits(False) == set()
    assert page_hits(True) == {"the man turned on the faucet therefore water flowed from the spout"}
    # a gold answer given as text (not among the listed choices) gives its own variant
    text_gold = BenchmarkSpec("x", str(path), ("query",), answer="answer")
    path.write_text(json.dumps({"query": "Which gas do plants take in?", "answer": "Carbon dioxide from the air"}))
    grams = [r.ngram for r in read_benchmark(text_gold, str(path), 13, 8) if isinstance(r, BenchmarkNgram)]
    assert "which gas do plants take in carbon dioxide from the air" in grams


def test_shipped_multiple_choice_benchmarks_name_their_choice_fields():
    entries = {e.name: e for e in load_benchmarks()}
    for name in ("arc_challenge", "arc_easy", "copa", "hellaswag", "mmlu", "openbookqa"):
        assert entries[name].choices and set(entries[name].choices) <= set(entries[name].fields), name
