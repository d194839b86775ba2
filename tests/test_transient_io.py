"""A read error mid-file is `failed_io` and the next run reads the file again, without duplicating documents."""

from __future__ import annotations

import errno

import fsspec
import pytest
from fsspec.implementations.local import LocalFileSystem

from refinery.jobs.base import run_stage
from refinery.jobs.ingest import IngestStage
from refinery.jobs.storage import Lakehouse
from refinery.udfs.warc import FileOutcome, IngestSettings, read_warc_documents

from .conftest import CC_SAMPLE, lake_config

FAST = IngestSettings(extractor="resiliparse", timeout_s=30, isolate_extraction=False)


class _FailingFile:
    """A file whose storage fails with EIO once `fail_at` bytes were read (a dropped NFS or object-store read)."""

    def __init__(self, raw, fail_at: int):
        self.raw, self.fail_at = raw, fail_at

    def read(self, size: int = -1) -> bytes:
        if self.raw.tell() >= self.fail_at:
            raise OSError(errno.EIO, "Input/output error")
        return self.raw.read(size if 0 <= size <= self.fail_at else self.fail_at - self.raw.tell())

    def close(self) -> None:
        self.raw.close()


class FlakyFileSystem(LocalFileSystem):
    """Local files behind `flaky://`, failing mid-file: a real filesystem through fsspec, with a real EIO."""

    protocol = ("flaky",)
    fail_at = 0

    @classmethod
    def _strip_protocol(cls, path):
        return "/" + str(path).removeprefix("flaky://").lstrip("/")

    def _open(self, path, mode="rb", **kwargs):
        return _FailingFile(open(path, "rb"), self.fail_at)  # noqa: SIM115 - closed by the reader


@pytest.fixture
def flaky():
    fsspec.register_implementation("flaky", FlakyFileSystem, clobber=True)
    yield FlakyFileSystem
    FlakyFileSystem.fail_at = 0


def test_a_read_error_mid_file_is_failed_io_not_partial(flaky):
    full = list(read_warc_documents(str(CC_SAMPLE), FAST, FileOutcome(str(CC_SAMPLE))))
    flaky.fail_at = CC_SAMPLE.stat().st_size // 2
    path = f"flaky://{CC_SAMPLE}"
    outcome = FileOutcome(path)
    docs = list(read_warc_documents(path, FAST, outcome))
    assert outcome.status == "failed_io" and outcome.counters["failed_io"] == 1
    assert "Input/output error" in outcome.error and "read again" in outcome.error and "offset" in outcome.error
    assert 0 < len(docs) < len(full)
    assert [d["doc_id"] for d in docs] == [d["doc_id"] for d in full[: len(docs)]]


def test_damaged_content_stays_partial(tmp_path):
    data = CC_SAMPLE.read_bytes()
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(data[: len(data) // 2])
    outcome = FileOutcome(str(cut))
    list(read_warc_documents(str(cut), FAST, outcome))
    assert outcome.status == "partial" and outcome.counters["failed_io"] == 0


def test_the_next_run_reads_a_failed_io_file_again_without_duplicates(spark, tmp_path):
    # Run 1 read half of the file before its storage failed; run 2 finds the file whole.
    warc = tmp_path / "warcs" / CC_SAMPLE.name
    warc.parent.mkdir()
    warc.write_bytes(CC_SAMPLE.read_bytes()[: CC_SAMPLE.stat().st_size // 2])
    config = lake_config(tmp_path / "lake", "ingest.extractor=resiliparse", "ingest.isolate_extraction=false")
    lake = Lakehouse(spark, config.storage)
    run_stage(IngestStage(input_glob=str(warc)), spark, config)
    first = lake.read("documents").count()
    # What run 1 writes when the read fails rather than the bytes: the file's row says failed_io.
    lake.table("ingest_files").update(set={"status": "'failed_io'"})
    warc.write_bytes(CC_SAMPLE.read_bytes())
    again = run_stage(IngestStage(input_glob=str(warc)), spark, config)
    docs = lake.read("documents")
    assert again.counters["skipped_already_ingested"] == 0
    assert again.counters["dropped_already_present"] == first > 0
    assert docs.count() == docs.select("doc_id").distinct().count() > first
    assert [r.status for r in lake.read("ingest_files").collect()] == ["done"]
    third = run_stage(IngestStage(input_glob=str(warc)), spark, config)
    assert third.counters["skipped_already_ingested"] == 1
