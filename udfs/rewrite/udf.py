"""The rewrite stage's two pandas UDF bodies: plan (assign styles, chunk) and generate (LLM + post-processing).

Both take and yield pandas DataFrames, so they run under Spark's mapInPandas or directly in a test or bench."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
import xxhash

from refinery.udfs.llm import EngineSpec, Sampling, get_engine, load_counts, loads_of
from refinery.udfs.llm.base import counter_of, load_tokenizer
from refinery.udfs.rewrite.postprocess import postprocess
from refinery.udfs.rewrite.styles import Style, assign_styles, chunk_text, synth_id

PLAN_COLUMNS = ["synth_id", "doc_id", "chunk_index", "chunk_count", "style_id", "style_version", "input_tokens",
                "chunk"]
GENERATED_COLUMNS = ["synth_id", "doc_id", "chunk_index", "chunk_count", "style_id", "style_version", "sampling",
                     "text", "raw_text", "input_tokens", "prompt_tokens", "output_tokens", "finish_reason", "status",
                     "error", "generation_ms", "worker", "task_id", "engine_loads"]


@dataclass(frozen=True)
class PlanSettings:
    styles: dict[str, Style]
    mixes: tuple[dict[str, float], ...]  # indexed by the row's `route`
    styles_per_doc: int
    seed: int
    model: str
    max_chunks_per_doc: int | None


@dataclass(frozen=True)
class GenerateSettings:
    styles: dict[str, Style]
    temperature: float
    top_p: float
    seed: int
    max_output_tokens: int | None  # caps every style's own limit


def plan_chunks(frames: Iterator[pd.DataFrame], spec: EngineSpec, settings: PlanSettings) -> Iterator[pd.DataFrame]:
    """(doc_id, text, route) rows -> one row per (chunk, style) to rewrite; only the tokenizer is loaded here."""
    count = counter_of(load_tokenizer(spec))
    for frame in frames:
        rows = []
        for doc_id, text, route in zip(frame["doc_id"], frame["text"], frame["route"], strict=True):
            for style_id in assign_styles(doc_id, settings.mixes[int(route)], settings.styles_per_doc, settings.seed):
                style = settings.styles[style_id]
                chunks = chunk_text(text or "", style.chunking.max_input_tokens, count, style.chunking.split_on)
                sizes = count(chunks)
                kept = [(i, c, n) for i, (c, n) in enumerate(zip(chunks, sizes, strict=True))
                        if n >= style.chunking.min_input_tokens][: settings.max_chunks_per_doc]
                rows += [(synth_id(doc_id, i, style.id, style.version, settings.model), doc_id, i, len(chunks),
                          style.id, style.version, n, chunk) for i, chunk, n in kept]
        yield pd.DataFrame(rows, columns=PLAN_COLUMNS)


def generate_chunks(frames: Iterator[pd.DataFrame], spec: EngineSpec,
                    settings: GenerateSettings) -> Iterator[pd.DataFrame]:
    """Plan rows -> generated rows; the engine is loaded once per Python worker and kept for later tasks."""
    _pin_task_gpus()
    engine = get_engine(spec)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    task_id = _task_id()
    if engine.batches_itself:
        # vLLM schedules its own batches: the whole partition in one call keeps its running batch full
        frames = whole_partition(frames)
    # Several engine batches per call, so the engine can group prompts of similar length.
    slice_rows = spec.batch_size * 4
    for frame in frames:
        out = []
        if engine.batches_itself and len(frame):
            out.append(_generate_rows(engine, frame, settings))
        else:
            for style_id, group in frame.groupby("style_id", sort=True):
                style = settings.styles[style_id]
                for start in range(0, len(group), slice_rows):
                    out.append(_generate_slice(engine, style, group.iloc[start : start + slice_rows], settings))
        if out:
            result = pd.concat(out, ignore_index=True)
            result["worker"], result["task_id"] = worker, task_id
            result["engine_loads"] = loads_of(spec)
            yield result[GENERATED_COLUMNS]


def whole_partition(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """The partition's Arrow batches as one frame (a partition's rows fit a worker: see rewrite.partitions)."""
    frames = [f for f in frames if len(f)]
    if frames:
        yield pd.concat(frames, ignore_index=True)


def _max_tokens(style: Style, settings: GenerateSettings) -> int:
    return min(style.max_output_tokens, settings.max_output_tokens or style.max_output_tokens)


def _generate_slice(engine, style: Style, rows: pd.DataFrame, settings: GenerateSettings) -> pd.DataFrame:
    keys = list(rows["synth_id"])
    max_tokens = _max_tokens(style, settings)
    # The draw seed depends on the rows, not on the worker or the order tasks ran in.
    seed = xxhash.xxh64_intdigest(f"{settings.seed}\x1f{keys[0]}".encode()) & 0x7FFFFFFF
    sampling = Sampling(max_tokens=max_tokens, temperature=settings.temperature, top_p=settings.top_p, seed=seed)
    started = time.monotonic()
    outputs = engine.generate([style.messages(c) for c in rows["chunk"]], sampling)
    share_ms = int((time.monotonic() - started) * 1000 / max(len(keys), 1))
    return _finish(engine, rows, [style] * len(rows), outputs, share_ms, settings)


def _generate_rows(engine, rows: pd.DataFrame, settings: GenerateSettings) -> pd.DataFrame:
    """Every row in one engine call, each with its own sampling: its style's output limit and a seed of its own
    (xxhash of the run seed and synth_id), so a row draws the same text whichever rows share its batch."""
    styles = [settings.styles[s] for s in rows["style_id"]]
    samplings = [Sampling(max_tokens=_max_tokens(style, settings), temperature=settings.temperature,
                          top_p=settings.top_p,
                          seed=xxhash.xxh64_intdigest(f"{settings.seed}\x1f{key}".encode()) & 0x7FFFFFFF)
                 for style, key in zip(styles, rows["synth_id"], strict=True)]
    started = time.monotonic()
    outputs = engine.generate_rows([style.messages(c) for style, c in zip(styles, rows["chunk"], strict=True)],
                                   samplings)
    share_ms = int((time.monotonic() - started) * 1000 / max(len(rows), 1))
    return _finish(engine, rows, styles, outputs, share_ms, settings)


def _finish(engine, rows: pd.DataFrame, styles: list[Style], outputs, share_ms: int,
            settings: GenerateSettings) -> pd.DataFrame:
    """Generations -> the generated columns: row outcome, post-processed text, token counts."""
    records = []
    for key, input_tokens, style, gen in zip(rows["synth_id"], rows["input_tokens"], styles, outputs, strict=True):
        if gen.finish_reason == "error":
            status, text = f"failed_{(gen.error or 'engine_error').split(':')[0]}", None
        else:
            row_seed = xxhash.xxh64_intdigest(key.encode()) & 0x7FFFFFFF
            processed = postprocess(gen.text or "", gen.finish_reason, style.postprocess, engine.count_tokens,
                                    int(input_tokens), row_seed)
            status, text = processed.status, processed.text
        records.append((text, gen.text, gen.prompt_tokens, gen.output_tokens, gen.finish_reason, status, gen.error,
                        share_ms))
    generated = pd.DataFrame(records, columns=["text", "raw_text", "prompt_tokens", "output_tokens", "finish_reason",
                                               "status", "error", "generation_ms"], index=rows.index)
    result = pd.concat([rows.drop(columns=["chunk"]), generated], axis=1)
    result["sampling"] = [json.dumps({"temperature": settings.temperature, "top_p": settings.top_p,
                                      "max_tokens": _max_tokens(style, settings), "seed": settings.seed},
                                     sort_keys=True) for style in styles]
    return result


def _pin_task_gpus() -> None:
    """Show a worker's first engine only the GPUs Spark gave its task (spark.task.resource.gpu.amount).

    Spark assigns addresses but does not set CUDA_VISIBLE_DEVICES; it must be set before CUDA starts, so only
    the first task of a worker decides, and the reused worker keeps its model on those GPUs."""
    from pyspark import TaskContext

    context = TaskContext.get()
    gpus = context.resources().get("gpu") if context is not None else None
    if gpus is not None and not load_counts() and "CUDA_VISIBLE_DEVICES" not in os.environ:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpus.addresses)


def _task_id() -> int:
    from pyspark import TaskContext

    context = TaskContext.get()
    return int(context.taskAttemptId()) if context is not None else -1
