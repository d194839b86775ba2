"""The stage registry: order and flags come from @stage; a new stage (config section, table, suite, task) is one
module — here this test module — and runs through the same pipeline, config, validation and ledger as the others."""

from __future__ import annotations

import pytest
from pydantic import Field
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

from refinery.jobs import registry
from refinery.jobs.config import ConfigError, _Section, load_config
from refinery.jobs.main import default_stages, make_stage, run_pipeline, stage_names
from refinery.jobs.validate import ValidationFailed
from refinery.schemas.tables import TABLES, TableSpec

from .conftest import CHUNKED_SAMPLE, lake_config

WORD_COUNTS = TableSpec(
    name="word_counts", key=("doc_id",), description="Words per document (a stage defined in a test module).",
    schema=StructType([StructField("doc_id", StringType(), False), StructField("words", LongType(), False)]),
)


def word_counts_suite(gx, settings: dict) -> list:
    e = gx.expectations
    return [e.ExpectColumnValuesToBeBetween(column="words", min_value=settings["min_words"])]


class WordCountConfig(_Section):
    min_words: int = Field(1, ge=0)
    check_min: int | None = None  # the suite's bound, when a test wants it to disagree with the stage


def _define_word_count_stage() -> type:
    @registry.stage(after="dedup", tables={WORD_COUNTS: word_counts_suite}, config=("wordcount", WordCountConfig))
    class WordCountStage:
        """Count the words of every document that has at least wordcount.min_words."""
        name = "wordcount"
        inputs = ("documents",)
        outputs = ("word_counts",)

        def execute(self, ctx) -> None:
            cfg = ctx.config.wordcount
            words = F.size(F.split(F.trim(F.col("text")), r"\s+")).cast("long")
            rows = ctx.lake.read("documents").select("doc_id", words.alias("words")).where(
                F.col("words") >= cfg.min_words)
            ctx.count("documents_counted", rows.count())
            bound = cfg.min_words if cfg.check_min is None else cfg.check_min
            ctx.commit("word_counts", rows, suite_settings={"min_words": bound})

    return WordCountStage


@pytest.fixture
def word_count_stage():
    cls = _define_word_count_stage()
    yield cls
    registry.unregister("wordcount")


def test_the_registry_orders_the_stages_and_puts_llm_stages_last():
    assert stage_names() == ("ingest", "decontaminate", "quality", "dedup", "refine", "label", "rewrite")
    assert stage_names(llm=True) == ("refine", "label", "rewrite")
    assert "refine" not in default_stages(load_config(environ={}))
    with pytest.raises(KeyError, match="unknown stage 'nope'; stages: ingest, decontaminate"):
        make_stage("nope")


def test_a_stage_without_a_table_spec_for_its_output_is_refused():
    class Orphan:
        name, inputs, outputs = "orphan", (), ("no_such_table",)

    with pytest.raises(ValueError, match="outputs \\['no_such_table'\\] have no table spec or suite"):
        registry.stage(after="dedup")(Orphan)
    assert "orphan" not in stage_names()


def test_a_stage_in_one_module_brings_its_config_table_and_suite(word_count_stage):
    assert stage_names()[4] == "wordcount" and "word_counts" in TABLES
    config = load_config(overrides=["wordcount.min_words=5"], environ={})
    assert config.wordcount.min_words == 5
    with pytest.raises(ConfigError, match="wordcount"):
        load_config(overrides=["wordcount.min_wrds=5"], environ={})


def test_a_registered_stage_runs_validates_and_is_ledgered(spark, tmp_path, word_count_stage):
    config = lake_config(tmp_path / "lake", f"ingest.input={CHUNKED_SAMPLE}", "ingest.extractor=resiliparse",
                         "wordcount.min_words=2")
    records = run_pipeline(config, ["ingest", "wordcount"])
    assert [r.status for r in records] == ["succeeded", "succeeded"]
    counted = spark.read.format("delta").load(str(tmp_path / "lake" / "word_counts"))
    documents = spark.read.format("delta").load(str(tmp_path / "lake" / "documents"))
    assert counted.count() == records[1].counters["documents_counted"] > 0
    assert counted.join(documents, "doc_id", "left_anti").count() == 0
    ledger = spark.read.format("delta").load(str(tmp_path / "lake" / "runs")).where("stage = 'wordcount'")
    assert ledger.first()["validation"] == "passed"

    # Its suite guards its commit like any built-in stage's: a bound the rows break commits nothing.
    strict = lake_config(tmp_path / "lake2", f"ingest.input={CHUNKED_SAMPLE}", "ingest.extractor=resiliparse",
                         "wordcount.check_min=100000")
    with pytest.raises(ValidationFailed, match="word_counts"):
        run_pipeline(strict, ["ingest", "wordcount"])
    assert spark.read.format("delta").load(str(tmp_path / "lake2" / "word_counts")).count() == 0
