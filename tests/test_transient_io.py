"""A read error mid-file is `failed_io`, not `partial` (the catalogue test checks that the next run reads it again)."""

from __future__ import annotations

import errno

import fsspec
import pytest
from fsspec.implementations.local import LocalFileSystem

from refinery.udfs.ingest.warc import FileOutcome, IngestSettings, read_warc_documents

from .conftest import CC_SAMPLE

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

    def tell(self) -> int:
        return self.raw.tell()


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
