"""Quality stage on real sample pages: signals, reasons, counters, classifier scores, buckets, view, re-runs."""

from pathlib import Path

import pytest

from refinery.jobs.base import InputError, run_stage
from refinery.jobs.config import ClassifierConfig
from refinery.jobs.ingest import IngestStage
from refinery.jobs.quality import QualityStage
from refinery.jobs.storage import Lakehouse
from refinery.jobs.train_quality import train
from refinery.udfs.quality.rules import all_quality_signals, quality_drop_reasons
from refinery.udfs.quality.train import TrainSettings

from .conftest import CC_SAMPLE, lake_config

DATA = Path(__file__).parent / "data" / "quality"


@pytest.fixture(scope="module")
def scored(spark, tmp_path_factory):
    base = tmp_path_factory.mktemp("quality")
    model = base / "clean.bin"
    train([str(DATA / "davidson_neither.jsonl.gz")], [str(DATA / "davidson_offensive.jsonl.gz")], str(model),
          settings=TrainSettings(dim=16, bucket=20_000))
    config = lake_config(base / "lake", "ingest.extractor=resiliparse", "quality.pii=true",
                         f"quality.classifiers=[{{name: clean, path: {model}}}]", "quality.bucket.buckets=4")
    run_stage(IngestStage(input_glob=str(CC_SAMPLE)), spark, config)
    record = run_stage(QualityStage(), spark, config)
    return config, Lakehouse(spark, config.storage), record, model


def test_every_document_gets_signals_reasons_and_counted_outcomes(scored):
    _, lake, record, _ = scored
    docs = {r.doc_id: r.text for r in lake.read("documents").collect()}
    rows = {r.doc_id: r for r in lake.read("quality").collect()}
    assert record.status == "succeeded" and record.validation == "passed"
    assert set(rows) == set(docs) and record.rows_in == record.rows_out == len(docs)
    reasons = {}
    for doc_id, row in rows.items():
        expected = quality_drop_reasons(all_quality_signals(docs[doc_id]))  # the pure function, outside Spark
        assert row.drop_reasons == expected and row.keep == (not expected)
        assert row.gopher_quality.words == all_quality_signals(docs[doc_id])["gopher_words"]
        for reason in expected:
            reasons[reason] = reasons.get(reason, 0) + 1
    c = record.counters
    assert c["kept"] == sum(r.keep for r in rows.values()) and c["kept"] + c["dropped"] == len(rows)
    assert reasons and all(c[f"dropped_{k}"] == v for k, v in reasons.items())
    assert c["pii_emails_anonymised"] == sum(r.pii_emails for r in rows.values())


def test_classifier_scores_and_percentile_buckets(scored):
    _, lake, record, _ = scored
    rows = lake.read("quality").collect()
    scores = [r.quality_score for r in rows]
    assert all(r.scores["clean"] == r.quality_score for r in rows) and record.counters["scored_clean"] == len(rows)
    assert all(0.0 <= s <= 1.0 for s in scores)
    buckets = [r.quality_bucket for r in rows]
    assert set(buckets) <= {0, 1, 2, 3} and len(set(buckets)) >= 3
    # Buckets are monotone in the score: a higher score never sits in a lower bucket.
    ordered = sorted(rows, key=lambda r: r.quality_score)
    assert all(a.quality_bucket <= b.quality_bucket for a, b in zip(ordered, ordered[1:], strict=False))


def test_rethresholding_is_a_where_clause_on_the_view(scored, spark):
    _, lake, _, _ = scored
    assert "documents_quality" in lake.register_views()
    loose = spark.sql("SELECT count(*) FROM documents_quality WHERE gopher_quality.words >= 20").first()[0]
    strict = spark.sql("SELECT count(*) FROM documents_quality WHERE gopher_quality.words >= 200").first()[0]
    expected = sum(r.gopher_quality.words >= 200 for r in lake.read("quality").collect())
    assert strict == expected < loose


def test_rerun_scores_nothing_and_new_settings_rescore(scored, spark):
    config, lake, _, model = scored
    again = run_stage(QualityStage(), spark, config)
    assert again.rows_in == 0
    stricter = config.model_copy(deep=True)
    stricter.quality.pii = False
    rescored = run_stage(QualityStage(), spark, stricter)
    assert rescored.rows_in == lake.read("documents").count()
    assert lake.read("quality").where("pii_emails IS NOT NULL").count() == 0


def test_missing_model_fails_before_any_task_naming_the_path(scored, spark, tmp_path):
    config, _, _, _ = scored
    broken = config.model_copy(deep=True)
    broken.quality.classifiers[0].path = str(tmp_path / "missing.bin")
    with pytest.raises(InputError, match=r"classifier 'clean'.*missing\.bin: file not found"):
        run_stage(QualityStage(), spark, broken)


def test_a_row_whose_signals_failed_is_written_with_a_counted_reason(spark, tmp_path):
    from refinery.schemas.tables import QUALITY

    config = lake_config(tmp_path / "lake")
    lake = Lakehouse(spark, config.storage)
    lake.create(QUALITY)
    row = {f.name: None for f in QUALITY.schema.fields}
    row.update(doc_id="d" * 32, keep=False, drop_reasons=["failed_signals"], settings_hash="0" * 32, run_id="r")
    lake.merge(QUALITY.name, spark.createDataFrame([row], QUALITY.schema))  # null signal structs are accepted
    assert lake.read(QUALITY.name).first().gopher_quality is None


def _tiny_hf_classifier(folder: Path, texts: list[str]) -> Path:
    """A FineWeb-Edu style regression head (one output), BERT-shaped and tiny, with a word-level tokenizer over
    the texts' own words: built and saved here, nothing downloaded."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    words = sorted({w for t in texts for w in t.lower().split()})[:2000]
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *words])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2),
                                                                                                  ("[SEP]", 3)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]",
                                        cls_token="[CLS]", sep_token="[SEP]", model_max_length=128)
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=128, num_labels=1))
    path = folder / "edu"
    tokenizer.save_pretrained(path)
    model.save_pretrained(path)
    return path


def test_hugging_face_classifier_scores_every_document_through_the_stage(scored, spark, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    config, lake, _, _ = scored
    docs = {r.doc_id: r.text for r in lake.read("documents").collect()}
    path = _tiny_hf_classifier(tmp_path, list(docs.values()))
    # the same forward pass outside Spark, one document at a time (no padding), is the expected score
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModelForSequenceClassification.from_pretrained(path)
    model.train(False)
    with torch.inference_mode():
        expected = {d: model(**tokenizer(t[:2000], truncation=True, max_length=64, return_tensors="pt")).logits[0, 0]
                    .item() for d, t in docs.items() if t.strip()}
    threshold = sorted(expected.values())[len(expected) // 2]
    edu = config.model_copy(deep=True)
    edu.quality.pii = False
    edu.quality.classifiers = [ClassifierConfig(name="edu", kind="hf", path=str(path), min_score=threshold,
                                                max_chars=2000, max_length=64, batch_size=4)]
    record = run_stage(QualityStage(), spark, edu)
    assert record.status == "succeeded" and record.counters["scored_edu"] == len(expected)
    rows = {r.doc_id: r for r in lake.read("quality").collect()}
    assert set(rows) == set(docs)
    for doc_id, score in expected.items():
        assert rows[doc_id].scores["edu"] == pytest.approx(score, abs=1e-4)
        assert rows[doc_id].quality_score == rows[doc_id].scores["edu"]
        assert ("classifier_edu" in rows[doc_id].drop_reasons) == (rows[doc_id].scores["edu"] < threshold)
    assert record.counters["dropped_classifier_edu"] == sum(s < threshold for s in expected.values()) > 0
