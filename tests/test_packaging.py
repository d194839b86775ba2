"""The wheel: what it carries, that an installed copy finds its shipped files, and that imports are declared."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("jobs", "udfs", "schemas", "conf", "refinery")
# Modules that only optional engines import, always lazily (inside a function), and the extra that declares them.
OPTIONAL = {"torch": ("llm", "torch"), "transformers": ("llm", "transformers"), "tokenizers": ("llm", "tokenizers"),
            "vllm": ("gpu", "vllm")}


def _name(requirement: str) -> str:
    for stop in "<>=!~;[ ":
        requirement = requirement.split(stop)[0]
    return requirement.strip().lower().replace("_", "-").replace(".", "-")


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """`python -m build` (sdist, then the wheel from the sdist), offline: the venv's setuptools builds it."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
                   check=True, capture_output=True)
    [built] = out.glob("refinery-*.whl")
    return built


def test_wheel_carries_conf_and_the_shipped_benchmarks(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ("conf/pipeline.yaml", "conf/filters.yaml", "conf/benchmarks.yaml", "conf/prompts/wrap.yaml",
                 "conf/prompts/refine/teacher.yaml", "conf/prompts/taxonomy/eai_teacher.yaml",
                 "conf/taxonomy/eai_labels.csv", "conf/mixes/real_only.yaml"):
        assert f"refinery/{path}" in names, path
    shipped = {p.name for p in (ROOT / "data/benchmarks").glob("*.jsonl.gz")}
    assert len(shipped) == 12
    assert {n.removeprefix("refinery/data/benchmarks/") for n in names
            if n.startswith("refinery/data/benchmarks/")} == shipped
    assert not [n for n in names if "data/sample" in n]  # the sample WARCs stay in the checkout


_PROBE = """
import json, refinery
from importlib import resources
from refinery.jobs.benchmark_index import benchmark_files, resolve
from refinery.jobs.config import BenchmarkEntry, load_benchmarks, load_config
load_config()
shipped = [resolve(path) for _, path in benchmark_files(load_benchmarks())]
mine = [path for _, path in benchmark_files([BenchmarkEntry(name="mine", path="mine/*.jsonl", fields=["q"])])]
conf = resources.files("refinery.conf")
print(json.dumps({"package": refinery.__file__, "shipped": shipped, "mine": mine,
                  "csv": str(conf.joinpath("taxonomy/eai_labels.csv")), "prompt": str(conf.joinpath("prompts"))}))
"""


def test_installed_wheel_finds_its_files_from_another_directory(wheel, tmp_path):
    target, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, capture_output=True)
    (elsewhere / "mine").mkdir(parents=True)
    (elsewhere / "mine/b.jsonl").write_text('{"q": "a user benchmark"}\n')
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run([sys.executable, "-c", _PROBE], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["package"].startswith(str(target))  # the installed copy, not the checkout
    assert len(found["shipped"]) == 12
    assert all(p.startswith(str(target / "refinery/data/benchmarks")) for p in found["shipped"])
    assert found["mine"] == [str(elsewhere / "mine/b.jsonl")]  # a user's relative path still means the cwd
    assert found["csv"].startswith(str(target)) and found["prompt"].startswith(str(target))


def _imports() -> dict[str, list[tuple[str, bool]]]:
    """Top-level third-party module -> [(file, imported at module level)]."""
    found: dict[str, list[tuple[str, bool]]] = {}
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text())
            top = {id(node) for node in tree.body}
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    module = name.split(".")[0]
                    if module not in sys.stdlib_module_names and module != "refinery":
                        found.setdefault(module, []).append((f"{folder}/{path.relative_to(ROOT / folder)}",
                                                             id(node) in top))
    return found


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = {extra: {_name(r) for r in reqs} for extra, reqs in project["optional-dependencies"].items()}
    return {_name(r) for r in project["dependencies"]}, extras


def _undeclared(imports: dict[str, list[tuple[str, bool]]], base: set[str], extras: dict[str, set[str]]) -> list[str]:
    owners = packages_distributions()
    problems = []
    for module, where in sorted(imports.items()):
        if module in OPTIONAL:
            extra, dist = OPTIONAL[module]
            if dist not in extras.get(extra, set()):
                problems.append(f"{module}: declare {dist} in the {extra} extra")
            if eager := [file for file, top in where if top]:
                problems.append(f"{module}: optional, but imported at module level by {eager}")
        elif not {_name(d) for d in owners.get(module, [])} & base:
            problems.append(f"{module} ({owners.get(module, 'not installed')}) imported by {where[0][0]}")
    return problems


def test_every_imported_module_is_a_declared_dependency():
    imports = _imports()
    assert {"pyspark", "delta", "yaml", "requests", "torch"} <= set(imports)  # the walk sees the code
    assert _undeclared(imports, *_declared()) == []


def test_the_dependency_check_catches_what_it_should():
    base, extras = _declared()
    assert _undeclared({"pytest": [("jobs/x.py", True)]}, base, extras) == [
        "pytest (['pytest']) imported by jobs/x.py"]
    assert _undeclared({"torch": [("udfs/x.py", True)]}, base, extras) == [
        "torch: optional, but imported at module level by ['udfs/x.py']"]
    assert _undeclared({"vllm": [("udfs/x.py", False)]}, base, {**extras, "gpu": set()}) == [
        "vllm: declare vllm in the gpu extra"]
