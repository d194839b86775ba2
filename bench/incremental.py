"""Incremental runs: ingest -> decontaminate -> quality -> dedup from empty, then again after a WARC of 1% new pages.

Input: Reuters-21578 stories rendered as news pages (bench/_warcs.py), every 100th story held back, in 4 WARCs,
plus the gold pages' WARC; then one WARC of the held-back stories (1% new documents). `--copies N` renders every
story N times with small edits (near duplicates), for N times the documents. Each stage is timed by its
RunRecord (JVM start-up excluded; validation and MERGEs included), all in one Spark session per code version.

Printed per stage: the first run's seconds, the second run's seconds and their ratio (target <= 10%), and the
first run of today's main on the same input, run from a `git worktree` of that commit in a subprocess (target: this
branch's first run not slower by more than 10%). The benchmark-index cache lives under the lake root, so each first
run builds it and each second run reuses it (as a scheduled run on one lake does).

Run:  .venv/bin/python bench/incremental.py [--copies 3] [--main-commit 4c473e0] [--set key=value ...]
Writes bench/out/incremental.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, markdown_table, versions, write_json

STAGES = ("ingest", "decontaminate", "quality", "dedup")
# resiliparse: the ingest stage's faster extractor keeps a full run within minutes on a shared 2-core machine.
DEFAULT_SETTINGS = ("ingest.extractor=resiliparse", "spark.master=local[2]")


def worker(lake: str, inputs: list[str], settings: list[str]) -> None:
    """Runs in a subprocess with one code version importable as `refinery`: one pipeline run per input glob."""
    from refinery.jobs.config import load_config
    from refinery.jobs.main import run_pipeline

    config = load_config(overrides=[f"storage.root={lake}", *settings])
    runs = []
    for glob in inputs:
        started = time.perf_counter()
        records = run_pipeline(config, list(STAGES), input_glob=glob)
        runs.append({"wall_s": time.perf_counter() - started,
                     "stages": {r.stage: {"seconds": r.seconds, "status": r.status, "rows_in": r.rows_in,
                                          "rows_out": r.rows_out} for r in records}})
    print("RESULT " + json.dumps(runs))


def _run(code: Path, shim: Path | None, lake: Path, inputs: list[str], settings: list[str]) -> list[dict]:
    env = dict(os.environ)
    if shim is not None:  # the other checkout's code as `refinery`, in the driver and in Spark's workers
        env["PYTHONPATH"] = f"{shim}{os.pathsep}{env.get('PYTHONPATH', '')}"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--lake", str(lake),
           "--inputs", json.dumps(inputs), "--settings", json.dumps(settings)]
    done = subprocess.run(cmd, cwd=code, env=env, capture_output=True, text=True)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode or line is None:
        sys.exit(f"run in {code} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(line.removeprefix("RESULT "))


def _main_checkout(commit: str, folder: Path) -> tuple[Path, Path]:
    """A worktree of `commit`, and a folder whose sitecustomize points this venv's editable `refinery` install at
    it (after the .pth files ran: in the driver and in Spark's Python workers, which inherit PYTHONPATH)."""
    tree = folder / "main-tree"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), commit], check=True,
                   capture_output=True)
    (tree / "deploy" / "jars").symlink_to((REPO / "deploy" / "jars").resolve())
    shim = folder / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(f"""import sys
for name, module in list(sys.modules.items()):
    if name.startswith("__editable___refinery") and hasattr(module, "MAPPING"):
        for key, path in module.MAPPING.items():
            module.MAPPING[key] = path.replace({str(REPO)!r}, {str(tree)!r})
        for key, paths in module.NAMESPACES.items():
            module.NAMESPACES[key] = [p.replace({str(REPO)!r}, {str(tree)!r}) for p in paths]
""")
    return tree, shim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--lake")
    parser.add_argument("--inputs")
    parser.add_argument("--settings", default="[]")
    parser.add_argument("--main-commit", default="4c473e0",
                        help="main before the stage engine v2, for the first-run comparison")
    parser.add_argument("--copies", type=int, default=1,
                        help="copies of the stories with small edits (1: 20,336 documents; 3: 59,772)")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()
    if args.worker:
        worker(args.lake, json.loads(args.inputs), json.loads(args.settings))
        return

    from _warcs import gold_warc, write_reuters_warcs

    settings = [*DEFAULT_SETTINGS, *args.overrides]
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-incremental-") as tmp:
        folder = Path(tmp)
        base = write_reuters_warcs(folder / "base", files=4, copies=args.copies, skip_every=100)
        added = write_reuters_warcs(folder / "added", files=1, copies=args.copies, only_every=100,
                                    prefix="reuters-new")
        first_glob = ",".join(str(p) for p in [*base, gold_warc()])
        second_glob = first_glob + "," + ",".join(str(p) for p in added)
        ours = _run(REPO, None, folder / "lake-branch", [first_glob, second_glob], settings)
        tree, shim = _main_checkout(args.main_commit, folder)
        try:
            peer = _run(tree, shim, folder / "lake-main", [first_glob], settings)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
    rows = []
    for stage in STAGES:
        first, second = ours[0]["stages"][stage], ours[1]["stages"][stage]
        main_first = peer[0]["stages"][stage]
        rows.append([stage, first["rows_in"], first["seconds"], second["rows_in"], second["seconds"],
                     f"{second['seconds'] / first['seconds']:.1%}", main_first["seconds"],
                     f"{first['seconds'] / main_first['seconds'] - 1:+.1%}"])
    total = [sum(r["stages"][s]["seconds"] for s in STAGES) for r in (ours[0], ours[1], peer[0])]
    rows.append(["all four", "", total[0], "", total[1], f"{total[1] / total[0]:.1%}", total[2],
                 f"{total[0] / total[2] - 1:+.1%}"])
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs; "
          f"copies: {args.copies}; settings: {' '.join(settings)}")
    print(markdown_table(["stage", "1st rows in", "1st run s", "2nd rows in", "2nd run s", "2nd/1st",
                          f"main {args.main_commit} 1st s", "1st vs main"], rows))
    write_json("incremental.json", {"load_average": load, "copies": args.copies, "settings": settings, "branch": ours,
                               "main": peer, "main_commit": args.main_commit,
                               "versions": versions("pyspark", "delta-spark")})


if __name__ == "__main__":
    main()
