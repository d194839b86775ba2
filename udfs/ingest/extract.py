"""Main-text extraction from HTML with trafilatura or resiliparse, bounded in time per document."""

from __future__ import annotations

import html as html_lib
import re
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

Extractor = Literal["trafilatura", "resiliparse"]

# r"<title[^>]*>(.*?)</title\s*>" searched in two steps: that search retries every "<title" of a page full of them
# and scans to the end each time (quadratic), while only the first can match (a later one has fewer closings after it).
_TITLE_OPEN = re.compile(r"<title", re.IGNORECASE)
_TITLE_CLOSE = re.compile(r"</title\s*+>", re.IGNORECASE)
_TITLE_SCAN = 200_000


class ExtractionTimeout(BaseException):  # noqa: N818
    # BaseException, not Exception: extractors catch Exception internally and would swallow it.
    pass


@dataclass(frozen=True)
class Extracted:
    text: str
    title: str | None


def extract_main_text(html: str, extractor: Extractor = "trafilatura", timeout_s: float | None = None) -> Extracted:
    """Main text and title of one page; raises ExtractionTimeout past timeout_s."""
    with _time_limit(timeout_s):
        if extractor == "trafilatura":
            return Extracted(_trafilatura_text(html), _title(html))
        if extractor == "resiliparse":
            return _resiliparse(html)
    raise ValueError(f"unknown extractor {extractor!r}; use 'trafilatura' or 'resiliparse'")


def _trafilatura_text(html: str) -> str:
    import trafilatura
    from trafilatura.deduplication import LRU_TEST

    # deduplicate=True remembers text segments across calls in a process-wide cache, so a page's text
    # would depend on which pages the same worker extracted before it (and so on the partitioning).
    # Clearing it per page keeps the within-page deduplication and makes the output a function of the page.
    LRU_TEST.clear()
    # Recall mode, no comments or images: on the three gold sets its F1 is within 0.01 of FineWeb's precision mode
    # (datatrove's Trafilatura) on each, and it extracts faster (bench/extraction_quality.py, bench/README.md).
    text = trafilatura.extract(
        html, favor_recall=True, include_comments=False, include_images=False, deduplicate=True
    )
    return text or ""


def _resiliparse(html: str) -> Extracted:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    tree = HTMLTree.parse(html)
    text = extract_plain_text(tree, main_content=True, alt_texts=False, links=False, form_fields=False)
    title = tree.title.strip() if tree.title else None
    return Extracted(text.strip(), title or None)


def _title(html: str) -> str | None:
    html = html[:_TITLE_SCAN]
    opening = _TITLE_OPEN.search(html)
    start = html.find(">", opening.end()) + 1 if opening else 0
    closing = _TITLE_CLOSE.search(html, start) if start else None
    if not closing:
        return None
    title = " ".join(html_lib.unescape(html[start:closing.start()]).split())
    return title[:1000] or None


@contextmanager
def _time_limit(seconds: float | None):
    # SIGALRM interrupts pure-Python and lxml work alike; it is only available in the main thread,
    # which is where Spark's Python workers run a UDF. Elsewhere the page runs unbounded.
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise ExtractionTimeout(f"extraction took longer than {seconds}s")

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
