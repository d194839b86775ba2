"""A pipeline driver for crash-recovery tests and bench/crash_recovery.py: run it in a child process, SIGKILL it
at a named point (REFINERY_KILL_AT, see jobs/ledger.kill_point), run it again, and compare the tables.

    python -m tests.crash_driver LAKE_ROOT MODEL_DIR
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "cc-main-2020-34_sample_resiliparse.warc.gz"
# Its one page that passes quality is contaminated by the tiny benchmark (below); this sample's pages pass, so
# rewrite gets seeds (and two commit groups, which the last kill point needs).
SEEDS = REPO / "data" / "sample" / "wget-2024_dolma_sample-0000.warc.gz"
STAGES = ["ingest", "decontaminate", "quality", "dedup", "rewrite"]
# Columns that name a run or a moment, not content: excluded from the row hashes.
VOLATILE = {"run_id", "ingested_at", "generation_ms", "worker", "task_id", "engine_loads"}
MIX = "{wrap_medium: 2.0, nemotron_diverse_qa: 1.0}"


def benchmarks_file(folder: Path) -> Path:
    """A small benchmark set (three sample pages' openings, so some documents are contaminated): building the
    shipped 2.7M n-grams would take most of each run."""
    from refinery.udfs.ingest.warc import FileOutcome, IngestSettings, read_warc_documents

    items = folder / "tiny_benchmark.jsonl"
    if not items.exists():
        folder.mkdir(parents=True, exist_ok=True)
        docs = read_warc_documents(str(SAMPLE), IngestSettings(extractor="resiliparse"), FileOutcome(str(SAMPLE)))
        texts = [" ".join(d["text"].split()[:60]) for d in docs if len(d["text"].split()) > 80][:3]
        items.write_text("".join(json.dumps({"q": t}) + "\n" for t in texts))
        (folder / "benchmarks.yaml").write_text(f"benchmarks:\n  - name: tiny\n    path: {items}\n    fields: [q]\n")
    return folder / "benchmarks.yaml"


def overrides(root: str, model: str, master: str = "local[2]") -> list[str]:
    bench = benchmarks_file(Path(root).parent / "benchmarks")
    return [f"storage.root={root}", f"spark.master={master}", "spark.shuffle_partitions=2",
            f"decontaminate.benchmarks_file={bench}",
            "ingest.extractor=resiliparse", f"ingest.input={SAMPLE},{SEEDS}",
            f"llm.model={model}", "llm.model_name=tiny-llama", "llm.max_model_len=1024", "llm.batch_size=4",
            "llm.sampling.temperature=0.0", f"rewrite.mix={MIX}", "rewrite.max_chunks_per_doc=1",

            "rewrite.max_seeds=6", "rewrite.max_output_tokens=8", "rewrite.commit_every=3", "rewrite.partitions=2"]


def run_child(root: str, model: str, kill_at: str | None = None, env: dict | None = None,
              master: str = "local[2]", timeout: float = 1800) -> int:
    """The pipeline in a fresh driver process; its exit code (-9 when a kill point fired)."""
    child_env = {**os.environ, **(env or {})}
    child_env.pop("REFINERY_KILL_AT", None)
    child_env.pop("REFINERY_DRIVER_PID", None)
    if kill_at:
        child_env["REFINERY_KILL_AT"] = kill_at
    cmd = [sys.executable, "-m", "tests.crash_driver", root, model, master]
    return subprocess.run(cmd, cwd=REPO, env=child_env, timeout=timeout, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode


def table_digests(spark, root: str) -> dict[str, set[tuple[str, str]]]:
    """Per table: {(key, sha256 of the row's non-volatile columns)}, for row-for-row comparison."""
    from refinery.jobs.config import load_config
    from refinery.jobs.storage import Lakehouse
    from refinery.schemas.tables import TABLES

    lake = Lakehouse(spark, load_config(overrides=[f"storage.root={root}"], environ={}).storage)
    out = {}
    for name, spec in TABLES.items():
        if name in ("runs", "locks") or not lake.exists(name):
            continue
        rows = lake.read(name).collect()
        out[name] = {(json.dumps([r[k] for k in spec.key], default=str),
                      hashlib.sha256(json.dumps({c: r[c] for c in r.asDict() if c not in VOLATILE},
                                                sort_keys=True, default=str).encode()).hexdigest())
                     for r in rows}
    return out


def main(argv: list[str]) -> None:
    from refinery.jobs.config import load_config
    from refinery.jobs.main import run_pipeline

    root, model = argv[:2]
    master = argv[2] if len(argv) > 2 else "local[2]"
    config = load_config(overrides=overrides(root, model, master), environ={})
    records = run_pipeline(config, STAGES)
    print(json.dumps({r.stage: {"status": r.status, "resumed_rows": r.counters.get("resumed_rows", 0)}
                      for r in records}))


if __name__ == "__main__":
    main(sys.argv[1:])
