"""Read one WARC file into document rows, counting every record that does not become a document."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, BinaryIO

from refinery.udfs.ids import doc_id_from_record_id, text_hash, url_host
from refinery.udfs.ingest.charset import decode_html
from refinery.udfs.ingest.extract import Extracted, ExtractionTimeout, Extractor, extract_main_text
from refinery.udfs.ingest.extract_supervisor import ExtractionCrashed, ExtractionUnavailable, shared_supervisor
from refinery.udfs.ingest.http import BodyTooLarge, parse_http_head, parse_http_response
from refinery.udfs.ingest.langid import detect_language

_HTML_TYPES = {"text/html", "application/xhtml+xml"}
_HEAD_BYTES = 1 << 16  # enough for any real status line and headers; read before deciding to read the rest
_DRAIN_BYTES = 1 << 20


@dataclass(frozen=True)
class IngestSettings:
    extractor: Extractor = "trafilatura"
    timeout_s: float | None = 10.0
    max_html_bytes: int = 5_000_000
    min_text_chars: int = 1
    crawl: str | None = None
    max_record_bytes: int = 20_000_000
    isolate_extraction: bool = True


@dataclass
class FileOutcome:
    warc_path: str
    # done | partial (damaged content after some records) | failed (not a WARC, cannot open) | failed_io (a read
    # error: transient, so the file is read again from its start by the next run)
    status: str = "done"
    error: str | None = None
    counters: Counter = field(default_factory=Counter)


class TruncatedRecord(Exception):
    pass


class _ReadTracker:
    """The file as FastWARC sees it, remembering whether storage failed (I/O) rather than the bytes (damage)."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.io_error: OSError | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            return self.raw.read(size)
        except OSError as err:
            self.io_error = err
            raise

    def close(self) -> None:
        self.raw.close()

    def __getattr__(self, name: str):  # tell, seekable, ...: FastWARC asks the file for them
        return getattr(self.raw, name)


def open_warc(path: str) -> BinaryIO:
    """Open a local path or any fsspec URI (s3://, gs://, hdfs://, abfs://) for streaming reads."""
    if "://" not in path or path.startswith("file://"):
        return open(path.removeprefix("file://"), "rb")  # noqa: SIM115 - closed by the caller
    import fsspec

    scheme, rest = path.split("://", 1)
    # Hadoop's connector names (s3a, s3n, abfss) map onto fsspec's protocols.
    scheme = {"s3a": "s3", "s3n": "s3", "abfss": "abfs", "wasbs": "abfs"}.get(scheme, scheme)
    return fsspec.open(f"{scheme}://{rest}", "rb").open()


def read_warc_documents(path: str, settings: IngestSettings, outcome: FileOutcome) -> Iterator[dict[str, Any]]:
    """Yield one dict per extracted document; record counts and damage land in `outcome`."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    counters = outcome.counters
    crawl = settings.crawl
    try:
        stream = _ReadTracker(open_warc(path))
    except Exception as err:  # noqa: BLE001 - an unreadable file is a counted outcome
        outcome.status, outcome.error = "failed", f"WARC file {path}: cannot open ({err}); check the path and access"
        counters["failed_cannot_open"] += 1
        return
    extract = _extractor(settings)
    offset = 0
    try:
        # parse_http=False: we read the raw block so a block shorter than its Content-Length
        # (a truncated file, which FastWARC ends silently) is detected.
        for record in ArchiveIterator(stream, parse_http=False):
            offset = record.stream_pos
            counters["records"] += 1
            kind = record.record_type
            if kind == WarcRecordType.warcinfo:
                info = _read_block(record, offset, _HEAD_BYTES)
                crawl = crawl or _warcinfo_crawl(info)
                continue
            if kind != WarcRecordType.response:
                counters[f"skipped_{kind}"] += 1
                _read_block(record, offset, 0)
                continue
            counters["responses"] += 1
            # Size, then status and type, are known before the payload is read: a huge or unwanted record is
            # skipped with its bytes read and dropped a megabyte at a time, never held.
            if record.content_length > settings.max_record_bytes:
                counters["skipped_too_large"] += 1
                _read_block(record, offset, 0)
                continue
            head = record.reader.read(_HEAD_BYTES)
            skip = _skip_reason(parse_http_head(head))
            if skip:
                counters[skip] += 1
                _read_block(record, offset, 0, len(head))
                continue
            block = head + _read_block(record, offset, settings.max_record_bytes, len(head))
            row = _document(record, block, offset, path, crawl or _crawl_from_path(path), settings, extract, counters)
            if row is not None:
                counters["documents"] += 1
                yield row
    except BaseException as err:
        if not _is_damage(err):
            raise
        read = counters["records"]
        if stream.io_error is not None:
            # The storage failed, not the file: nothing about its content is known, so read it all again next run.
            outcome.status = "failed_io"
            outcome.error = (f"WARC file {path}: read error near offset {offset} ({stream.io_error}); "
                             f"{counters['documents']} documents from {read} records before it are kept and the "
                             "file is read again from the start by the next run")
            counters["failed_io"] += 1
        elif read:
            outcome.status = "partial"
            outcome.error = (
                f"WARC file {path}: damaged or truncated near offset {offset} ({err}); "
                f"kept {counters['documents']} documents from {read} records read before the damage"
            )
            counters["failed_warc_damaged"] += 1
        else:
            outcome.status = "failed"
            outcome.error = f"WARC file {path}: not readable as WARC ({err}); expected a .warc or .warc.gz file"
            counters["failed_not_warc"] += 1
    finally:
        stream.close()


def _is_damage(err: BaseException) -> bool:
    # FastWARC (Rust) reports some malformed input as pyo3's PanicException, a BaseException: damage, like the rest.
    return isinstance(err, (TruncatedRecord, OSError, ValueError, EOFError)) or type(err).__name__ == "PanicException"


def _read_block(record, offset: int, keep: int, already: int = 0) -> bytes:
    """Up to `keep` bytes of the rest of the record's block; the rest is read and dropped to reach the next record.

    A block shorter than its Content-Length (a truncated file, which FastWARC ends silently) raises.
    """
    kept = record.reader.read(keep) if keep else b""
    seen = already + len(kept)
    while chunk := record.reader.read(_DRAIN_BYTES):
        seen += len(chunk)
    if seen < record.content_length:
        raise TruncatedRecord(f"record at offset {offset} has {seen} of {record.content_length} bytes")
    return kept


def _skip_reason(http) -> str | None:
    if http.status is None:
        return None  # no header end in the first bytes: decided on the whole block
    if not 200 <= http.status < 300:
        return "skipped_http_status"
    if http.content_type and http.content_type not in _HTML_TYPES:
        return "skipped_non_html"
    return None


def _extractor(settings: IngestSettings) -> Callable[[str], Extracted]:
    if settings.isolate_extraction:
        return shared_supervisor(settings.extractor, settings.timeout_s).extract
    return lambda html: extract_main_text(html, settings.extractor, settings.timeout_s)


def _document(record, block: bytes, offset: int, path: str, crawl: str, settings: IngestSettings,
              extract: Callable[[str], Extracted], counters: Counter) -> dict[str, Any] | None:
    url = record.headers.get("WARC-Target-URI")
    try:
        http = parse_http_response(block, settings.max_html_bytes)
    except BodyTooLarge:
        counters["skipped_too_large"] += 1
        return None
    if http.status is None:
        counters["skipped_non_http"] += 1
        return None
    if not 200 <= http.status < 300:
        counters["skipped_http_status"] += 1
        return None
    if not _is_html(http.content_type, http.body):
        counters["skipped_non_html"] += 1
        return None
    html, charset = decode_html(http.body, http.charset)
    try:
        extracted = extract(html)
    except ExtractionTimeout:
        counters["failed_extraction_timeout"] += 1
        return None
    except ExtractionCrashed:
        counters["failed_extraction_crashed"] += 1
        return None
    except ExtractionUnavailable:
        raise  # not the page's fault: the file stops with the cause in ingest_files.error (failed_unexpected_error)
    except Exception:  # noqa: BLE001 - one bad page is a counted outcome, not a failed task
        counters["failed_extraction_error"] += 1
        return None
    text = extracted.text
    if len(text) < settings.min_text_chars:
        counters["dropped_no_text"] += 1
        return None
    language, score = detect_language(text)
    record_id = record.record_id or f"{path}@{offset}"
    return {
        "doc_id": doc_id_from_record_id(record_id),
        "url": url,
        "host": url_host(url),
        "crawl": crawl,
        "fetch_time": _fetch_time(record),
        "title": extracted.title,
        "text": text,
        "language": language,
        "language_score": score,
        "html_bytes": len(http.body),
        "text_chars": len(text),
        "text_hash": text_hash(text),
        "charset": charset,
        "extractor": settings.extractor,
        "warc_path": path,
        "warc_record_id": record_id,
        "warc_record_offset": offset,
    }


def _is_html(content_type: str, body: bytes) -> bool:
    if content_type:
        return content_type in _HTML_TYPES
    head = body[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head


def _fetch_time(record) -> datetime | None:
    try:
        return record.record_date
    except Exception:  # noqa: BLE001 - a missing or malformed WARC-Date leaves the column null
        return None


def _warcinfo_crawl(block: bytes) -> str | None:
    for line in block.decode("utf-8", "replace").splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "ispartof" and value.strip():
            return value.strip()
    return None


def _crawl_from_path(path: str) -> str:
    name = PurePosixPath(path.split("://", 1)[-1]).name
    for suffix in (".gz", ".warc"):
        name = name.removesuffix(suffix)
    return name
