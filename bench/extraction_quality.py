"""Main-text extraction quality of trafilatura vs resiliparse on the shared extraction gold sets.

Runs `refinery.udfs.ingest.extract.extract_main_text` (the function the ingest stage uses) on every page of
shared/data/extraction_gold/{trafilatura, scrapinghub_aeb, modern2026_llm_gt}, decoding the gzipped HTML
with `refinery.udfs.ingest.charset.decode_html`, and scores each set the way its upstream benchmark does:

* trafilatura: hand-made `with` / `without` snippets, scored like adbar/trafilatura's evaluation
  (tests/eval_common.py): after whitespace normalisation, a `with` snippet found in the output is a true
  positive (missing: false negative), a `without` snippet found is a false positive (absent: true negative);
  precision, recall, accuracy and F1 are micro-averaged over all snippets of all pages.
* scrapinghub_aeb: 4-gram shingle precision / recall / F1 against `articleBody`, as in
  scrapinghub/article-extraction-benchmark (evaluate.py), see `shingle_counts`.
* modern2026_llm_gt: the same shingle scores against `main_content`, plus the snippet scores on its
  `with` / `without` lists. Its ground truth is LLM-generated: a secondary signal.

A page that times out (per-page limit, default 10 s) or raises counts as empty output (a full miss).
docs/s is pages / seconds spent inside extract_main_text (decoding and scoring excluded).

Run:  .venv/bin/python bench/extraction_quality.py [--limit N] [--timeout 10] [--sets ...]
Writes bench/out/extraction_quality.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import markdown_table, require_data, versions, write_json

from refinery.udfs.ingest.charset import decode_html
from refinery.udfs.ingest.extract import ExtractionTimeout, _time_limit, extract_main_text

EXTRACTORS = ("trafilatura", "resiliparse")  # what ingest.extractor offers, through extract_main_text


def _trafilatura(**options: Any):
    def run(html: str) -> str:
        import trafilatura
        from trafilatura.deduplication import LRU_TEST

        LRU_TEST.clear()  # as udfs/ingest/extract.py: the output depends on the page only
        return trafilatura.extract(html, include_comments=False, include_images=False, deduplicate=True,
                                   **options) or ""
    return run


def _justext(html: str) -> str:
    import justext

    paragraphs = justext.justext(html.encode("utf-8"), justext.get_stoplist("English"), encoding="utf-8")
    return "\n".join(p.text for p in paragraphs if not p.is_boilerplate)


def _readability(html: str) -> str:
    import html_text
    from readability import Document

    return html_text.extract_text(Document(html).summary(html_partial=True))


def _goose(html: str) -> str:
    from goose3 import Goose

    with Goose({"enable_image_fetching": False}) as goose:
        return goose.extract(raw_html=html).cleaned_text or ""


def _boilerpy3(html: str) -> str:
    from boilerpy3 import extractors

    return extractors.ArticleExtractor(raise_on_failure=False).get_content(html) or ""


def _inscriptis(html: str) -> str:
    from inscriptis import get_text

    return get_text(html)


def _html_text(html: str) -> str:
    import html_text

    return html_text.extract_text(html)


def _newspaper(html: str) -> str:
    from newspaper import Article

    article = Article("https://example.com/", language="en", fetch_images=False)
    article.download(input_html=html)
    article.parse()
    return article.text or ""


# Evaluation-only candidates (the `dev` extra installs them): name -> (html -> text). Whole-page converters
# (inscriptis, html-text) keep the boilerplate: they show the floor a main-content extractor must beat.
CANDIDATES = {
    "trafilatura balanced": _trafilatura(),
    "trafilatura favor_recall": _trafilatura(favor_recall=True),
    "trafilatura precision fast": _trafilatura(favor_precision=True, fast=True),
    "justext": _justext,
    "readability-lxml": _readability,
    "goose3": _goose,
    "boilerpy3": _boilerpy3,
    "newspaper4k": _newspaper,
    "inscriptis (whole page)": _inscriptis,
    "html-text (whole page)": _html_text,
}
GOLD = {  # set -> (annotation file, reference-text field or None)
    "trafilatura": ("gold.jsonl.gz", None),
    "scrapinghub_aeb": ("ground_truth.jsonl.gz", "articleBody"),
    "modern2026_llm_gt": ("ground_truth.jsonl.gz", "main_content"),
}
_WS = re.compile(r"\s+")
_TOKEN = re.compile(r"\w+")


def norm(text: str) -> str:
    return _WS.sub(" ", text).strip()


def snippet_counts(row: dict[str, Any], text: str) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) of one page: whitespace-normalised substring matching of its with/without snippets."""
    out = norm(text)
    withs, withouts = row.get("with") or [], row.get("without") or []
    tp = sum(norm(s) in out for s in withs)
    fp = sum(norm(s) in out for s in withouts)
    return tp, fp, len(withs) - tp, len(withouts) - fp


def shingle_counts(reference: str, predicted: str, n: int = 4) -> tuple[float, float, float]:
    """Per-page (tp, fp, fn) over 4-token shingles, as scrapinghub/article-extraction-benchmark computes them.

    Tokens are the regex `\\w+` matches (case kept, punctuation dropped); a shingle is a tuple of n
    consecutive tokens (a text of fewer than n tokens gives one shorter shingle). Shingles are compared as
    multisets: tp = sum of min(count_ref, count_pred), fp / fn = the surplus on the predicted / reference
    side. The three are then divided by their sum so every page weighs the same.
    """
    ref, pred = _shingles(reference, n), _shingles(predicted, n)
    tp = sum((ref & pred).values())
    fp = sum((pred - ref).values())
    fn = sum((ref - pred).values())
    total = tp + fp + fn
    return (tp / total, fp / total, fn / total) if total else (0.0, 0.0, 0.0)


def _shingles(text: str, n: int) -> Counter:
    tokens = _TOKEN.findall(text or "")
    return Counter(tuple(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1)) if tokens[i : i + n])


def shingle_scores(pages: list[tuple[float, float, float]]) -> dict[str, float]:
    """Upstream aggregation: precision averaged over pages with any predicted shingle, recall over pages with
    any reference shingle (an empty output thus lowers recall only), F1 = harmonic mean of the two means."""

    def page_score(hit: float, miss: float, other: float) -> float:
        if miss == other == 0:
            return 1.0
        return 0.0 if hit == miss == 0 else hit / (hit + miss)

    precisions = [page_score(tp, fp, fn) for tp, fp, fn in pages if tp + fp > 0]
    recalls = [page_score(tp, fn, fp) for tp, fp, fn in pages if tp + fn > 0]
    p = sum(precisions) / len(precisions) if precisions else 0.0
    r = sum(recalls) / len(recalls) if recalls else 0.0
    return {"shingle_precision": p, "shingle_recall": r, "shingle_f1": 2 * p * r / (p + r) if p + r else 0.0}


def snippet_scores(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    total = tp + fp + fn + tn
    return {"snippet_precision": tp / (tp + fp) if tp + fp else 0.0,
            "snippet_recall": tp / (tp + fn) if tp + fn else 0.0,
            "snippet_accuracy": (tp + tn) / total if total else 0.0,
            "snippet_f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0}


@dataclass
class SetResult:
    pages: int = 0
    timeouts: int = 0
    errors: int = 0
    empty: int = 0
    extract_seconds: float = 0.0
    snippets: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # tp, fp, fn, tn
    snippet_pages: int = 0
    shingles: list[tuple[float, float, float]] = field(default_factory=list)

    def metrics(self) -> dict[str, Any]:
        seconds = self.extract_seconds
        out: dict[str, Any] = {"pages": self.pages, "timeouts": self.timeouts, "errors": self.errors,
                               "empty_output": self.empty, "extract_seconds": round(seconds, 3),
                               "docs_per_s": self.pages / seconds if seconds else 0.0}
        if self.snippet_pages:
            out |= {"snippet_pages": self.snippet_pages, **snippet_scores(*self.snippets)}
            out["snippet_counts"] = dict(zip(("tp", "fp", "fn", "tn"), self.snippets, strict=True))
        if self.shingles:
            out |= shingle_scores(self.shingles)
        return out


def extract(html: str, extractor: str, timeout_s: float, result: SetResult) -> str:
    start = time.perf_counter()
    try:
        if extractor in CANDIDATES:
            with _time_limit(timeout_s):
                return CANDIDATES[extractor](html)
        return extract_main_text(html, extractor, timeout_s).text  # type: ignore[arg-type]
    except ExtractionTimeout:
        result.timeouts += 1
    except Exception:  # noqa: BLE001 - a failing page is a counted full miss, as in the upstream benchmarks
        result.errors += 1
    finally:
        result.extract_seconds += time.perf_counter() - start
    return ""


def evaluate_set(folder: Path, name: str, limit: int | None, timeout_s: float, extractors: list[str]
                 ) -> dict[str, SetResult]:
    annotations, reference_field = GOLD[name]
    with gzip.open(folder / annotations, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()][:limit]
    results = {ex: SetResult() for ex in extractors}
    for i, row in enumerate(rows, 1):
        html, _ = decode_html(gzip.decompress((folder / row["html_file"]).read_bytes()))
        for ex, res in results.items():
            text = extract(html, ex, timeout_s, res)
            res.pages += 1
            res.empty += not text.strip()
            if row.get("with") or row.get("without"):
                res.snippet_pages += 1
                res.snippets = [a + b for a, b in zip(res.snippets, snippet_counts(row, text), strict=True)]
            if reference_field:
                res.shingles.append(shingle_counts(row.get(reference_field) or "", text))
        if i % 100 == 0:
            print(f"  {name}: {i}/{len(rows)} pages", flush=True)
    return results


ROWS = [("pages", "pages"), ("snippet precision", "snippet_precision"), ("snippet recall", "snippet_recall"),
        ("snippet accuracy", "snippet_accuracy"), ("snippet F1", "snippet_f1"),
        ("shingle precision", "shingle_precision"), ("shingle recall", "shingle_recall"),
        ("shingle F1", "shingle_f1"), ("timeouts", "timeouts"), ("errors", "errors"),
        ("empty output", "empty_output"), ("docs/s", "docs_per_s")]


PRIMARY_F1 = {"trafilatura": "snippet_f1", "scrapinghub_aeb": "shingle_f1", "modern2026_llm_gt": "shingle_f1"}
MAX_F1_LOSS = 0.01  # the default extractor: the fastest one within this of trafilatura's F1 on every set


def available(names: list[str]) -> list[str]:
    """The extractors that run here (an evaluation-only one may not be installed: it is named and left out)."""
    found = []
    for name in names:
        try:
            if name in CANDIDATES:
                CANDIDATES[name]("<html><body><p>warm up the imports</p></body></html>")
            else:
                extract_main_text("<html><body><p>warm up</p></body></html>", name, None)  # type: ignore[arg-type]
            found.append(name)
        except ImportError as exc:
            print(f"{name}: not installed ({exc}); `pip install -e .[dev]` installs the evaluated extractors")
    return found


def choice_table(report: dict[str, dict[str, Any]], extractors: list[str]) -> tuple[list[list[Any]], str]:
    """One row per extractor: primary F1 per set, docs/s over all sets, and whether it may replace trafilatura."""
    rows, eligible = [], []
    for ex in extractors:
        f1 = {name: report[name][ex].get(PRIMARY_F1[name], 0.0) for name in report}
        pages = sum(report[name][ex]["pages"] for name in report)
        seconds = sum(report[name][ex]["extract_seconds"] for name in report)
        rate = pages / seconds if seconds else 0.0
        ok = all(f1[name] >= report[name]["trafilatura"].get(PRIMARY_F1[name], 0.0) - MAX_F1_LOSS
                 for name in report) if "trafilatura" in extractors else None
        if ok:
            eligible.append((rate, ex))
        rows.append([ex, *(f1[name] for name in report), rate, {True: "yes", False: "no", None: ""}[ok]])
    choice = max(eligible)[1] if eligible else "trafilatura"
    return rows, choice


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="only the first N pages of each set")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-page extraction limit in seconds")
    parser.add_argument("--sets", nargs="+", choices=list(GOLD), default=list(GOLD))
    parser.add_argument("--extractors", nargs="+", choices=[*EXTRACTORS, *CANDIDATES],
                        default=[*EXTRACTORS, *CANDIDATES])
    args = parser.parse_args()
    root = require_data(*(f"extraction_gold/{s}" for s in args.sets))

    extractors = available(args.extractors)  # also pays imports and lazy initialisation before timing
    report: dict[str, dict[str, Any]] = {}
    for name in args.sets:
        print(f"{name}: extracting ...", flush=True)
        results = evaluate_set(root / "extraction_gold" / name, name, args.limit, args.timeout, extractors)
        report[name] = {ex: res.metrics() for ex, res in results.items()}

    table = []
    builtin = [ex for ex in EXTRACTORS if ex in extractors]
    for name, by_ex in report.items():
        label = f"{name} (LLM-generated GT)" if name == "modern2026_llm_gt" else name
        for title, key in ROWS:
            if builtin and key in by_ex[builtin[0]]:
                table.append([label, title, *(by_ex[ex][key] for ex in builtin)])
    print()
    print(markdown_table(["set", "metric", *builtin], table))
    rows, choice = choice_table(report, extractors)
    print()
    print(markdown_table(["extractor", *(f"{n} {PRIMARY_F1[n]}" for n in report), "docs/s (all sets)",
                          f"within {MAX_F1_LOSS} of trafilatura on every set"], rows))
    print(f"\nfastest extractor within {MAX_F1_LOSS} F1 of trafilatura on every set: {choice}")
    print("\nsnippet scores: trafilatura's with/without evaluation (micro-averaged over snippets); shingle "
          "scores: article-extraction-benchmark 4-gram shingles (per page, then averaged).\n"
          "modern2026_llm_gt ground truth is LLM-generated (secondary signal). docs/s counts time inside "
          "the extractor only; timeouts and errors count as empty output.")
    path = write_json("extraction_quality.json", {
        "limit_per_set": args.limit, "timeout_s": args.timeout,
        "versions": versions("trafilatura", "resiliparse", "refinery", "justext", "readability-lxml", "goose3",
                             "boilerpy3", "newspaper4k", "inscriptis", "html-text"),
        "notes": {"modern2026_llm_gt": "ground truth is LLM-generated (gt_model field); secondary signal",
                  "failures": "timeouts and errors count as empty output (full miss)"},
        "results": report, "choice": choice,
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
