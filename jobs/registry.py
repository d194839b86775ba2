"""The stage registry: a stage is one module whose class carries `@stage(...)`; order, tables, suites and its config
section come from there, so the pipeline, the CLI, the spark-submit entries and the docs never list stages by hand.

    @stage(after="dedup", tables={SCORES: scores_suite}, config=("scores", ScoresConfig))
    class ScoresStage:
        name = "scores"; inputs = ("documents",); outputs = ("scores",)
        def execute(self, ctx): ...

`after` places it in the pipeline (stages with the same predecessor keep registration order); `llm=True` stages run
in a bare `refinery run` only when llm.model is set. `tables` declares the stage's own Delta tables with their GX
suites; `config` adds a `scores:` section (a pydantic model) to the pipeline config, so `--set scores.x=1` works.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from refinery.schemas.expectations import SUITES
from refinery.schemas.tables import TABLES, TableSpec


@dataclass(frozen=True)
class StageInfo:
    name: str
    factory: type
    after: str | None
    llm: bool
    description: str
    config: tuple[str, type] | None = None
    tables: tuple[str, ...] = field(default_factory=tuple)


_STAGES: dict[str, StageInfo] = {}
_discovered = False


def stage(*, after: str | None, llm: bool = False, tables: dict[TableSpec, Callable] | None = None,
          config: tuple[str, type] | None = None) -> Callable[[type], type]:
    """Register the decorated Stage class (it needs `name`, `inputs`, `outputs` and `execute(ctx)`)."""
    def register(cls: type) -> type:
        for spec, suite in (tables or {}).items():
            if TABLES.get(spec.name, spec) != spec:  # equal: the module ran twice (spark-submit's __main__)
                raise ValueError(f"stage {cls.name}: table {spec.name!r} is already declared by another spec")
            TABLES[spec.name] = spec
            SUITES[spec.name] = suite
        missing = [t for t in cls.outputs if t not in TABLES or t not in SUITES]
        if missing:
            raise ValueError(f"stage {cls.name}: outputs {missing} have no table spec or suite; pass them in tables=")
        doc = (cls.__doc__ or "").strip().splitlines()
        _STAGES[cls.name] = StageInfo(cls.name, cls, after, llm, doc[0] if doc else "", config,
                                      tuple(s.name for s in (tables or {})))
        return cls
    return register


def discover() -> None:
    """Import every module of refinery.jobs once, so their @stage classes register (cheap: no heavy imports)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    import refinery.jobs as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")


def stages() -> list[StageInfo]:
    """Every registered stage in pipeline order: a walk from the stage with no predecessor along `after`."""
    discover()
    children: dict[str | None, list[StageInfo]] = {}
    for info in _STAGES.values():
        children.setdefault(info.after, []).append(info)
    unknown = [i.name for i in _STAGES.values() if i.after is not None and i.after not in _STAGES]
    if unknown:
        raise ValueError(f"stages {unknown} run after a stage that is not registered")
    ordered: list[StageInfo] = []

    def walk(parent: str | None) -> None:
        for info in children.get(parent, []):
            ordered.append(info)
            walk(info.name)

    walk(None)
    # Non-LLM stages first: an LLM stage hung after `dedup` must not run before a cheap one hung after it.
    return [i for i in ordered if not i.llm] + [i for i in ordered if i.llm]


def names(llm: bool | None = None) -> tuple[str, ...]:
    return tuple(i.name for i in stages() if llm is None or i.llm == llm)


def get(name: str) -> StageInfo:
    discover()
    if name not in _STAGES:
        raise KeyError(f"unknown stage {name!r}; stages: {', '.join(names())}")
    return _STAGES[name]


def config_sections() -> dict[str, type]:
    """Config sections that stages bring themselves (beyond jobs/config.py's PipelineConfig fields)."""
    discover()
    return dict(i.config for i in _STAGES.values() if i.config is not None)


def unregister(name: str) -> None:
    """Remove a stage and its own tables (tests that register a stage clean up with this)."""
    info = _STAGES.pop(name)
    for table in info.tables:
        TABLES.pop(table, None)
        SUITES.pop(table, None)


def make(name: str, **options: Any):
    """An instance of the stage; options its constructor does not take (e.g. ingest's input glob) are dropped."""
    import inspect

    factory = get(name).factory
    accepted = inspect.signature(factory).parameters
    return factory(**{k: v for k, v in options.items() if k in accepted and v is not None})
