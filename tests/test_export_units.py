"""Export and report helpers without Spark: recipes, budgets, the shuffle key, shard bytes, the HTML page."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest

from refinery.udfs.export.mix import (
    RecipeError,
    jsonl_zst_bytes,
    load_recipe,
    parquet_bytes,
    plan_budgets,
    shard_of,
    shuffle_key,
    token_counter,
    tokenizer_payload,
)

MIXES = Path(__file__).resolve().parents[1] / "conf" / "mixes"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mix.yaml"
    path.write_text(text)
    return path


def test_shipped_recipes_load_and_their_hash_ignores_comments(tmp_path):
    for name in ("wrap_1to1", "beyondweb", "real_only"):
        recipe, digest = load_recipe(MIXES / f"{name}.yaml")
        assert recipe.sources and len(digest) == 64
    text = (MIXES / "real_only.yaml").read_text()
    _, plain = load_recipe(MIXES / "real_only.yaml")
    _, commented = load_recipe(write(tmp_path, "# another comment\n" + text))
    assert plain == commented
    _, reseeded = load_recipe(write(tmp_path, text.replace("seed: 0", "seed: 1")))
    assert reseeded != plain


@pytest.mark.parametrize("body, message", [
    ("name: x\nsources: [{name: a, kind: curated}]", "exactly one of `tokens`"),
    ("name: x\nsources: [{name: a, kind: curated, ratio: 1, tokens: 5}]", "exactly one of `tokens`"),
    ("name: x\nsources: [{name: a, kind: taxonomy, ratio: 1}]", "names its `view`"),
    ("name: x\nsources: [{name: a, kind: curated, ratio: 1, styles: [wrap_easy]}]", "synthetic only"),
    ("name: x\nsources: [{name: a, kind: curated, ratio: 1}, {name: a, kind: curated, ratio: 1}]", "unique"),
    ("name: x\nshard_size: 5\nsources: [{name: a, kind: curated, ratio: 1}]", "shard_size"),
    ("name: x\nsources: [{name: a, kind: synthetic, ratio: -1}]", "sources.0.ratio"),
])
def test_a_bad_recipe_names_the_file_and_the_key(tmp_path, body, message):
    path = write(tmp_path, body)
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_a_missing_recipe_or_tokenizer_says_what_to_pass(tmp_path):
    with pytest.raises(RecipeError, match="no such file; pass --recipe"):
        load_recipe(tmp_path / "nope.yaml")
    with pytest.raises(RecipeError, match="nothing is downloaded"):
        tokenizer_payload("gpt2")


def recipe(tmp_path, sources: str, extra: str = ""):
    return load_recipe(write(tmp_path, f"name: x\n{extra}sources:\n{sources}"))[0]


def test_ratio_sources_share_the_largest_pool_every_source_can_fill(tmp_path):
    one_to_one = recipe(tmp_path, "  - {name: real, kind: curated, ratio: 1}\n"
                                  "  - {name: syn, kind: synthetic, ratio: 1}")
    assert plan_budgets(one_to_one, {"real": 10_000, "syn": 3_000}) == {"real": 3_000, "syn": 3_000}
    sixty = recipe(tmp_path, "  - {name: syn, kind: synthetic, ratio: 0.6}\n"
                             "  - {name: real, kind: curated, ratio: 0.4}")
    assert plan_budgets(sixty, {"real": 10_000, "syn": 3_000}) == {"syn": 3_000, "real": 2_000}
    assert plan_budgets(sixty, {"real": 1_000, "syn": 9_000}) == {"syn": 1_500, "real": 1_000}
    assert plan_budgets(sixty, {"real": 1_000}) == {"syn": 0, "real": 0}  # an empty source empties the pool


def test_total_tokens_caps_the_pool_and_absolute_budgets_stand_apart(tmp_path):
    capped = recipe(tmp_path, "  - {name: real, kind: curated, ratio: 1}\n  - {name: syn, kind: synthetic, ratio: 3}",
                    "total_tokens: 400\n")
    assert plan_budgets(capped, {"real": 10_000, "syn": 10_000}) == {"real": 100, "syn": 300}
    mixed = recipe(tmp_path, "  - {name: real, kind: curated, ratio: 1}\n  - {name: syn, kind: synthetic, tokens: 50}")
    assert plan_budgets(mixed, {"real": 700, "syn": 10}) == {"real": 700, "syn": 50}


def test_the_shuffle_key_is_stable_and_changes_with_the_seed_and_source():
    ids = [f"{i:032x}" for i in range(2000)]
    order = sorted(ids, key=lambda i: shuffle_key(0, "real", i))
    assert order == sorted(ids, key=lambda i: shuffle_key(0, "real", i))
    assert order != ids and order != sorted(ids, key=lambda i: shuffle_key(1, "real", i))
    assert shuffle_key(0, "real", ids[0]) != shuffle_key(0, "wrap", ids[0])
    assert all(0 <= shuffle_key(7, "s", i) < 2**63 for i in ids)  # fits Spark's signed bigint
    assert shuffle_key(0, "real", "abc") == 7263774635991865165  # pinned: a change would reorder every export


def test_shards_split_on_tokens_before_the_item():
    assert [shard_of(b, 100) for b in (0, 99, 100, 250)] == [0, 0, 1, 2]


def test_token_counters_are_named_and_count_as_they_say(tmp_path):
    assert token_counter("whitespace", None)("a  b\nc") == 3
    assert token_counter("regex", None)("Hello, world!") == 4
    tokenizers = pytest.importorskip("tokenizers")
    model = tokenizers.models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]")
    tok = tokenizers.Tokenizer(model)
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    folder = tmp_path / "tok"
    folder.mkdir()
    tok.save(str(folder / "tokenizer.json"))
    name, payload = tokenizer_payload(str(folder))
    assert name.startswith("hf-tokenizers:tok:sha256-")
    assert token_counter(name, payload)("hello world , hello") == 4


def frame() -> pd.DataFrame:
    return pd.DataFrame({"text": ["Ünïcode text", "second\nline"], "source": ["real", "wrap"],
                         "doc_id": ["d1", "d2"], "synth_id": [None, "s2"], "tokens": [2, 2]})


def test_shard_bytes_are_deterministic_and_read_back():
    import pyarrow.parquet as pq
    import zstandard

    assert parquet_bytes(frame()) == parquet_bytes(frame().copy())
    table = pq.read_table(io.BytesIO(parquet_bytes(frame())))
    assert table.column_names == ["text", "source", "doc_id", "synth_id", "tokens"]
    assert table.to_pylist()[1] == {"text": "second\nline", "source": "wrap", "doc_id": "d2", "synth_id": "s2",
                                    "tokens": 2}
    data = jsonl_zst_bytes(frame())
    assert data == jsonl_zst_bytes(frame())
    lines = zstandard.ZstdDecompressor().decompressobj().decompress(data).decode().splitlines()
    assert [json.loads(x) for x in lines] == table.to_pylist()
    assert lines[0].startswith('{"text": "Ünïcode text"')


def test_the_report_page_embeds_plotly_once_and_says_what_is_missing():
    from refinery.udfs.export.report_html import build_sections, render_html

    agg = {"funnel": pd.DataFrame({"stage": ["ingested", "quality"], "docs": [10, 6]}),
           "drops": pd.DataFrame({"stage": ["quality"], "reason": ["gopher_short_doc"], "n": [4]}),
           "languages": pd.DataFrame({"language": ["en", "de"], "docs": [8, 2]}),
           "quality_scores": pd.DataFrame({"left": [], "right": [], "docs": []})}
    sections = build_sections(agg, "/lake")
    page = render_html(sections, "t")
    assert page.count("Plotly.newPlot") == 3  # funnel, drop reasons, languages
    assert "<script src=" not in page and "src=\"http" not in page  # plotly.js inline: no CDN
    assert page.count("plotly.js v") >= 1  # the library itself is inline
    notes = {s.title: s.notes for s in sections}
    assert any("no classifier is configured" in n for n in notes["Quality"])
    assert any("Not labelled yet" in n for n in notes["Taxonomy"])
    assert any("run the rewrite stage" in n for n in notes["Synthetic"])
    assert any("run the dedup stage" in n for n in notes["Dedup"])
