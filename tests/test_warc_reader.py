from collections import Counter
from pathlib import Path

import pytest

from refinery.udfs.ingest.warc import FileOutcome, IngestSettings, read_warc_documents

from .conftest import CC_SAMPLE, SAMPLE

FAST = IngestSettings(extractor="resiliparse", timeout_s=30)


def _warcio_record_types(path: Path) -> Counter:
    from warcio.archiveiterator import ArchiveIterator

    with open(path, "rb") as stream:
        return Counter(record.rec_type for record in ArchiveIterator(stream))


@pytest.mark.parametrize("path", sorted(SAMPLE.glob("*.warc*")), ids=lambda p: p.name)
def test_every_record_is_either_a_document_or_counted(path):
    outcome = FileOutcome(str(path))
    docs = list(read_warc_documents(str(path), FAST, outcome))
    counters = outcome.counters
    expected = _warcio_record_types(path)  # an independent WARC reader as the reference
    assert outcome.status == "done"
    assert counters["records"] == sum(expected.values())
    assert counters["responses"] == expected["response"]
    for kind in ("request", "metadata", "revisit", "resource"):
        assert counters[f"skipped_{kind}"] == expected[kind]
    outcomes = sum(n for name, n in counters.items() if name.startswith(("skipped_non", "skipped_http", "dropped_",
                                                                          "failed_extraction")))
    assert len(docs) == counters["documents"] == counters["responses"] - outcomes


def test_documents_carry_provenance_and_language():
    docs = list(read_warc_documents(str(CC_SAMPLE), FAST, FileOutcome(str(CC_SAMPLE))))
    assert {d["warc_path"] for d in docs} == {str(CC_SAMPLE)}
    assert len({d["doc_id"] for d in docs}) == len(docs)
    assert all(d["url"].startswith("http") and d["host"] and d["fetch_time"].year == 2020 for d in docs)
    assert Counter(d["language"] for d in docs).most_common(1)[0][0] == "zh"
    assert all(d["crawl"] for d in docs)


def test_truncated_gzip_keeps_the_records_before_the_damage(tmp_path):
    data = CC_SAMPLE.read_bytes()
    truncated = tmp_path / "truncated.warc.gz"
    truncated.write_bytes(data[: len(data) // 2])
    full = list(read_warc_documents(str(CC_SAMPLE), FAST, FileOutcome(str(CC_SAMPLE))))
    outcome = FileOutcome(str(truncated))
    partial = list(read_warc_documents(str(truncated), FAST, outcome))
    assert outcome.status == "partial"
    assert str(truncated) in outcome.error and "truncated" in outcome.error
    assert 0 < len(partial) < len(full)
    assert [d["doc_id"] for d in partial] == [d["doc_id"] for d in full[: len(partial)]]


def test_corrupt_bytes_mid_file_mark_the_file_partial(tmp_path):
    data = CC_SAMPLE.read_bytes()
    corrupt = tmp_path / "corrupt.warc.gz"
    corrupt.write_bytes(data[:60_000] + b"\x00not gzip\x00" * 100 + data[60_000:])
    outcome = FileOutcome(str(corrupt))
    docs = list(read_warc_documents(str(corrupt), FAST, outcome))
    assert outcome.status == "partial"
    assert outcome.counters["failed_warc_damaged"] == 1
    assert len(docs) == outcome.counters["documents"] > 0


def test_missing_file_is_a_failed_outcome_not_an_exception(tmp_path):
    outcome = FileOutcome(str(tmp_path / "nope.warc.gz"))
    assert list(read_warc_documents(outcome.warc_path, FAST, outcome)) == []
    assert outcome.status == "failed"
    assert "nope.warc.gz" in outcome.error


def test_oversized_pages_are_counted_not_extracted():
    outcome = FileOutcome(str(CC_SAMPLE))
    settings = IngestSettings(extractor="resiliparse", max_html_bytes=20_000)
    docs = list(read_warc_documents(str(CC_SAMPLE), settings, outcome))
    assert outcome.counters["skipped_too_large"] > 0
    assert all(d["html_bytes"] <= 20_000 for d in docs)
