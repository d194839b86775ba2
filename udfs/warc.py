"""Read one WARC file into document rows, counting every record that does not become a document."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, BinaryIO

from .charset import decode_html
from .extract import ExtractionTimeout, Extractor, extract_main_text
from .http import parse_http_response
from .ids import doc_id_from_record_id, text_hash, url_host
from .langid import detect_language

_HTML_TYPES = {"text/html", "application/xhtml+xml"}


@dataclass(frozen=True)
class IngestSettings:
    extractor: Extractor = "trafilatura"
    timeout_s: float | None = 10.0
    max_html_bytes: int = 5_000_000
    min_text_chars: int = 1
    crawl: str | None = None


@dataclass
class FileOutcome:
    warc_path: str
    status: str = "done"  # done | partial (damage after some records) | failed (nothing readable)
    error: str | None = None
    counters: Counter = field(default_factory=Counter)


class TruncatedRecord(Exception):
    pass


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
        stream = open_warc(path)
    except Exception as err:  # noqa: BLE001 - an unreadable file is a counted outcome
        outcome.status, outcome.error = "failed", f"WARC file {path}: cannot open ({err}); check the path and access"
        return
    offset = 0
    try:
        # parse_http=False: we read the raw block so a block shorter than its Content-Length
        # (a truncated file, which FastWARC ends silently) is detected.
        for record in ArchiveIterator(stream, parse_http=False):
            offset = record.stream_pos
            counters["records"] += 1
            kind = record.record_type
            if kind == WarcRecordType.warcinfo:
                crawl = crawl or _warcinfo_crawl(record.reader.read())
                continue
            if kind != WarcRecordType.response:
                counters[f"skipped_{kind}"] += 1
                continue
            block = record.reader.read()
            if len(block) < record.content_length:
                raise TruncatedRecord(f"record at offset {offset} has {len(block)} of {record.content_length} bytes")
            counters["responses"] += 1
            row = _document(record, block, offset, path, crawl or _crawl_from_path(path), settings, counters)
            if row is not None:
                counters["documents"] += 1
                yield row
    except (TruncatedRecord, OSError, ValueError, EOFError) as err:
        read = counters["records"]
        if read:
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


def _document(record, block: bytes, offset: int, path: str, crawl: str, settings: IngestSettings,
              counters: Counter) -> dict[str, Any] | None:
    url = record.headers.get("WARC-Target-URI")
    http = parse_http_response(block)
    if http.status is None:
        counters["skipped_non_http"] += 1
        return None
    if not 200 <= http.status < 300:
        counters["skipped_http_status"] += 1
        return None
    if not _is_html(http.content_type, http.body):
        counters["skipped_non_html"] += 1
        return None
    if len(http.body) > settings.max_html_bytes:
        counters["failed_extraction_too_large"] += 1
        return None
    html, charset = decode_html(http.body, http.charset)
    try:
        extracted = extract_main_text(html, settings.extractor, settings.timeout_s)
    except ExtractionTimeout:
        counters["failed_extraction_timeout"] += 1
        return None
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
