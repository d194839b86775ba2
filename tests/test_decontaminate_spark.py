"""Integration: real benchmark items planted into real sample documents are found; clean documents are not."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
import yaml

from refinery.jobs.base import run_stage
from refinery.jobs.decontaminate import DecontaminateStage
from refinery.jobs.ingest import IngestStage
from refinery.jobs.storage import Lakehouse
from refinery.jobs.validate import ValidationFailed, validate
from refinery.schemas.tables import CONTAMINATION_MATCHES, DOCUMENTS
from refinery.udfs.decontaminate.benchmarks import BenchmarkSpec, read_benchmark
from refinery.udfs.ids import doc_id_from_record_id

from .conftest import CC_SAMPLE, REPO, SAMPLE, lake_config

BENCHMARKS = REPO / "data" / "benchmarks"
# A subset of the shipped sets keeps the test quick; each entry is the shipped one.
SUBSET = ("gsm8k", "arc_challenge", "mmlu_dev", "copa", "humaneval", "truthfulqa")


def _item(file: str, line: int) -> dict:
    with gzip.open(BENCHMARKS / file, "rt") as stream:
        return json.loads(stream.read().splitlines()[line - 1])


def _variants() -> list[tuple[str, str, str]]:
    """(benchmark, item_id, text to plant): verbatim and with case / punctuation / whitespace changes."""
    gsm = _item("gsm8k_test.jsonl.gz", 7)
    arc = _item("arc_challenge.jsonl.gz", 100)
    mmlu = _item("mmlu_dev.jsonl.gz", 42)
    copa = _item("copa.jsonl.gz", 13)
    human = _item("humaneval.jsonl.gz", 5)
    tqa = _item("truthfulqa.jsonl.gz", 251)  # its answers repeat a 13-gram
    return [
        ("gsm8k", "line 7", gsm["question"]),
        ("arc_challenge", "line 100", arc["query"].upper() + " " + " ".join(arc["choices"]).upper()),
        ("mmlu_dev", "line 42", re.sub(r"[^\w\s]", "", mmlu["question"] + " " + " ".join(mmlu["choices"]))),
        ("copa", "line 13", (copa["query"] + " " + " ".join(copa["choices"])).replace(" ", "\n   ")),
        ("humaneval", human["task_id"], human["prompt"]),
        ("truthfulqa", "line 251", tqa["Question"] + "!!! " + tqa["Best Answer"].lower() + " ... "
         + tqa["Correct Answers"] + " " + tqa["Incorrect Answers"]),
        # short context + the gold answer, which is not the first choice: no n-gram of the flattened item
        # (context + every choice) is in these texts; the per-choice variants are
        *((name, f"line {line}", _context_and_gold(file, line, context, choices, gold))
          for name, file, line, context, choices, gold in GOLD_NOT_FIRST),
    ]


GOLD_NOT_FIRST = [
    ("copa", "copa.jsonl.gz", 2, "query", "choices", "gold"),
    ("arc_challenge", "arc_challenge.jsonl.gz", 34, "query", "choices", "gold"),
    ("mmlu_dev", "mmlu_dev.jsonl.gz", 6, "question", "choices", "answer"),
]


def _context_and_gold(file: str, line: int, context: str, choices: str, gold: str) -> str:
    item = _item(file, line)
    assert item[gold] > 0
    return item[context] + " " + item[choices][item[gold]]


def _benchmarks_file(folder: Path, names=SUBSET, extra: list[dict] | None = None) -> Path:
    shipped = yaml.safe_load((REPO / "conf" / "benchmarks.yaml").read_text())["benchmarks"]
    entries = [dict(e, path=str(REPO / e["path"])) for e in shipped if e["name"] in names] + (extra or [])
    path = folder / "benchmarks.yaml"
    path.write_text(yaml.safe_dump({"benchmarks": entries}))
    return path


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("decontam")
    config = lake_config(root / "lake", "ingest.extractor=resiliparse",
                         f"decontaminate.benchmarks_file={_benchmarks_file(root)}")
    warcs = ",".join(str(p) for p in (CC_SAMPLE, SAMPLE / "wget-2024_dolma_sample-0000.warc.gz"))
    run_stage(IngestStage(input_glob=warcs), spark, config)
    lake = Lakehouse(spark, config.storage)
    hosts = lake.read(DOCUMENTS.name).orderBy("doc_id").limit(len(_variants())).collect()
    planted = []
    for (benchmark, item_id, text), host in zip(_variants(), hosts, strict=True):
        row = host.asDict()
        cut = len(row["text"]) // 2
        record_id = f"planted-{benchmark}-{item_id}"
        row.update(doc_id=doc_id_from_record_id(record_id), warc_record_id=record_id,
                   text=row["text"][:cut] + "\n" + text + "\n" + row["text"][cut:])
        planted.append((row["doc_id"], benchmark, item_id))
        lake.merge(DOCUMENTS.name, spark.createDataFrame([row], DOCUMENTS.schema))
    record = run_stage(DecontaminateStage(), spark, config)
    return config, lake, record, planted, root


def test_every_planted_item_is_found_with_its_benchmark_and_item_id(lake):
    _, lake_, record, planted, _ = lake
    assert record.status == "succeeded" and record.validation == "passed"
    flags = {r.doc_id: r for r in lake_.read("contamination").collect()}
    matches = lake_.read("contamination_matches")
    for doc_id, benchmark, item_id in planted:
        assert flags[doc_id].contaminated, (benchmark, item_id)
        assert benchmark in flags[doc_id].matched_benchmarks
        items = {(r.benchmark, r.item_id) for r in matches.where(f"doc_id = '{doc_id}'").collect()}
        assert (benchmark, item_id) in items


def test_real_documents_without_planted_items_have_no_verified_match(lake):
    _, lake_, _, planted, _ = lake
    planted_ids = {p[0] for p in planted}
    clean = lake_.read("contamination").where("NOT contaminated").collect()
    assert {r.doc_id for r in lake_.read("contamination").where("contaminated").collect()} == planted_ids
    assert len(clean) == lake_.read("documents").count() - len(planted_ids) > 30
    assert all(r.matched_ngrams == 0 and r.matched_benchmarks == [] for r in clean)
    assert sum(r.ngrams_checked for r in clean) > 10_000


def test_ledger_counts_candidates_verification_and_benchmarks(lake, tmp_path):
    _, _, record, planted, _ = lake
    root = tmp_path
    c = record.counters
    assert "benchmark_index_cached" not in c
    assert c["docs_scanned"] == record.rows_in == record.rows_out
    assert c["bloom_candidates"] >= c["bloom_false_positives"] >= 0
    assert c["contaminated_docs"] == len(planted)
    assert c["contaminated_docs_gsm8k"] >= 1 and c["benchmark_files"] == len(SUBSET)
    direct = set()
    for entry in yaml.safe_load(_benchmarks_file(root).read_text())["benchmarks"]:
        spec = BenchmarkSpec(entry["name"], entry["path"], tuple(entry["fields"]), entry.get("id"))
        direct |= {(r.benchmark, r.item_id) for r in read_benchmark(spec, spec.path, 13, 8) if hasattr(r, "ngram")}
    assert c["benchmark_items"] == len(direct)


def test_contaminated_documents_per_benchmark_in_sql(lake, spark):
    _, lake_, _, planted, _ = lake
    lake_.read("contamination").createOrReplaceTempView("contamination")
    rows = spark.sql("SELECT b AS benchmark, count(*) AS docs FROM contamination "
                     "LATERAL VIEW explode(matched_benchmarks) AS b WHERE contaminated GROUP BY b").collect()
    assert {r.benchmark for r in rows} == {p[1] for p in planted}


def test_rerun_scans_only_new_documents(lake, spark):
    config, _, _, _, _ = lake
    again = run_stage(DecontaminateStage(), spark, config)
    assert again.counters["docs_scanned"] == 0 and again.rows_out == 0
    assert again.counters["benchmark_index_cached"] == 1  # the index built by the first run was reused


def test_cleaning_cuts_planted_items_and_changing_it_rescans(lake, spark):
    config, lake_, _, planted, root = lake
    cleaning = config.model_copy(update={"decontaminate": config.decontaminate.model_copy(
        update={"clean": True, "max_matches_per_doc": 1})})
    record = run_stage(DecontaminateStage(), spark, cleaning)
    assert record.counters["docs_scanned"] == lake_.read("documents").count()  # settings changed: full rescan
    rows = {r.doc_id: r for r in lake_.read("contamination").collect()}
    docs = {r.doc_id: r.text for r in lake_.read("documents").collect()}
    gsm_doc = next(p[0] for p in planted if p[1] == "gsm8k")
    question = _item("gsm8k_test.jsonl.gz", 7)["question"]
    assert rows[gsm_doc].cleaning in ("cleaned", "dropped")
    if rows[gsm_doc].cleaning == "cleaned":
        assert question[:40] not in rows[gsm_doc].cleaned_text and question[:40] in docs[gsm_doc]
    assert {r.cleaning for r in rows.values() if not r.contaminated} == {"kept"}
    # With the cap at 1, each document keeps exactly one row per matched item, and every planted item is listed.
    detail = lake_.read(CONTAMINATION_MATCHES.name).collect()
    for doc_id, benchmark, item_id in planted:
        mine = [(r.benchmark, r.item_id) for r in detail if r.doc_id == doc_id]
        assert (benchmark, item_id) in mine and len(mine) == len(set(mine)) == rows[doc_id].matched_items


def test_malformed_benchmark_rows_are_reported_and_a_changed_set_replaces_old_matches(lake, spark, capsys):
    config, lake_, _, planted, root = lake
    lines = gzip.open(BENCHMARKS / "copa.jsonl.gz", "rt").read().splitlines()
    lines[4] = lines[4][:25]
    broken = root / "copa_broken.jsonl"
    broken.write_text("\n".join(lines) + "\n")
    extra = [{"name": "copa_copy", "path": str(broken), "fields": ["query", "choices"]}]
    changed = config.model_copy(update={"decontaminate": config.decontaminate.model_copy(
        update={"benchmarks_file": str(_benchmarks_file(root, SUBSET, extra))})})
    record = run_stage(DecontaminateStage(), spark, changed)
    assert record.status == "succeeded"
    assert "benchmark_index_cached" not in record.counters  # new benchmark files: the index is rebuilt
    assert record.counters["failed_benchmark_rows"] == 1
    assert "copa_broken.jsonl line 5: not valid JSON" in capsys.readouterr().err
    hashes = {r.benchmark_set_hash for r in lake_.read(CONTAMINATION_MATCHES.name).collect()}
    assert len(hashes) == 1  # matches found against the old set are gone
    copa_doc = next(p[0] for p in planted if p[1] == "copa")
    found = {r.benchmark for r in lake_.read(CONTAMINATION_MATCHES.name).where(f"doc_id = '{copa_doc}'").collect()}
    assert found == {"copa", "copa_copy"}


def test_match_suite_rejects_unknown_benchmarks(spark):
    row = ("d" * 32, "not_a_benchmark", "line 1", "some ngram", 1, 1, "0" * 64, "run")
    df = spark.createDataFrame([row], CONTAMINATION_MATCHES.schema)
    with pytest.raises(ValidationFailed, match="expect_column_values_to_be_in_set on column benchmark"):
        validate("contamination_matches", df, {"benchmarks": ["gsm8k"]})
