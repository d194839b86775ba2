"""The label UDF body on real engines without Spark: the tiny random model (its gibberish becomes counted outcomes
with the raw output kept) and the OpenAI engine against an in-process server answering in EAI-Distill's format."""

from __future__ import annotations

import pandas as pd
import pytest

from refinery.udfs.label.taxonomy import STATUSES, code_columns, parse_compact, subsample
from refinery.udfs.label.udf import LABELED_COLUMNS, LabelSettings, label_documents, load_teacher_prompts
from refinery.udfs.llm import EngineSpec

from .conftest import sample_texts
from .label_fixtures import EXPECTED_STATUS, RECORDED, answer_for, serve_recorded

CODES = [name for name, _ in code_columns()]


@pytest.fixture(scope="module")
def documents() -> pd.DataFrame:
    texts = [t[:2000] for t in sample_texts(8)]  # the tiny model has 2048 positions
    return pd.DataFrame({"doc_id": [f"{i:032x}" for i in range(len(texts))], "text": texts,
                         "url": [f"https://example.org/{i}" for i in range(len(texts))]})


def test_the_tiny_models_gibberish_becomes_parse_outcomes_with_the_raw_output_kept(tiny_model, documents):
    spec = EngineSpec(engine="transformers", model=str(tiny_model), max_model_len=2048, batch_size=4)
    settings = LabelSettings("compact", "taxonomy", None, max_output_tokens=24)
    too_long = pd.DataFrame({"doc_id": ["f" * 32], "text": [" ".join(sample_texts() * 3)], "url": [None]})
    out = pd.concat(label_documents(iter([documents, too_long]), spec, settings), ignore_index=True)
    assert list(out.columns) == LABELED_COLUMNS and list(out["doc_id"]) == [*documents["doc_id"], "f" * 32]
    last = out.iloc[-1]
    assert last.status == "failed_too_long" and last.error == "too_long" and last.subsampled
    out = out.iloc[:-1]
    for row in out.itertuples():
        assert row.status in STATUSES and row.status != "ok"  # random weights never write ten valid lines
        assert row.raw_output is not None and row.error and row.raw_output_pass2 is None
        assert all(pd.isna(getattr(row, c)) for c in CODES)
        assert row.prompt_tokens > 0 and 0 < row.output_tokens <= 24
        assert (row.finish_reason == "length") == (row.status == "truncated")
    assert out["input_chars"].tolist() == documents["text"].str.len().tolist()


def test_teacher_mode_runs_two_passes_per_document(tiny_model, documents, tmp_path):
    # The packaged prompts are ~1,900 tokens for the tiny tokenizer (2,048 positions): use a short prompt file.
    prompts = tmp_path / "teacher.yaml"
    prompts.write_text("version: 3\nsystem: Classify.\npass_1: 'One {url} {num_char} {document}'\n"
                       "pass_2: 'Two {url} {num_char} {document}'\n")
    spec = EngineSpec(engine="transformers", model=str(tiny_model), max_model_len=2048, batch_size=4)
    settings = LabelSettings("teacher", "taxonomy", load_teacher_prompts(str(prompts)), max_output_tokens=8)
    assert settings.prompt_version() == "teacher/v3"
    out = pd.concat(label_documents(iter([documents.head(3)]), spec, settings))
    assert (out["status"] == "truncated").all() and out["raw_output_pass2"].notna().all()
    assert (out["output_tokens"] == 16).all()  # 8 per pass


def test_recorded_compact_outputs_through_the_openai_engine_land_column_by_column(tiny_model, documents):
    server, seen = serve_recorded()
    try:
        spec = EngineSpec(engine="openai", model=str(tiny_model), base_url=f"http://127.0.0.1:{server.server_port}/v1",
                          timeout_s=10, concurrency=4, batch_size=4)
        out = pd.concat(label_documents(iter([documents]), spec, LabelSettings("compact", "taxonomy", None, 100)))
    finally:
        server.shutdown()
    assert len(seen) == len(documents)
    for body in seen:  # EAI-Distill's invocation: system "taxonomy", the document as the user turn, greedy
        assert [m["role"] for m in body["messages"]] == ["system", "user"]
        assert body["messages"][0]["content"] == "taxonomy" and body["temperature"] == 0.0
        assert body["max_tokens"] == 100
    for doc, row in zip(documents.itertuples(), out.to_dict("records"), strict=True):
        name = answer_for(subsample(doc.text, doc.doc_id))
        text, finish = RECORDED[name]
        assert row["raw_output"] == text and row["finish_reason"] == finish
        assert row["status"] == EXPECTED_STATUS.get(name, "ok")
        want = parse_compact(text, finish).columns()
        for column in CODES:
            got = None if pd.isna(row[column]) else row[column]
            assert got == want[column], (name, column)
        assert row["output_tokens"] == 51 and row["prompt_tokens"] == 11 + len(doc.text) // 4
