"""Heuristic quality signals: our four filters vs datatrove's on the same extracted documents, one core, same run.

Corpus: the gold-page WARC (real HTML, extracted with resiliparse) plus Reuters-21578 stories, from ../shared/data.
Both sides compute every filter for every document (ours: all signals and all drop reasons; datatrove: its four
filters in a row on a fresh Document each, as FineWeb ran them, C4 without the terminal-punctuation rule).
Runs alternate (ours, theirs, ours, ...) and the best of `--repeats` is reported, since the machine is shared.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time

from _common import markdown_table, require_data, versions, write_json


def load_texts(root, reuters_limit: int) -> list[str]:
    from refinery.udfs.ingest.warc import FileOutcome, IngestSettings, read_warc_documents

    texts = []
    path = root / "warc" / "built_from_gold_pages.warc.gz"
    settings = IngestSettings(extractor="resiliparse")
    texts += [d["text"] for d in read_warc_documents(str(path), settings, FileOutcome(str(path)))]
    with gzip.open(root / "corpus" / "reuters21578.jsonl.gz", "rt") as handle:
        for i, line in enumerate(handle):
            if i >= reuters_limit:
                break
            text = json.loads(line).get("text") or ""
            if text.strip():
                texts.append(text)
    return texts


def ours(texts: list[str]) -> int:
    from refinery.udfs.quality.rules import all_quality_signals, quality_drop_reasons

    return sum(not quality_drop_reasons(all_quality_signals(t)) for t in texts)


def datatrove(texts: list[str]) -> int:
    from datatrove.data import Document
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    filters = [GopherRepetitionFilter(), GopherQualityFilter(), FineWebQualityFilter(),
               C4QualityFilter(filter_no_terminal_punct=False)]
    kept = 0
    for text in texts:
        kept += all(f.filter(Document(text=text, id="b")) is True for f in filters)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reuters", type=int, default=3000, help="Reuters stories added to the gold pages")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    root = require_data("warc/built_from_gold_pages.warc.gz", "corpus/reuters21578.jsonl.gz")
    texts = load_texts(root, args.reuters)
    ours(texts[:20]), datatrove(texts[:20])  # imports and spaCy's first call outside the timing
    best = {"refinery": float("inf"), "datatrove": float("inf")}
    kept = {}
    for _ in range(args.repeats):
        for name, fn in (("refinery", ours), ("datatrove", datatrove)):
            start = time.process_time()  # CPU time of this one process = time on one core
            kept[name] = fn(texts)
            best[name] = min(best[name], time.process_time() - start)
    rate = {k: len(texts) / v for k, v in best.items()}
    rows = [["datatrove 4 filters", len(texts), kept["datatrove"], f"{rate['datatrove']:.1f}", "1.00x"],
            ["refinery all signals + reasons", len(texts), kept["refinery"], f"{rate['refinery']:.1f}",
             f"{rate['refinery'] / rate['datatrove']:.2f}x"]]
    print(markdown_table(["engine", "docs", "kept", "docs/s per core", "vs datatrove"], rows))
    write_json("quality_signals", {"docs": len(texts), "kept": kept, "seconds": best, "docs_per_s": rate,
                                   "versions": versions("datatrove", "spacy")})


if __name__ == "__main__":
    main()
