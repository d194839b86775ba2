"""Two ingest parts measured alone: language ID on a bounded prefix, and FastWARC's HTTP parsing vs ours.

Input: the response records of shared/data/warc/built_from_gold_pages.warc.gz and built_from_modern2026_pages
(real HTML) plus Reuters-21578 stories rendered as pages (bench/_warcs.py, --stories N), in-process, one core.

* Language ID: fastText lid.176 on the first 20,000 characters (what ingest ran before issue 16) against
  the same model on shorter prefixes (ingest now uses 5,000) of the same extracted text (resiliparse). A decision
  is the language label; "changed" counts documents whose label differs from the 20,000-character one, and
  whose English/not-English at FineWeb's 0.65 threshold differs. Adopt a prefix only if it changes <= 0.5% of decisions.
* HTTP parsing: our `parse_http_response` (status, headers, de-chunking, bounded decompression) on each raw
  response block, against FastWARC's own parsing (ArchiveIterator(parse_http=True): status line and headers
  in C++, then the payload read as is: no de-chunking, no content decoding, no cap on decompression).
  Best of three passes, from bytes in memory; the FastWARC rows include iterating the records (the
  parse_http=False row is that alone, which ingest pays before calling ours).

Run:  .venv/bin/python bench/ingest_parts.py [--stories 3000]
Writes bench/out/ingest_parts.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import markdown_table, require_data, versions, write_json
from _warcs import write_reuters_warcs

WARCS = ("warc/built_from_gold_pages.warc.gz", "warc/built_from_modern2026_pages.warc.gz")
PREFIXES = (500, 1000, 2000, 5000)  # 5,000: what ingest uses now
FULL = 20_000  # the prefix ingest used before issue 16 (udfs/ingest/langid.py _MAX_CHARS is now 5,000)
MAX_CHANGED = 0.005


def response_blocks(paths: list[Path]) -> list[bytes]:
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    blocks = []
    for path in paths:
        with open(path, "rb") as stream:
            for record in ArchiveIterator(stream, parse_http=False, record_types=WarcRecordType.response):
                blocks.append(record.reader.read())
    return blocks


def http_rows(paths: list[Path], blocks: list[bytes]) -> list[list[Any]]:
    """Best of three passes each, from bytes in memory (no disk read in the time)."""
    import io

    from fastwarc.warc import ArchiveIterator, WarcRecordType

    from refinery.udfs.ingest.http import BodyTooLarge, parse_http_response

    def ours() -> int:
        ok = 0
        for block in blocks:
            try:
                ok += parse_http_response(block, 5_000_000).status is not None
            except BodyTooLarge:
                pass
        return ok

    files = [path.read_bytes() for path in paths]

    def fastwarc(parse: bool) -> int:
        ok = 0
        for data in files:
            for record in ArchiveIterator(io.BytesIO(data), parse_http=parse, record_types=WarcRecordType.response):
                record.reader.read()
                ok += parse and record.http_headers is not None and record.http_headers.status_code is not None
        return ok

    def best(fn, *args) -> tuple[float, int]:
        times, got = [], 0
        for _ in range(3):
            t0 = time.perf_counter()
            got = fn(*args)
            times.append(time.perf_counter() - t0)
        return min(times), got

    ours_s, ours_ok = best(ours)
    raw_s, _ = best(fastwarc, False)
    parsed_s, theirs_ok = best(fastwarc, True)
    n = len(blocks)
    return [["ours: parse_http_response (de-chunk, bounded decompression)", n, ours_ok, ours_s, n / ours_s],
            ["FastWARC: read records with parse_http=True (status + headers in C++)", n, theirs_ok, parsed_s,
             n / parsed_s],
            ["FastWARC: read records with parse_http=False (what ingest does, then ours)", n, None, raw_s, n / raw_s]]


def texts(blocks: list[bytes]) -> list[str]:
    from refinery.udfs.ingest.charset import decode_html
    from refinery.udfs.ingest.extract import extract_main_text
    from refinery.udfs.ingest.http import parse_http_response

    out = []
    for block in blocks:
        try:
            http = parse_http_response(block, 5_000_000)
            html, _ = decode_html(http.body, http.charset)
            text = extract_main_text(html, "resiliparse").text
        except Exception:  # noqa: BLE001 - a page that does not parse is not a language decision
            continue
        if text.strip():
            out.append(text)
    return out


def lid_rows(docs: list[str]) -> list[list[Any]]:
    from refinery.udfs.ingest.langid import _model

    model = _model()

    def decide(limit: int) -> tuple[list[tuple[str, float]], float]:
        best = float("inf")
        for _ in range(2):  # best of two: the machine is shared
            t0 = time.perf_counter()
            got = []
            for text in docs:
                flat = text[:limit].replace("\r", " ").replace("\n", " ")
                labels, scores = model.predict(flat, k=1)
                got.append((labels[0], float(scores[0])))
            best = min(best, time.perf_counter() - t0)
        return got, best

    full, full_s = decide(FULL)
    rows = [[f"{FULL:,} chars (before)", len(docs), 0, 0.0, 0.0, full_s, len(docs) / full_s, ""]]
    for limit in PREFIXES:
        got, seconds = decide(limit)
        label = sum(a[0] != b[0] for a, b in zip(got, full, strict=True))
        english = sum((a[0] == "__label__en" and a[1] > 0.65) != (b[0] == "__label__en" and b[1] > 0.65)
                      for a, b in zip(got, full, strict=True))
        share = label / len(docs)
        rows.append([f"{limit:,} chars", len(docs), label, share, english / len(docs), seconds,
                     len(docs) / seconds, "yes" if share <= MAX_CHANGED else "no"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stories", type=int, default=3000, help="Reuters stories rendered as pages")
    args = parser.parse_args()
    root = require_data(*WARCS)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-parts-") as tmp:
        paths = [root / w for w in WARCS] + write_reuters_warcs(Path(tmp), files=1, limit=args.stories)
        blocks = response_blocks(paths)
        http = http_rows(paths, blocks)
    docs = texts(blocks)
    lid = lid_rows(docs)
    print(markdown_table(["HTTP parsing", "records", "parsed", "seconds", "records/s"], http))
    print()
    print(markdown_table(["language ID on", "documents", "label changed", "share changed",
                          "English@0.65 changed", "seconds", "docs/s", f"<= {MAX_CHANGED:.1%} changed"], lid))
    print(f"\nload average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs; one core, "
          "in-process.")
    payload = {"load_average_at_start": load, "http": http, "lid": lid, "versions": versions("fastwarc", "fasttext")}
    print(f"wrote {write_json('ingest_parts.json', payload)}")


if __name__ == "__main__":
    main()
