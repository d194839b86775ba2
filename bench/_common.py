"""Helpers shared by the bench scripts: where the shared data lives, table printing, JSON output."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "bench" / "out"


def shared_data() -> Path | None:
    """shared/data next to the checkout (or $REFINERY_SHARED_DATA); None when absent."""
    root = Path(os.environ.get("REFINERY_SHARED_DATA") or REPO.parent / "shared" / "data")
    return root if root.is_dir() else None


def require_data(*relative: str) -> Path:
    """The shared data root, or exit 0 with a message when it (or a needed part of it) is missing."""
    root = shared_data()
    missing = [r for r in relative if root is None or not (root / r).exists()]
    if root is None or missing:
        where = os.environ.get("REFINERY_SHARED_DATA") or REPO.parent / "shared" / "data"
        print(f"skipped: benchmark data not found ({where}; missing {', '.join(missing) or 'the folder'}). "
              "It lives in the project's shared/ folder, not in the repository; set REFINERY_SHARED_DATA "
              "to its data/ folder to run this benchmark.")
        sys.exit(0)
    return root


def versions(*packages: str) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max([len(str(h)), *(len(r[i]) for r in cells)]) for i, h in enumerate(header)]
    lines = ["| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return "" if value is None else str(value)


def write_json(name: str, payload: dict[str, Any]) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / name
    payload = {"generated_at": datetime.now(UTC).isoformat(timespec="seconds"), "host_cpus": os.cpu_count(),
               **payload}
    path.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
    return path
