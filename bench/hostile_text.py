"""Hostile text: the functions that read document text, on main's code ("before") and this checkout's ("after").

Each row is one adversarial input and one function; both sides run in this process, one core, best of
`--repeats` (CPU time of this thread, since the machine is shared). "Before" is the `udfs` package of the git
revision `--before` (default main), extracted to a temporary folder and imported under another name; a side that
runs past `--limit` seconds is reported as "> limit" and stopped (in a child process).
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

from _common import REPO, markdown_table, write_json

CASES = [  # (input name, text, function)
    ("'=' x 8,000", "=" * 8_000, "quality_text.split_into_words"),
    ("'!?' x 3,000", "!?" * 3_000, "quality_text.split_into_words"),
    ("'$' x 8,000", "$" * 8_000, "quality_text.count_sentences"),
    ("'a:' x 20,000", "a:" * 20_000, "quality_text.split_into_words"),
    ("'a-' x 5,000 + '@' (10 kB)", "a-" * 5_000 + "@", "quality_fineweb.anonymize_pii"),
    ("'a-' x 50,000 + '@' (100 kB)", "a-" * 50_000 + "@", "quality_fineweb.anonymize_pii"),
    ("'a.' x 20,000 + '@-'", "a." * 20_000 + "@-", "quality_fineweb.anonymize_pii"),
    ("'__a ' x 10,000", "__a " * 10_000, "postprocess.remove_markdown"),
    ("'[' x 20,000", "[" * 20_000, "postprocess.remove_markdown"),
    ("'\\n' x 20,000", "\n" * 20_000, "postprocess.remove_markdown"),
    ("'Answer' + 20,000 spaces + 'x'", "Answer" + " " * 20_000 + "x", "postprocess.parse_qa_pairs"),
    ("'<title>' x 20,000 (140 kB)", "<title>" * 20_000, "extract._title"),
    ("normal text: 2,000 sentences", "The cat sat on the mat, didn't it? Dr. Smith said so (at 5 p.m.). " * 2_000,
     "quality_rules.all_quality_signals"),
]


# udfs/ was flat before it was grouped by stage: CASES name the flat modules, the checkout's are these.
GROUPED = {"quality_text": "quality.text", "quality_fineweb": "quality.fineweb", "quality_rules": "quality.rules",
           "postprocess": "rewrite.postprocess", "extract": "ingest.extract"}


def load_udfs(revision: str, into: Path) -> str:
    """Extract `udfs/` of `revision` into `into` as package "udfs_<rev>"; returns the package name."""
    name = "udfs_before"
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, "udfs"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "udfs").rename(into / name)
    return name


def _call(package: str, path: str, function: str, text: str, repeats: int, out) -> None:
    if path:
        sys.path.insert(0, path)
    module_name, attr = function.rsplit(".", 1)
    grouped = package == "refinery.udfs"
    if grouped:
        module_name = GROUPED[module_name]
    fn = getattr(importlib.import_module(f"{package}.{module_name}"), attr)
    cache = importlib.import_module(f"{package}.{GROUPED['quality_text'] if grouped else 'quality_text'}")._chunk_cache
    best = float("inf")
    for _ in range(repeats):
        cache.clear()  # each run starts with the tokenizer's chunk cache cold
        start = time.thread_time()
        fn(text)
        best = min(best, time.thread_time() - start)
    out.put(best)


def timed(package: str, path: str, function: str, text: str, repeats: int, limit: float) -> float | None:
    queue = multiprocessing.Queue()
    child = multiprocessing.Process(target=_call, args=(package, path, function, text, repeats, queue))
    child.start()
    child.join(limit * repeats + 30)
    if child.is_alive():
        child.kill()
        child.join()
        return None
    return queue.get() if not queue.empty() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    # 1eda4b7: main before the linear-time fixes (flat udfs/, as the revision must be)
    parser.add_argument("--before", default="1eda4b7", help="git revision (flat udfs/) whose code is 'before'")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=float, default=60.0, help="seconds one run of one side may take")
    args = parser.parse_args()
    rows, results = [], []
    with tempfile.TemporaryDirectory() as folder:
        before = load_udfs(args.before, Path(folder))
        for label, text, function in CASES:
            old = timed(before, folder, function, text, args.repeats, args.limit)
            new = timed("refinery.udfs", "", function, text, args.repeats, args.limit)
            rows.append([label, function, f"{old:.4f}" if old is not None else f"> {args.limit:.0f}",
                         f"{new:.4f}" if new is not None else f"> {args.limit:.0f}",
                         f"{old / new:.0f}x" if old and new else ""])
            results.append({"input": label, "function": function, "before_s": old, "after_s": new})
    print(markdown_table(["input", "function", f"before ({args.before}) s", "after s", "speed-up"], rows))
    write_json("hostile_text.json", {"before": args.before, "cases": results})


if __name__ == "__main__":
    main()
