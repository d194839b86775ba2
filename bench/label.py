"""The label stage: documents labelled per second through Spark's pandas UDF versus the same engine called directly
(target: < 15% overhead), and the taxonomy parser's documents per second per core (compact and teacher formats).

Same documents (the CC sample's pages, cut to fit the tiny model), same engine settings, same slices: the only
difference is Spark (scheduling, Arrow transfer to the Python worker, result collection)."""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, markdown_table, versions, write_json  # noqa: E402

SAMPLE = REPO / "data" / "sample" / "cc-main-2020-34_sample_resiliparse.warc.gz"


def sample_documents(count: int, max_chars: int):
    import pandas as pd

    from refinery.udfs.ingest.warc import FileOutcome, IngestSettings, read_warc_documents

    docs = list(read_warc_documents(str(SAMPLE), IngestSettings(extractor="resiliparse"), FileOutcome(str(SAMPLE))))
    rows = [(f"{i:032x}", docs[i % len(docs)]["text"][:max_chars], docs[i % len(docs)]["url"]) for i in range(count)]
    return pd.DataFrame(rows, columns=["doc_id", "text", "url"])


def run_direct_engine(spec, docs, settings) -> tuple[float, int]:
    """engine.generate on the same slices the UDF makes (batch_size * 4 documents per call), no parsing."""
    from refinery.udfs.llm import Sampling, get_engine

    engine = get_engine(spec)
    sampling = Sampling(max_tokens=settings.max_output_tokens, temperature=0.0)
    step = spec.batch_size * 4
    started, labelled = time.perf_counter(), 0
    for start in range(0, len(docs), step):
        part = docs.iloc[start : start + step]
        prompts = [m for d, t, u in zip(part["doc_id"], part["text"], part["url"], strict=True)
                   for m in settings.messages(d, t, u)]
        labelled += len(engine.generate(prompts, sampling))
    return time.perf_counter() - started, labelled


def run_udf_body(spec, docs, settings) -> tuple[float, int]:
    import pandas as pd

    from refinery.udfs.label.udf import label_documents

    started = time.perf_counter()
    out = pd.concat(label_documents(iter([docs]), spec, settings))
    return time.perf_counter() - started, len(out)


def run_spark(spark, spec, docs, settings) -> tuple[float, int]:
    from refinery.jobs.label import _LABELED
    from refinery.udfs.label.udf import label_documents

    df = spark.createDataFrame(docs).repartition(1).localCheckpoint(eager=True)
    started = time.perf_counter()
    out = df.mapInPandas(lambda frames: label_documents(frames, spec, settings), _LABELED)
    labelled = out.where("status IS NOT NULL").count()
    return time.perf_counter() - started, labelled


def parser_rates(seconds: float) -> list[list]:
    """Documents/s of one core: parse_compact on EAI-Distill-like outputs, parse_teacher on two long answers."""
    from refinery.udfs.label.taxonomy import CATEGORIES, compact_output, label_codes, parse_compact, parse_teacher

    rng = random.Random(0)

    def codes() -> dict:
        out = {"fdc": (f"{rng.randrange(1000):03d}.{rng.randrange(100)}", rng.choice([None, "510.71"]))}
        for category in CATEGORIES[1:]:
            values = sorted(label_codes(category))
            out[category] = (rng.choice(values), rng.choice([None, *values]))
        return out

    compact = [compact_output(codes()) for _ in range(1000)]
    filler = ("Content Analysis:\n" + "The document explains a topic in some detail. " * 60
              + "\n\nFinal Classification:\n")
    first = filler + "\n".join(
        f"{name}: {rank} Classification: {code} - label" for name, code in
        (("DDS", "513.212"), ("Bloom Cognitive Process", 2), ("Bloom Knowledge Domain", 3), ("Document Type", 3),
         ("Extraction Artifacts", 0), ("Missing Content", 0)) for rank in ("Primary", "Secondary"))
    second = filler + "\n".join(
        f"{name}: {rank} Classification: {code} - label" for name, code in
        (("Document Type", 23), ("Reasoning Depth", 2), ("Technical Correctness", 4), ("Educational Level", 1))
        for rank in ("Primary", "Secondary"))
    rows = []
    parsers = (("parse_compact (10 lines)", lambda i: parse_compact(compact[i % 1000], "stop")),
               ("parse_teacher (2 x ~3 kB answers)", lambda i: parse_teacher(first, second, ("stop", "stop"))))
    for name, parse in parsers:
        done, started = 0, time.process_time()
        while time.process_time() - started < seconds:
            for i in range(200):
                parse(done + i)
            done += 200
        elapsed = time.process_time() - started
        rows.append([name, done, elapsed, done / elapsed])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="model folder (default: build the tiny random Llama in a temp dir)")
    parser.add_argument("--documents", type=int, default=192)  # enough that Spark's fixed per-job cost amortises
    parser.add_argument("--max-chars", type=int, default=1500, help="document prefix sent (the tiny model: 2,048 "
                                                                     "positions)")
    parser.add_argument("--max-tokens", type=int, default=51, help="EAI-Distill writes ~51 tokens per label")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parser-seconds", type=float, default=3.0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import os

    import torch

    from refinery.jobs.config import load_config
    from refinery.jobs.session import get_spark
    from refinery.udfs.label.udf import LabelSettings
    from refinery.udfs.llm import EngineSpec
    from refinery.udfs.llm.tiny import build_tiny_llama

    load = os.getloadavg()
    torch.set_num_threads(1)  # PySpark's Python workers get OMP_NUM_THREADS = spark.task.cpus (1)
    docs = sample_documents(args.documents, args.max_chars)
    model = args.model or str(build_tiny_llama(Path(tempfile.mkdtemp(prefix="tiny-llama-")), list(docs["text"])))
    spec = EngineSpec(engine="transformers", model=model, device=args.device, max_model_len=2048,
                      batch_size=args.batch_size)
    settings = LabelSettings("compact", "taxonomy", None, max_output_tokens=args.max_tokens)
    config = load_config(overrides=["spark.master=local[1]", "spark.shuffle_partitions=1"], environ={})
    spark = get_spark(config.spark)
    warm = docs.head(8)  # the engine loads once in this process and once in Spark's Python worker
    run_direct_engine(spec, warm, settings)
    run_udf_body(spec, warm, settings)
    run_spark(spark, spec, warm, settings)
    modes = {"engine.generate, direct": lambda: run_direct_engine(spec, docs, settings),
             "UDF body (generate + parse), direct": lambda: run_udf_body(spec, docs, settings),
             "Spark mapInPandas (local[1])": lambda: run_spark(spark, spec, docs, settings)}
    results: dict[str, list] = {}
    for _ in range(args.repeats):  # interleaved, so drifting machine load hits every mode alike
        for name, fn in modes.items():
            results.setdefault(name, []).append(fn())
    base = statistics.median(n / s for s, n in results["engine.generate, direct"])
    table = []
    for name, runs in results.items():
        rate = statistics.median(n / s for s, n in runs)
        table.append([name, runs[0][1], statistics.median(s for s, _ in runs), rate, 100.0 * (base - rate) / base])
    header = ["mode", "documents", "seconds (median)", "labels/s", "overhead % vs direct"]
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(markdown_table(header, table))
    overhead = table[-1][-1]
    print(f"\nSpark UDF overhead: {overhead:.1f}% (target < 15%): {'met' if overhead < 15 else 'MISSED'}\n")
    parsing = parser_rates(args.parser_seconds)
    parse_header = ["parser", "documents", "CPU seconds", "documents/s per core"]
    print(markdown_table(parse_header, parsing))
    path = write_json("label.json", {
        "model": "tiny random Llama (2 layers, hidden 64)" if not args.model else args.model,
        "documents": len(docs), "max_chars": args.max_chars, "max_tokens": args.max_tokens,
        "batch_size": args.batch_size, "device": args.device, "repeats": args.repeats, "load_average": load,
        "versions": versions("torch", "transformers", "pyspark"),
        "results": [dict(zip(header, r, strict=True)) for r in table], "target_overhead_pct": 15,
        "parser": [dict(zip(parse_header, r, strict=True)) for r in parsing],
    })
    print(f"written {path}")


if __name__ == "__main__":
    main()
