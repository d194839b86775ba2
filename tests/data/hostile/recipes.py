"""Hostile inputs, generated at test time (nothing big is committed), each with the outcome it must get.

An ingest case is one WARC file; its expected outcome is the file's `ingest_files` status and a subset of its
per-file counters (and, for pages that must survive, the documents' columns). Other cases name the stage and the
error (type and message fragment) or counter they must produce.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

_SENTENCES = [
    "The river town kept its old stone bridge long after the railway arrived in the valley.",
    "Every spring the farmers brought their lambs to the market square beside the church.",
    "A small museum near the harbour tells the story of the fishing fleet and its families.",
    "Walkers can follow the canal path for twelve miles before it reaches the next village.",
    "The library opened in the autumn of that year with four thousand books and two reading rooms.",
    "Local volunteers restored the mill wheel, and it now grinds flour for the bakery on weekends.",
    "Visitors often stop at the bakery for bread before climbing the hill to the ruined castle.",
    "The council published a plan to protect the wetlands where herons nest every summer.",
]


def article_html(title: str = "A river town", paragraphs: int = 6, extra_body: str = "") -> str:
    paras = "".join(
        "<p>" + " ".join(_SENTENCES[(i + j) % len(_SENTENCES)] for j in range(4)) + "</p>\n" for i in range(paragraphs)
    )
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{title}</title></head><body>"
            f"<article><h1>{title}</h1>\n{paras}{extra_body}</article></body></html>")


def http_block(body: bytes, headers: dict[str, str | None] | None = None, status: str = "200 OK",
               sep: bytes = b"\r\n") -> bytes:
    headers = {"Content-Type": "text/html; charset=utf-8", **(headers or {})}
    lines = [f"HTTP/1.1 {status}".encode()] + [f"{k}: {v}".encode() for k, v in headers.items() if v is not None]
    return sep.join(lines) + sep + sep + body


def warc_record(block: bytes, uri: str = "http://example.com/", kind: str = "response",
                content_length: int | None = None, headers: dict[str, str | None] | None = None) -> bytes:
    fields = {
        "WARC-Type": kind,
        "WARC-Record-ID": f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, uri + kind + str(len(block)))}>",
        "WARC-Date": "2024-05-01T12:00:00Z",
        "WARC-Target-URI": uri,
        "Content-Type": "application/http; msgtype=response" if kind in ("response", "request") else "text/plain",
        "Content-Length": str(len(block) if content_length is None else content_length),
        **(headers or {}),
    }
    head = "WARC/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items() if v is not None) + "\r\n"
    return head.encode() + block + b"\r\n\r\n"


def warc_gz(*records: bytes) -> bytes:
    """One gzip member per record, as crawlers write .warc.gz."""
    return b"".join(gzip.compress(r, compresslevel=1, mtime=0) for r in records)


def page(uri: str, body: bytes, **http_headers: str) -> bytes:
    return warc_record(http_block(body, {k.replace("_", "-"): v for k, v in http_headers.items()}), uri)


def zeros_bomb(kind: str, size: int) -> bytes:
    """`size` bytes of '<' compressed with `kind`: a few kB or MB that expand past any sane cap."""
    chunk = b"<" * (1 << 20)
    if kind in ("gzip", "deflate"):
        comp = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | (16 if kind == "gzip" else 0))
        return b"".join(comp.compress(chunk) for _ in range(size >> 20)) + comp.flush()
    if kind == "br":
        import brotli

        comp = brotli.Compressor(quality=1)
        return b"".join(comp.process(chunk) for _ in range(size >> 20)) + comp.finish()
    if kind == "zstd":
        import zstandard

        comp = zstandard.ZstdCompressor(level=1).compressobj()
        return b"".join(comp.compress(chunk) for _ in range(size >> 20)) + comp.flush()
    raise ValueError(kind)


def encode(kind: str, data: bytes) -> bytes:
    if kind == "gzip":
        return gzip.compress(data, mtime=0)
    if kind == "deflate":
        return zlib.compress(data)
    if kind == "deflate-raw":
        comp = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        return comp.compress(data) + comp.flush()
    if kind == "br":
        import brotli

        return brotli.compress(data)
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    raise ValueError(kind)


@dataclass(frozen=True)
class IngestCase:
    """One WARC file: the status its `ingest_files` row must get and counters it must contain."""

    name: str
    build: Callable[[], bytes]
    counters: dict[str, int]
    status: str = "done"
    suffix: str = ".warc.gz"
    doc: dict[str, object] = field(default_factory=dict)  # columns the document of `url` must have
    url: str | None = None
    note: str = ""

    @property
    def file(self) -> str:
        """Single-record cases with the same outcome share one file (fewer Spark tasks). Every record gets exactly
        one outcome, so a file whose records all got the expected one shows that each case did."""
        outcome = [k for k in self.counters if k not in ("records", "responses")]
        single = self.counters == _one(**{outcome[0]: 1}) if len(outcome) == 1 else False
        if single and self.status == "done" and self.suffix == ".warc.gz":
            return f"all_{outcome[0]}.warc.gz"
        return f"{self.name}{self.suffix}"


def _html(**kw) -> bytes:
    return article_html(**kw).encode()


def _one(counters: dict[str, int] | None = None, **more: int) -> dict[str, int]:
    return {"records": 1, "responses": 1, **(counters or {}), **more}


DOC = {"documents": 1}


def _encoded_page(kind: str, header: str | None = None) -> bytes:
    body = encode(kind, _html(title=f"Encoded {kind}"))
    return warc_gz(page(f"http://enc.example/{kind}", body, Content_Encoding=header or kind.split("-")[0]))


def _bomb(kind: str, size: int) -> bytes:
    return warc_gz(page(f"http://bomb.example/{kind}", zeros_bomb(kind, size), Content_Encoding=kind))


def three_pages() -> bytes:
    return warc_gz(*(page(f"http://trunc.example/{i}", _html(title=f"Page {i}")) for i in range(3)))


def _truncated_mid_record() -> bytes:
    data = three_pages()
    last = len(warc_gz(page("http://trunc.example/2", _html(title="Page 2"))))
    return data[: len(data) - last // 2]


def _wrong_length_short() -> bytes:
    # Content-Length says 40 bytes fewer than the block: the next "record" starts inside the HTML.
    block = http_block(_html(title="Short length"))
    return warc_record(block, "http://len.example/short", content_length=len(block) - 40) + warc_record(
        http_block(_html(title="After")), "http://len.example/after")


def _wrong_length_long() -> bytes:
    first = page("http://len.example/ok", _html(title="Fine page"))
    block = http_block(_html(title="Long length"))
    return first + warc_record(block, "http://len.example/long", content_length=len(block) + 5000)


def _fifty_mb_page() -> bytes:
    filler = "<p>" + "word " * 200 + "</p>\n"
    body = article_html(extra_body=filler * (50_000_000 // len(filler))).encode()
    return warc_gz(page("http://big.example/50mb", body))


def _six_mb_page() -> bytes:
    filler = "<p>" + "word " * 200 + "</p>\n"
    return warc_gz(page("http://big.example/6mb", article_html(extra_body=filler * 6000).encode()))


def _binary_as_html() -> bytes:
    noise = hashlib.shake_256(b"hostile").digest(200_000)
    return warc_gz(page("http://bin.example/noise.html", noise, Content_Type="text/html"))


def _png_as_html() -> bytes:
    png = b"\x89PNG\r\n\x1a\n" + hashlib.shake_256(b"png").digest(50_000)
    return warc_gz(page("http://bin.example/image", png, Content_Type="text/html; charset=utf-8"))


def _deep_nesting(depth: int = 100_000) -> bytes:
    body = article_html(extra_body="<div>" * depth + "deep text" + "</div>" * depth).encode()
    return warc_gz(page("http://deep.example/", body))


def _long_line() -> bytes:
    words = " ".join(f"w{i % 997}x" for i in range(200_000))[:1_000_000]
    body = article_html(extra_body=f"<p>{words}</p>").encode()
    return warc_gz(page("http://line.example/", body))


def _nul_bytes() -> bytes:
    html = article_html(title="Nul bytes").replace("market square", "market\x00square").encode()
    return warc_gz(page("http://nul.example/", html.replace(b"</article>", b"\x00" * 1000 + b"</article>")))


def _utf16(bom: bool, label: str | None) -> bytes:
    html = article_html(title="Utf16").replace('<meta charset="utf-8">', "")
    data = html.encode("utf-16-le")
    body = (b"\xff\xfe" + data) if bom else data
    ctype = "text/html" + (f"; charset={label}" if label else "")
    return warc_gz(page(f"http://utf16.example/{bom}{label}", body, Content_Type=ctype))


def _cp1252_labelled_utf8() -> bytes:
    html = article_html(title="Grüße aus Köln").replace('<meta charset="utf-8">', "")
    return warc_gz(page("http://charset.example/lie", html.encode("cp1252"), Content_Type="text/html; charset=utf-8"))


def _unknown_charset() -> bytes:
    return warc_gz(page("http://charset.example/unknown", _html(title="Schöne Grüße"),
                        Content_Type="text/html; charset=x-no-such-charset"))


def slow_html() -> str:
    """A page trafilatura works on for seconds, mostly inside lxml: thousands of sibling tables of links."""
    cell = "<td><a href='/x'>link text here</a> some words <b>bold</b></td>"
    table = "<table>" + ("<tr>" + cell * 8 + "</tr>") * 40 + "</table>\n"
    return article_html(extra_body=table * 150)


def _slow_page() -> bytes:
    return warc_gz(page("http://slow.example/", slow_html().encode()),
                   page("http://slow.example/next", _html(title="After the slow page")))


def _not_warc() -> bytes:
    return b"this is a plain text file that someone named .warc.gz by mistake\n" * 100


def _png_file() -> bytes:
    return b"\x89PNG\r\n\x1a\n" + hashlib.shake_256(b"png-file").digest(10_000)


def _other_records() -> bytes:
    return warc_gz(
        warc_record(b"software: hostile\r\nisPartOf: HOSTILE-1\r\n", "", kind="warcinfo"),
        warc_record(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "http://kinds.example/", kind="request"),
        warc_record(b"fetchTimeMs: 12\r\n", "http://kinds.example/", kind="metadata"),
        warc_record(http_block(b""), "http://kinds.example/", kind="revisit"),
        warc_record(_html(), "http://kinds.example/r", kind="resource"),
        page("http://kinds.example/", _html(title="Kinds")),
    )


def _huge_non_html(size: int) -> bytes:
    body = b"\0" * size
    return warc_gz(page("http://bin.example/blob", body, Content_Type="application/octet-stream"))


def _corrupt_middle() -> bytes:
    data = warc_gz(*(page(f"http://corrupt.example/{i}", _html(title=f"Corrupt {i}")) for i in range(3)))
    first = len(warc_gz(page("http://corrupt.example/0", _html(title="Corrupt 0"))))
    return data[:first] + b"\x1f\x8b\x08\x00garbage" * 50 + data[first:]


def _chunked(bad: bool) -> bytes:
    html = _html(title="Chunked")
    if bad:
        body = b"zz-not-a-size\r\n" + html
    else:
        body = b"".join(b"%x\r\n%s\r\n" % (len(html[i:i + 500]), html[i:i + 500]) for i in range(0, len(html), 500))
        body += b"0\r\n\r\n"
    return warc_gz(page(f"http://chunk.example/{bad}", body, Transfer_Encoding="chunked"))


INGEST_CASES: list[IngestCase] = [
    IngestCase("plain_page", lambda: warc_gz(page("http://plain.example/", _html())), _one(DOC)),
    IngestCase("plain_uncompressed_warc", lambda: page("http://plain.example/u", _html()), _one(DOC),
               suffix=".warc"),
    IngestCase("gzip_body", lambda: _encoded_page("gzip"), _one(DOC)),
    IngestCase("deflate_zlib_body", lambda: _encoded_page("deflate"), _one(DOC)),
    IngestCase("deflate_raw_body", lambda: _encoded_page("deflate-raw", "deflate"), _one(DOC)),
    IngestCase("brotli_body", lambda: _encoded_page("br"), _one(DOC)),
    IngestCase("zstd_body", lambda: _encoded_page("zstd"), _one(DOC)),
    IngestCase("gzip_then_br_body", lambda: warc_gz(page("http://enc.example/two", encode(
        "br", encode("gzip", _html(title="Two codings"))), Content_Encoding="gzip, br")), _one(DOC)),
    IngestCase("gzip_label_plain_body", lambda: warc_gz(page("http://enc.example/lie", _html(),
                                                             Content_Encoding="gzip")), _one(DOC),
               note="crawlers store the decoded body and keep the header"),
    IngestCase("unknown_content_coding", lambda: warc_gz(page("http://enc.example/compress", _html(),
                                                              Content_Encoding="compress")), _one(DOC)),
    IngestCase("gzip_bomb_256mb", lambda: _bomb("gzip", 256 << 20), _one(skipped_too_large=1)),
    IngestCase("deflate_bomb_64mb", lambda: _bomb("deflate", 64 << 20), _one(skipped_too_large=1)),
    IngestCase("brotli_bomb_64mb", lambda: _bomb("br", 64 << 20), _one(skipped_too_large=1)),
    IngestCase("zstd_bomb_64mb", lambda: _bomb("zstd", 64 << 20), _one(skipped_too_large=1)),
    IngestCase("page_50mb", _fifty_mb_page, _one(skipped_too_large=1),
               note="Content-Length over ingest.max_record_bytes: skipped before its payload is read"),
    IngestCase("page_6mb", _six_mb_page, _one(skipped_too_large=1), note="over ingest.max_html_bytes"),
    IngestCase("non_html_30mb", lambda: _huge_non_html(30 << 20), _one(skipped_too_large=1)),
    IngestCase("non_html_8mb", lambda: _huge_non_html(8 << 20), _one(skipped_non_html=1),
               note="type known from the first 64 kB: the rest is never held"),
    IngestCase("truncated_gzip_mid_record", _truncated_mid_record, {"records": 3, "documents": 2,
                                                                   "failed_warc_damaged": 1}, status="partial"),
    IngestCase("corrupt_bytes_between_members", _corrupt_middle, {"documents": 1, "failed_warc_damaged": 1},
               status="partial"),
    IngestCase("not_a_warc_text_file", _not_warc, {"failed_not_warc": 1}, status="failed"),
    IngestCase("png_named_warc", _png_file, {"failed_not_warc": 1}, status="failed"),
    IngestCase("empty_file", lambda: b"", {"records": 0}, note="nothing to read: done with no records"),
    IngestCase("content_length_too_long", _wrong_length_long, {"records": 2, "documents": 1,
                                                               "failed_warc_damaged": 1}, status="partial",
               suffix=".warc"),
    IngestCase("content_length_too_short", _wrong_length_short, {"records": 1, "documents": 1,
                                                                 "failed_warc_damaged": 1}, status="partial",
               suffix=".warc"),
    IngestCase("empty_response_record", lambda: warc_gz(warc_record(b"", "http://empty.example/")),
               _one(skipped_non_http=1)),
    IngestCase("empty_http_body", lambda: warc_gz(page("http://empty.example/body", b"")), _one(dropped_no_text=1)),
    IngestCase("http_404", lambda: warc_gz(warc_record(http_block(_html(), status="404 Not Found"),
                                                       "http://status.example/404")), _one(skipped_http_status=1)),
    IngestCase("http_301", lambda: warc_gz(warc_record(http_block(b"", {"Location": "/x"}, "301 Moved"),
                                                       "http://status.example/301")), _one(skipped_http_status=1)),
    IngestCase("pdf_response", lambda: warc_gz(page("http://pdf.example/a.pdf", b"%PDF-1.4 ...",
                                                    Content_Type="application/pdf")), _one(skipped_non_html=1)),
    IngestCase("not_http_block", lambda: warc_gz(warc_record(b"just some bytes, no status line",
                                                             "http://nohttp.example/")), _one(skipped_non_http=1)),
    IngestCase("lf_only_http_headers", lambda: warc_gz(warc_record(http_block(_html(), sep=b"\n"),
                                                                   "http://lf.example/")), _one(DOC)),
    IngestCase("no_content_type_html", lambda: warc_gz(page("http://ct.example/", _html(), Content_Type=None)),
               _one(DOC)),
    IngestCase("other_record_kinds", _other_records,
               {"records": 6, "skipped_request": 1, "skipped_metadata": 1, "skipped_revisit": 1,
                "skipped_resource": 1, "documents": 1},
               url="http://kinds.example/", doc={"crawl": "HOSTILE-1"}),
    IngestCase("no_record_id_bad_date", lambda: warc_gz(warc_record(
        http_block(_html(title="No id")), "http://noid.example/",
        headers={"WARC-Record-ID": None, "WARC-Date": "yesterday"})), _one(DOC),
               url="http://noid.example/", doc={"fetch_time": None}),
    IngestCase("binary_noise_as_html", _binary_as_html, _one(dropped_no_text=1)),
    IngestCase("png_served_as_html", _png_as_html, _one(dropped_no_text=1)),
    IngestCase("charset_header_lies_utf8", _cp1252_labelled_utf8, _one(DOC),
               url="http://charset.example/lie", doc={"charset": "cp1252"}),
    IngestCase("charset_unknown_label", _unknown_charset, _one(DOC),
               url="http://charset.example/unknown", doc={"charset": "utf-8"}),
    IngestCase("utf16_with_bom", lambda: _utf16(True, None), _one(DOC),
               url="http://utf16.example/TrueNone", doc={"charset": "utf-16-le"}),
    IngestCase("utf16_labelled_no_bom", lambda: _utf16(False, "utf-16le"), _one(DOC),
               url="http://utf16.example/Falseutf-16le", doc={"charset": "utf-16-le"}),
    IngestCase("nul_bytes", _nul_bytes, _one(DOC)),
    IngestCase("html_nested_100k_deep", _deep_nesting, _one(DOC)),
    IngestCase("one_million_char_line", _long_line, _one(DOC)),
    IngestCase("chunked_body", lambda: _chunked(False), _one(DOC)),
    IngestCase("chunked_header_unchunked_body", lambda: _chunked(True), _one(DOC)),
    IngestCase("extraction_runs_past_budget", _slow_page, {"records": 2, "failed_extraction_timeout": 1,
                                                           "documents": 1},
               note="the child process is killed and replaced; the batch goes on"),
]


def write_ingest_cases(folder: Path) -> dict[str, list[IngestCase]]:
    """Write the ingest cases as WARC files (see IngestCase.file); returns path -> the cases in it."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[IngestCase]] = {}
    for case in INGEST_CASES:
        files.setdefault(str(folder / case.file), []).append(case)
    for path, cases in files.items():
        with open(path, "wb") as out:
            for case in cases:
                out.write(case.build())  # concatenated gzip members are one valid .warc.gz
    return files


def expected_file_outcome(cases: list[IngestCase]) -> tuple[str, dict[str, int]]:
    counters: dict[str, int] = {}
    for case in cases:
        for key, n in case.counters.items():
            counters[key] = counters.get(key, 0) + n
    return cases[0].status, counters


# ---- cases for the other stages: (name, what to do, the outcome) ----------------------------------------------

def broken_benchmark(folder: Path) -> tuple[Path, int]:
    """A benchmark file with 5 good rows and 4 broken ones (bad JSON, a list, none of the fields, a string)."""
    good = [{"question": f"What does the river town keep after the railway arrived number {i}?",
             "answer": "its old stone bridge over the water in the quiet green valley"} for i in range(5)]
    lines = [json.dumps(r) for r in good] + ['{"question": "unterminated', "[1, 2, 3]", '{"other": "field"}',
                                             '"just a string"']
    path = folder / "broken.jsonl"
    path.write_text("\n".join(lines) + "\n")
    yaml_path = folder / "benchmarks.yaml"
    yaml_path.write_text(f"benchmarks:\n  - name: broken\n    path: {path}\n    fields: [question, answer]\n")
    return yaml_path, 4


def missing_benchmark(folder: Path) -> Path:
    yaml_path = folder / "missing.yaml"
    yaml_path.write_text(f"benchmarks:\n  - name: ghost\n    path: {folder}/no_such_*.jsonl\n    fields: [q]\n")
    return yaml_path


# (overrides, config-file text or None, fragment the ConfigError must contain)
CONFIG_CASES: list[tuple[str, list[str], str | None, str]] = [
    ("typo_in_key", ["ingest.extracter=resiliparse"], None, "ingest.extracter: unknown key"),
    ("typo_in_section", ["ingset.extractor=resiliparse"], None, "ingset: unknown key"),
    ("bad_enum_value", ["ingest.extractor=goose"], None, "ingest.extractor"),
    ("negative_record_cap", ["ingest.max_record_bytes=-1"], None, "ingest.max_record_bytes"),
    ("string_for_bool", ["ingest.isolate_extraction=maybe"], None, "ingest.isolate_extraction"),
    ("yaml_not_a_mapping", [], "- just\n- a list\n", "top level must be a mapping"),
    ("yaml_syntax_error", [], "ingest:\n  extractor: [unclosed\n", "not valid YAML"),
    ("set_without_equals", ["ingest.extractor"], None, "expected key=value"),
]


def foreign_model_files(folder: Path) -> dict[str, Path]:
    """Model files of another format where a fastText .bin is expected."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "gzip_file_as_model": folder / "model.bin.gz",
        "json_as_model": folder / "config.json",
        "empty_model": folder / "empty.bin",
        "safetensors_as_model": folder / "model.safetensors",
    }
    files["gzip_file_as_model"].write_bytes(gzip.compress(b"not a model" * 100))
    files["json_as_model"].write_text(json.dumps({"architectures": ["BertForSequenceClassification"]}))
    files["empty_model"].write_bytes(b"")
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    files["safetensors_as_model"].write_bytes(len(header).to_bytes(8, "little") + header + os.urandom(8))
    return files
