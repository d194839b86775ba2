"""Tokens/s of the rewrite generation through Spark's pandas UDF versus the same engine called directly.

Same prompts (real sample documents chunked by a real style), same engine settings, same slices: the only
difference is Spark (scheduling, Arrow transfer to the Python worker, result collection). Target: < 15%."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, markdown_table, versions, write_json  # noqa: E402

SAMPLE = REPO / "data" / "sample" / "cc-main-2020-34_sample_resiliparse.warc.gz"


def sample_texts() -> list[str]:
    from refinery.udfs.ingest.warc import FileOutcome, IngestSettings, read_warc_documents

    docs = read_warc_documents(str(SAMPLE), IngestSettings(extractor="resiliparse"), FileOutcome(str(SAMPLE)))
    return [d["text"] for d in docs]


def plan(texts, spec, style, limit: int):
    import pandas as pd

    from refinery.udfs.rewrite.udf import PlanSettings, plan_chunks

    frame = pd.DataFrame({"doc_id": [f"{i:032x}" for i in range(len(texts))], "text": texts, "route": 0})
    settings = PlanSettings({style.id: style}, ({style.id: 1.0},), 1, 0, spec.model, 8)
    return pd.concat(plan_chunks(iter([frame]), spec, settings)).head(limit).reset_index(drop=True)


def run_direct_engine(spec, style, rows, settings) -> tuple[float, int]:
    """engine.generate on the same slices the UDF makes (batch_size * 4 prompts per call)."""
    from refinery.udfs.llm import Sampling, get_engine

    engine = get_engine(spec)
    sampling = Sampling(max_tokens=settings.max_output_tokens, temperature=0.0)
    step = spec.batch_size * 4
    started, tokens = time.perf_counter(), 0
    for start in range(0, len(rows), step):
        outs = engine.generate([style.messages(c) for c in rows["chunk"][start : start + step]], sampling)
        tokens += sum(o.output_tokens or 0 for o in outs)
    return time.perf_counter() - started, tokens


def run_direct_udf_body(spec, rows, settings) -> tuple[float, int]:
    """The UDF's own function (generation + post-processing), in this process, no Spark."""
    import pandas as pd

    from refinery.udfs.rewrite.udf import generate_chunks

    started = time.perf_counter()
    out = pd.concat(generate_chunks(iter([rows]), spec, settings))
    return time.perf_counter() - started, int(out["output_tokens"].sum())


def run_spark(spark, spec, rows, settings) -> tuple[float, int]:
    from pyspark.sql import functions as F

    from refinery.jobs.rewrite import _GENERATED, _PLAN
    from refinery.udfs.rewrite.udf import generate_chunks

    df = spark.createDataFrame(rows, _PLAN).repartition(1).localCheckpoint(eager=True)
    started = time.perf_counter()
    out = df.mapInPandas(lambda frames: generate_chunks(frames, spec, settings), _GENERATED)
    tokens = out.agg(F.sum("output_tokens")).first()[0]
    return time.perf_counter() - started, int(tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="model folder (default: build the tiny random Llama in a temp dir)")
    parser.add_argument("--style", default="wrap_medium")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch

    from refinery.jobs.config import load_config
    from refinery.jobs.session import get_spark
    from refinery.udfs.llm import EngineSpec
    from refinery.udfs.llm.tiny import build_tiny_llama
    from refinery.udfs.rewrite.styles import load_styles
    from refinery.udfs.rewrite.udf import GenerateSettings

    # PySpark starts Python workers with OMP_NUM_THREADS = spark.task.cpus (1 here): give the direct runs the
    # same number of torch threads, or the comparison measures thread counts, not Spark.
    torch.set_num_threads(1)
    texts = sample_texts()
    model = args.model or str(build_tiny_llama(Path(tempfile.mkdtemp(prefix="tiny-llama-")), texts))
    spec = EngineSpec(engine="transformers", model=model, device=args.device, max_model_len=2048,
                      batch_size=args.batch_size)
    style = load_styles()[args.style]
    settings = GenerateSettings({style.id: style}, 0.0, 1.0, 0, args.max_tokens)
    rows = plan(texts, spec, style, args.prompts)
    config = load_config(overrides=["spark.master=local[1]", "spark.shuffle_partitions=1"], environ={})
    spark = get_spark(config.spark)
    # Warm-up: the engine loads once in this process and once in Spark's Python worker (reused afterwards).
    run_direct_engine(spec, style, rows.head(16), settings)
    run_direct_udf_body(spec, rows.head(16), settings)
    run_spark(spark, spec, rows.head(16), settings)
    modes = {"engine.generate, direct": lambda: run_direct_engine(spec, style, rows, settings),
             "UDF body (generate + post-process), direct": lambda: run_direct_udf_body(spec, rows, settings),
             "Spark mapInPandas (local[1])": lambda: run_spark(spark, spec, rows, settings)}
    results = {}
    for _ in range(args.repeats):  # interleaved, so drifting machine load hits every mode alike
        for name, fn in modes.items():
            seconds, tokens = fn()
            results.setdefault(name, []).append((seconds, tokens))
    base = statistics.median(t / s for s, t in results["engine.generate, direct"])
    table = []
    for name, runs in results.items():
        tps = statistics.median(t / s for s, t in runs)
        table.append([name, len(rows), runs[0][1], statistics.median(s for s, _ in runs), tps,
                      100.0 * (base - tps) / base])
    header = ["mode", "prompts", "output tokens", "seconds (median)", "output tokens/s", "overhead % vs direct"]
    print(markdown_table(header, table))
    spark_overhead = table[-1][-1]
    print(f"\nSpark UDF overhead: {spark_overhead:.1f}% (target < 15%): {'met' if spark_overhead < 15 else 'MISSED'}")
    path = write_json("llm_udf_overhead.json", {
        "model": "tiny random Llama (2 layers, hidden 64)" if not args.model else args.model,
        "style": args.style, "prompts": len(rows), "max_tokens": args.max_tokens, "batch_size": args.batch_size,
        "device": args.device, "repeats": args.repeats, "versions": versions("torch", "transformers", "pyspark"),
        "results": [dict(zip(header, r, strict=True)) for r in table], "target_overhead_pct": 15,
    })
    print(f"written {path}")


if __name__ == "__main__":
    main()
