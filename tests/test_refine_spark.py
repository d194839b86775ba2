"""Integration: the refine stage through Spark on real sample documents, with the openai engine against an
in-process OpenAI-compatible server that writes programs from what it is shown (drop one document, remove the
first line of every chunk, normalize a word), so every refined text can be checked exactly; then rewrite's seeds
read the refined text and skip the dropped document."""

from __future__ import annotations

import re
import threading

import pytest
from pyspark.sql import functions as F

from refinery.jobs.base import RunRecord, StageContext, run_stage
from refinery.jobs.ingest import IngestStage
from refinery.jobs.main import default_stages
from refinery.jobs.refine import RefineStage
from refinery.jobs.rewrite import RewriteStage
from refinery.jobs.storage import Lakehouse
from refinery.schemas.tables import CONTAMINATION, DOCUMENTS, DUPLICATES, QUALITY, REFINED

from .conftest import CC_SAMPLE, lake_config
from .test_llm_engines import serve
from .test_rewrite_spark import _full_rows

FIRST_LINE = re.compile(r"\[doc\]\n\[(\d+)\]")


def chunk_program(first_line: int) -> str:
    return (f"```python\nremove_lines(line_start={first_line}, line_end={first_line})\n"
            'normalize(source_str=" the ", target_str=" THE ")\n```')


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory, tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    state = {"drop": None, "unparsed": None}
    lock = threading.Lock()

    def completions(body: dict):
        prompt = tokenizer.decode(body["prompt"])
        found = FIRST_LINE.search(prompt)
        if found:
            program = chunk_program(int(found.group(1)))
        elif state["drop"] in prompt:
            program = "drop_doc()"
        elif state["unparsed"] in prompt:
            program = "I would keep this page."
        else:
            program = "keep_doc()"
        with lock:
            state.setdefault("requests", 0)
            state["requests"] += 1
        return 200, {}, {"choices": [{"index": 0, "text": program, "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": len(body["prompt"]), "completion_tokens": 12}}

    server, _ = serve(completions)
    root = tmp_path_factory.mktemp("refine") / "lake"
    config = lake_config(root, "ingest.extractor=resiliparse", "llm.engine=openai", f"llm.model={tiny_model}",
                         "llm.model_name=tiny-prox", f"llm.openai.base_url=http://127.0.0.1:{server.server_port}/v1",
                         "llm.openai.max_retries=0", "llm.max_model_len=2048", "refine.chunk.max_tokens=300",
                         "refine.commit_every=4", "refine.partitions=2")
    run_stage(IngestStage(input_glob=str(CC_SAMPLE)), spark, config)
    lake = Lakehouse(spark, config.storage)
    docs = {r.doc_id: r.text for r in lake.read(DOCUMENTS.name).select("doc_id", "text").collect()}
    ids = sorted(docs)[:9]
    # Document 0 is dropped by quality; 1-8 are seeds. The server drops 1 and answers 2 with prose.
    state["drop"], state["unparsed"] = docs[ids[1]][:60], docs[ids[2]][:60]
    upstream = {QUALITY: ([(d, i != 0) for i, d in enumerate(ids)], "doc_id keep"),
                DUPLICATES: ([(d, True) for d in ids], "doc_id is_kept"),
                CONTAMINATION: ([(d, False) for d in ids], "doc_id contaminated")}
    for spec, (rows_, columns) in upstream.items():
        lake.create(spec)
        lake.merge(spec.name, _full_rows(spark, spec, rows_, columns))
    record = run_stage(RefineStage(), spark, config)
    yield config, lake, record, ids, docs, state
    server.shutdown()


def refined_rows(lake_):
    return {r.doc_id: r for r in lake_.read(REFINED.name).collect()}


def expected_text(text: str, chunks) -> str:
    """Independent of the executor: each chunk's first line removed, ' the ' -> ' THE ' on its lines."""
    lines = text.split("\n")
    gone = set()
    for c in chunks:
        if c.status != "ok":
            continue
        gone.add(c.first_line)
        for i in range(c.first_line, c.last_line + 1):
            lines[i] = lines[i].replace(" the ", " THE ")
    return "\n".join(line for i, line in enumerate(lines) if i not in gone)


def test_refine_writes_one_validated_row_per_seed(lake):
    _, lake_, record, ids, _, _ = lake
    assert record.status == "succeeded" and record.validation == "passed"
    rows = refined_rows(lake_)
    assert set(rows) == set(ids[1:]) and record.rows_in == record.rows_out == 8
    assert record.counters["commit_groups"] == 2
    for r in rows.values():
        assert r.engine == "openai" and r.prompt_version == "prox" and len(r.settings_hash) == 32
        assert r.doc_model == r.chunk_model == "tiny-prox" and r.prompt_tokens > 0


def test_every_refined_text_is_exactly_its_programs_applied(lake):
    _, lake_, _, ids, docs, _ = lake
    rows = refined_rows(lake_)
    checked = 0
    for doc_id in ids[2:]:
        r = rows[doc_id]
        assert r.chunk_count == len(r.chunk_programs) >= 1
        assert [(c.first_line, c.last_line) for c in r.chunk_programs][0][0] == 0
        assert r.chunk_programs[-1].last_line == docs[doc_id].count("\n")
        want = expected_text(docs[doc_id], r.chunk_programs)
        if r.status == "refined":
            assert r.refined_text == want and r.keep
            checked += 1
        else:  # the ProX rules, on this text: <= 10 words or <= 5% of the words left
            words, left = len(docs[doc_id].split()), len(want.split())
            assert not r.keep and r.refined_text is None
            assert (r.status, True) in (("dropped_too_few_words", left <= 10),
                                        ("dropped_mostly_removed", left / words <= 0.05))
        assert r.lines_removed == sum(c.status == "ok" for c in r.chunk_programs)
    assert checked >= 4


def test_the_doc_program_drops_or_fails_open(lake):
    _, lake_, record, ids, _, _ = lake
    rows = refined_rows(lake_)
    dropped, prose = rows[ids[1]], rows[ids[2]]
    assert dropped.status == "dropped_doc" and not dropped.keep and dropped.chunk_count == 0
    assert dropped.doc_decision == "drop" and dropped.doc_program == "drop_doc()"
    assert prose.doc_decision == "unparsed" and prose.keep
    c = record.counters
    assert c["doc_drop"] == 1 and c["doc_unparsed"] == 1 and c["doc_keep"] == 6
    assert c["refine_dropped_doc"] == 1 and c["calls_remove_lines"] == c["chunk_ok"] == c["lines_removed"]
    assert sum(v for k, v in c.items() if k.startswith("refine_")) == 8


def test_rewrite_seeds_read_the_refined_text_and_skip_dropped_documents(lake, spark):
    config, lake_, _, ids, docs, _ = lake
    rows = refined_rows(lake_)
    ctx = StageContext(spark, config, lake_, RunRecord(stage="rewrite"))
    seeds = {r.doc_id: r.text for r in RewriteStage()._seeds(ctx, config.rewrite).collect()}
    kept = {d for d, r in rows.items() if r.keep}
    assert set(seeds) == kept and ids[1] not in seeds
    for doc_id in kept:
        assert seeds[doc_id] == (rows[doc_id].refined_text or docs[doc_id])
    assert "refined" in RewriteStage.inputs


def test_a_rerun_refines_nothing_and_retries_failed_documents(lake, spark):
    config, lake_, _, ids, _, state = lake
    before = state["requests"]
    again = run_stage(RefineStage(), spark, config)
    assert again.rows_in == 0 and state["requests"] == before
    lake_.table(REFINED.name).update(F.col("doc_id") == ids[3], {"status": F.lit("failed_timeout"),
                                                                 "refined_text": F.lit(None)})
    third = run_stage(RefineStage(), spark, config)
    assert third.rows_in == 1 and refined_rows(lake_)[ids[3]].status != "failed_timeout"


def test_refinery_run_includes_refine_before_rewrite_when_a_model_is_set(lake):
    config, *_ = lake
    stages = default_stages(config)
    assert stages.index("refine") < stages.index("rewrite")
    bare = config.model_copy(update={"llm": config.llm.model_copy(update={"model": None})})
    assert "refine" not in default_stages(bare)
