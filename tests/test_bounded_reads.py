"""Bounded reads: Content-Encoding bodies (gzip, deflate, br, zstd) decoded in capped steps; records sized first."""

from __future__ import annotations

import hashlib
import tracemalloc

import pytest

from refinery.udfs.ingest.http import BodyTooLarge, parse_http_response
from refinery.udfs.ingest.warc import FileOutcome, IngestSettings, read_warc_documents

from .data.hostile.recipes import article_html, encode, http_block, page, warc_gz, warc_record, zeros_bomb

FAST = IngestSettings(extractor="resiliparse", timeout_s=30, isolate_extraction=False)
HTML = article_html(title="Encoded page").encode()


def peak_python_bytes(work):
    """(result of work(), the peak bytes Python allocated meanwhile)."""
    tracemalloc.start()
    try:
        result = work()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("coding,header", [("gzip", "gzip"), ("deflate", "deflate"), ("deflate-raw", "deflate"),
                                           ("br", "br"), ("zstd", "zstd")])
def test_each_content_coding_decodes_to_the_original_html(coding, header):
    block = http_block(encode(coding, HTML), {"Content-Encoding": header})
    assert parse_http_response(block, max_body_bytes=1 << 20).body == HTML


def test_stacked_codings_are_undone_last_first():
    block = http_block(encode("zstd", encode("gzip", HTML)), {"Content-Encoding": "gzip, zstd"})
    assert parse_http_response(block, max_body_bytes=1 << 20).body == HTML


def test_a_body_not_really_in_its_coding_is_kept_as_stored():
    for header in ("gzip", "deflate", "br", "zstd"):
        assert parse_http_response(http_block(HTML, {"Content-Encoding": header})).body == HTML


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_a_decompression_bomb_stops_at_the_cap_without_holding_its_output(coding):
    block = http_block(zeros_bomb(coding, 64 << 20), {"Content-Encoding": coding})
    assert len(block) < 1 << 20
    with pytest.raises(BodyTooLarge, match="1000000-byte cap"):
        tracemalloc.start()
        try:
            parse_http_response(block, max_body_bytes=1_000_000)
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    assert peak < 8 * 1_000_000  # the cap plus a few steps, not the 64 MB the bomb expands to


def test_encoded_bodies_in_a_warc_become_the_same_documents_as_the_plain_one(tmp_path):
    codings = [("plain", None), ("gzip", "gzip"), ("deflate", "deflate"), ("deflate-raw", "deflate"),
               ("br", "br"), ("zstd", "zstd")]
    records = [page(f"http://enc.example/{name}", HTML if name == "plain" else encode(name, HTML),
                    Content_Encoding=header) for name, header in codings]
    path = tmp_path / "encoded.warc.gz"
    path.write_bytes(warc_gz(*records))
    outcome = FileOutcome(str(path))
    docs = list(read_warc_documents(str(path), FAST, outcome))
    assert outcome.status == "done" and outcome.counters["documents"] == len(codings)
    assert len({d["text"] for d in docs}) == 1 and "stone bridge" in docs[0]["text"]
    assert {d["html_bytes"] for d in docs} == {len(HTML)}


def test_a_bomb_in_a_warc_is_counted_skipped_too_large_and_the_file_goes_on(tmp_path):
    path = tmp_path / "bomb.warc.gz"
    path.write_bytes(warc_gz(page("http://bomb.example/", zeros_bomb("gzip", 64 << 20), Content_Encoding="gzip"),
                             page("http://after.example/", HTML)))
    outcome = FileOutcome(str(path))
    docs = list(read_warc_documents(str(path), IngestSettings("resiliparse", 30, max_html_bytes=2_000_000,
                                                              isolate_extraction=False), outcome))
    assert outcome.counters["skipped_too_large"] == 1
    assert [d["url"] for d in docs] == ["http://after.example/"] and outcome.status == "done"


def test_a_record_over_max_record_bytes_is_skipped_without_holding_its_payload(tmp_path):
    big = http_block(b"<html><body>" + b"x" * (30 << 20) + b"</body></html>")
    path = tmp_path / "big.warc.gz"
    path.write_bytes(warc_gz(warc_record(big, "http://big.example/"), page("http://after.example/", HTML)))
    outcome = FileOutcome(str(path))
    settings = IngestSettings("resiliparse", 30, max_record_bytes=10_000_000, isolate_extraction=False)
    docs, peak = peak_python_bytes(lambda: list(read_warc_documents(str(path), settings, outcome)))
    assert outcome.counters["skipped_too_large"] == 1 and len(docs) == 1
    assert peak < 8 << 20  # read and dropped a megabyte at a time


def test_a_non_html_record_is_skipped_after_its_headers(tmp_path):
    blob = http_block(b"\0" * (8 << 20), {"Content-Type": "application/octet-stream"})
    path = tmp_path / "blob.warc.gz"
    path.write_bytes(warc_gz(warc_record(blob, "http://blob.example/"), page("http://after.example/", HTML)))
    outcome = FileOutcome(str(path))
    docs, peak = peak_python_bytes(lambda: list(read_warc_documents(str(path), FAST, outcome)))
    assert outcome.counters["skipped_non_html"] == 1 and len(docs) == 1
    assert peak < 6 << 20


def test_truncation_inside_a_skipped_record_still_marks_the_file_partial(tmp_path):
    noise = hashlib.shake_256(b"incompressible").digest(200_000)
    blob = http_block(noise, {"Content-Type": "application/octet-stream"})
    data = warc_gz(page("http://first.example/", HTML), warc_record(blob, "http://blob.example/"))
    path = tmp_path / "cut.warc.gz"
    path.write_bytes(data[: len(data) - 50_000])
    outcome = FileOutcome(str(path))
    docs = list(read_warc_documents(str(path), FAST, outcome))
    assert outcome.status == "partial" and len(docs) == 1
    assert "offset" in outcome.error
