"""Real documents as WARC crawls for the whole-pipeline benchmarks: Reuters-21578 stories rendered as web pages.

Each story (title, dateline, paragraphs) becomes an HTML page with the boilerplate a news site wraps around an
article (navigation, a related-links box, a footer), so the extractor has real work to do. `copies` > 1 adds
copies with small edits (another URL, a changed sentence, a different footer), as a weekly crawl refetches pages:
near duplicates for dedup, exact text for the rest. The gold pages' WARC (real HTML) can be added beside them.

    from _warcs import write_reuters_warcs
    paths = write_reuters_warcs(folder, files=4, copies=2, skip_every=100)   # 99% of the stories, 2 copies
    extra = write_reuters_warcs(folder2, files=1, only_every=100)            # the held-back 1%: new pages
"""

from __future__ import annotations

import gzip
import html
import io
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from _common import require_data

CORPUS = "corpus/reuters21578.jsonl.gz"
GOLD_WARC = "warc/built_from_gold_pages.warc.gz"

_NAV = ("<nav><ul><li><a href='/'>Home</a></li><li><a href='/markets'>Markets</a></li><li><a href='/world'>World"
        "</a></li><li><a href='/business'>Business</a></li><li><a href='/about'>About us</a></li></ul></nav>")
_FOOTERS = ("<footer><p>Copyright 1987 Reuters. All rights reserved.</p><a href='/terms'>Terms of use</a></footer>",
            "<footer><p>(c) Reuters 1987 | <a href='/privacy'>Privacy</a> | <a href='/contact'>Contact</a></p>"
            "</footer>")


def stories(limit: int | None = None) -> list[dict]:
    """Reuters-21578 articles with non-empty text, in corpus order."""
    rows = []
    with gzip.open(require_data(CORPUS) / CORPUS, "rt", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if (rec.get("text") or "").strip():
                rows.append(rec)
                if limit and len(rows) >= limit:
                    break
    return rows


def render(story: dict, copy: int = 0) -> str:
    """One story as a news page; copy k > 0 changes one sentence and the footer (a near duplicate)."""
    paragraphs = [p.strip() for p in story["text"].replace("\r", "").split("\n    ") if p.strip()]
    if copy and paragraphs:
        rng = random.Random(f"{story['newid']}-{copy}")
        i = rng.randrange(len(paragraphs))
        paragraphs[i] = f"{paragraphs[i]} (Updated, revision {copy}.)"
    title = html.escape(story.get("title") or f"Reuters story {story['newid']}")
    body = "\n".join(f"<p>{html.escape(' '.join(p.split()))}</p>" for p in paragraphs)
    related = "".join(f"<li><a href='/topic/{html.escape(t)}'>More on {html.escape(t)}</a></li>"
                      for t in (story.get("topics") or ["news"])[:5])
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title></head><body>"
            f"{_NAV}<main><article><h1>{title}</h1><p class='dateline'>{html.escape(story.get('dateline') or '')}"
            f"</p>{body}</article><aside><h2>Related</h2><ul>{related}</ul></aside></main>"
            f"{_FOOTERS[copy % len(_FOOTERS)]}</body></html>")


def _pages(rows: list[dict], copies: int) -> Iterator[tuple[str, str]]:
    for copy in range(copies):
        for story in rows:
            suffix = f"?rev={copy}" if copy else ""
            yield f"https://reuters.example/1987/story-{story['newid']}{suffix}", render(story, copy)


def write_warcs(folder: Path, pages: Iterator[tuple[str, str]], files: int, prefix: str = "reuters") -> list[Path]:
    """Pages round-robin into `files` gzipped WARCs of HTTP 200 response records (warcio)."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{prefix}-{i:03d}.warc.gz" for i in range(files)]
    handles = [open(p, "wb") for p in paths]
    writers = [WARCWriter(h, gzip=True) for h in handles]
    date = datetime(2026, 12, 1, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        for n, (url, page) in enumerate(pages):
            payload = page.encode("utf-8")
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                               ("Content-Length", str(len(payload)))], protocol="HTTP/1.1")
            record = writers[n % files].create_warc_record(url, "response", payload=io.BytesIO(payload),
                                                           http_headers=http, warc_headers_dict={"WARC-Date": date})
            writers[n % files].write_record(record)
    finally:
        for h in handles:
            h.close()
    return paths


def write_reuters_warcs(folder: Path, files: int = 4, copies: int = 1, limit: int | None = None,
                        skip_every: int = 0, only_every: int = 0, prefix: str = "reuters") -> list[Path]:
    """Stories (optionally all but every `skip_every`-th, or only every `only_every`-th) in `copies` as WARCs."""
    rows = stories(limit)
    if skip_every:
        rows = [r for i, r in enumerate(rows) if i % skip_every != skip_every - 1]
    if only_every:
        rows = [r for i, r in enumerate(rows) if i % only_every == only_every - 1]
    return write_warcs(folder, _pages(rows, copies), files, prefix)


def gold_warc() -> Path:
    """The real HTML of the gold extraction pages, as one WARC (shared/data)."""
    return require_data(GOLD_WARC) / GOLD_WARC
