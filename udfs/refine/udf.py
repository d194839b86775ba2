"""The refine stage's prompts and its pandas UDF body: doc-level programs, then chunk-level programs for the
documents kept, parsed (udfs/refine/program.py) and executed (udfs/refine/execute.py) into one `refined` row each."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

from refinery.udfs import fs
from refinery.udfs.llm import EngineSpec, Generation, Sampling, get_engine, loads_of
from refinery.udfs.llm.base import Messages, counter_of, load_tokenizer
from refinery.udfs.llm.templates import render_ids
from refinery.udfs.refine.execute import Chunk, ChunkRules, apply_programs, doc_decision, scope_calls, split_chunks
from refinery.udfs.refine.program import NOT_ERRORS, Call, Program, ProgramLimits, parse_program

# The system turn ProX's released scripts send to both refining models.
PROX_SYSTEM = "You are a helpful, respectful and honest assistant."
ROW_COLUMNS = ["doc_id", "keep", "status", "refined_text", "doc_decision", "doc_program", "doc_truncated",
               "chunk_count", "chunk_programs", "lines_removed", "chars_removed", "normalizations", "clipped_ranges",
               "rejected_lines", "duplicate_calls", "prompt_tokens", "output_tokens", "error", "generation_ms",
               "counters", "worker", "task_id", "engine_loads"]
_CALL_FIELDS = Call._fields
_SUMMED = ("lines_removed", "chars_removed", "normalizations", "clipped_ranges", "rejected_lines", "duplicate_calls",
           "chunk_count")


class PromptError(ValueError):
    """A refine prompt file is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class RefinePrompts:
    version: str  # recorded per row: "prox" or "<file id>_v<version>"
    doc_system: str | None
    doc_user: str  # "{text}" is the (truncated) document
    chunk_system: str | None
    chunk_user: str  # "{text}" is the numbered chunk

    def doc_messages(self, text: str) -> Messages:
        return _messages(self.doc_system, self.doc_user, text)

    def chunk_messages(self, chunk: str) -> Messages:
        return _messages(self.chunk_system, self.chunk_user, chunk)


def _messages(system: str | None, user: str, text: str) -> Messages:
    # Plain replacement, not str.format: web text and prompts may both contain braces.
    return ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user.replace("{text}", text)}]


# ProX's input formats: the raw document at doc level; "[doc]\n<numbered lines>\n[/doc]" per chunk.
PROX_PROMPTS = RefinePrompts("prox", PROX_SYSTEM, "{text}", PROX_SYSTEM, "[doc]\n{text}\n[/doc]")


def load_teacher_prompts(path: str | Path | None = None) -> RefinePrompts:
    """Our few-shot teacher prompts (default: the packaged conf/prompts/refine/teacher.yaml)."""
    if path is None:
        source = "conf/prompts/refine/teacher.yaml"
        text = resources.files("refinery.conf").joinpath("prompts", "refine", "teacher.yaml").read_text()
    else:
        source = str(path)
        if not fs.exists(str(path)):  # a local path or a URI (s3://...)
            raise PromptError(f"refine prompt file {source}: not found")
        text = fs.read_text(str(path))
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise PromptError(f"refine prompt file {source}: not valid YAML ({err})") from None
    try:
        prompts = RefinePrompts(f"{data['id']}_v{int(data['version'])}", data["doc"].get("system"),
                                data["doc"]["user"], data["chunk"].get("system"), data["chunk"]["user"])
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        raise PromptError(f"refine prompt file {source}: needs id, version, doc.user and chunk.user "
                          f"(missing or bad: {err})") from None
    for key, value in (("doc.user", prompts.doc_user), ("chunk.user", prompts.chunk_user)):
        if value.count("{text}") != 1:
            raise PromptError(f"refine prompt file {source}: {key} must contain the placeholder {{text}} once")
    return prompts


def fit_document(text: str, tokenizer, prompts: RefinePrompts, template: str, max_prompt_tokens: int) -> str:
    """The document cut (in tokens, at a token boundary) so that the whole rendered prompt fits max_prompt_tokens.

    The template's tail (`[/INST]`, the generation cue) is never cut, unlike right-truncating the rendered ids."""
    total = len(render_ids(tokenizer, prompts.doc_messages(text), template))
    if total <= max_prompt_tokens:
        return text
    budget = max_prompt_tokens - len(render_ids(tokenizer, prompts.doc_messages(""), template))
    if budget <= 0:
        return ""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    try:
        ends = [end for _, end in tokenizer(text, add_special_tokens=False,
                                             return_offsets_mapping=True)["offset_mapping"]]
    except NotImplementedError:  # a slow (Python) tokenizer has no offsets: decode the kept ids instead
        ends = None
    for _ in range(8):  # token merges at the cut can shift the count by a few; shrink until it fits
        if budget <= 0:
            return ""
        keep = min(budget, len(ids))
        cut = text[: ends[keep - 1]] if ends is not None else tokenizer.decode(ids[:keep], skip_special_tokens=True)
        total = len(render_ids(tokenizer, prompts.doc_messages(cut), template))
        if total <= max_prompt_tokens:
            return cut
        budget -= total - max_prompt_tokens
    return ""


@dataclass(frozen=True)
class RefineSettings:
    levels: tuple[str, ...]  # "doc", "chunk"
    doc_spec: EngineSpec | None
    chunk_spec: EngineSpec | None
    prompts: RefinePrompts
    doc_sampling: Sampling
    chunk_sampling: Sampling
    doc_max_prompt_tokens: int = 2000
    chunk_max_tokens: int = 1500
    unparsed_policy: str = "keep"  # a doc-level output with no valid call: keep (ProX) | drop
    limits: ProgramLimits = ProgramLimits()
    rules: ChunkRules = ChunkRules()


def refine_documents(frames: Iterator[pd.DataFrame], settings: RefineSettings) -> Iterator[pd.DataFrame]:
    """(doc_id, text) rows -> `refined` rows; engines load once per Python worker and stay for later tasks."""
    from refinery.udfs.rewrite.udf import _pin_task_gpus, _task_id, whole_partition

    _pin_task_gpus()
    worker, task_id = f"{socket.gethostname()}:{os.getpid()}", _task_id()
    specs = [s for s in (settings.doc_spec, settings.chunk_spec) if s is not None]
    step = max(s.batch_size for s in specs) * 4 if specs else 64
    if any(get_engine(s).batches_itself for s in specs):  # vLLM: the whole partition in one call per level
        frames, step = whole_partition(frames), sys.maxsize
    for frame in frames:
        rows = []
        for start in range(0, len(frame), step):
            part = frame.iloc[start : start + step]
            rows += refine_slice(list(part["doc_id"]), [t or "" for t in part["text"]], settings)
        if rows:
            out = pd.DataFrame(rows)
            out["counters"] = [row_counters(r) for r in rows]
            out["worker"], out["task_id"] = worker, task_id
            out["engine_loads"] = loads_of(*set(specs))  # doc and chunk level may share one engine
            yield out[ROW_COLUMNS]


def refine_slice(doc_ids: Sequence[str], texts: Sequence[str], settings: RefineSettings) -> list[dict]:
    """Generate and execute the programs of a few documents (one engine call per level)."""
    started = time.monotonic()
    doc_gens: list[Generation | None] = [None] * len(texts)
    truncated = [False] * len(texts)
    if "doc" in settings.levels:
        spec = settings.doc_spec
        tokenizer = load_tokenizer(spec)
        fitted = [fit_document(t, tokenizer, settings.prompts, spec.prompt_template, settings.doc_max_prompt_tokens)
                  for t in texts]
        truncated = [f != t for f, t in zip(fitted, texts, strict=True)]
        doc_gens = get_engine(spec).generate([settings.prompts.doc_messages(f) for f in fitted],
                                             settings.doc_sampling)
    doc_programs = [_parse(g, "doc", settings.limits) for g in doc_gens]
    chunked: list[list[Chunk]] = [[] for _ in texts]
    chunk_gens: list[list[Generation | None]] = [[] for _ in texts]
    if "chunk" in settings.levels:
        spec = settings.chunk_spec
        count = counter_of(load_tokenizer(spec))
        wanted = []
        for i, (text, gen, program) in enumerate(zip(texts, doc_gens, doc_programs, strict=True)):
            if _goes_to_chunks(gen, program, settings.unparsed_policy):
                chunked[i] = split_chunks(text, count, settings.chunk_max_tokens)
                chunk_gens[i] = [None] * len(chunked[i])
                wanted += [(i, c) for c in chunked[i] if not c.too_long]
        outputs = get_engine(spec).generate([settings.prompts.chunk_messages(c.text) for _, c in wanted],
                                            settings.chunk_sampling) if wanted else []
        for (i, c), out in zip(wanted, outputs, strict=True):
            chunk_gens[i][c.index] = out
    share_ms = int((time.monotonic() - started) * 1000 / max(len(texts), 1))
    rows = []
    for i, doc_id in enumerate(doc_ids):
        row = refine_document(texts[i], doc_gens[i], doc_programs[i], chunked[i], chunk_gens[i], settings)
        rows.append({"doc_id": doc_id, "doc_truncated": truncated[i], "generation_ms": share_ms, **row})
    return rows


def row_counters(row: dict) -> dict[str, int]:
    """The ledger counters one row contributes (summed by the job in one aggregate): outcome, doc decision,
    chunk outcomes, calls by name, rejections by reason, and the edit totals."""
    status = row["status"]
    counts = {status if status.startswith("failed_") else f"refine_{status}": 1}
    if row["doc_decision"] is not None:
        counts[f"doc_{row['doc_decision']}"] = 1
    counts["doc_truncated"] = int(bool(row.get("doc_truncated")))
    for name in _SUMMED:
        counts[name] = int(row[name])
    for chunk in row["chunk_programs"]:
        for key in (f"chunk_{chunk['status']}", *(f"calls_{c['name']}" for c in chunk["calls"]),
                    *(f"rejected_{r['reason']}" for r in chunk["rejected"])):
            counts[key] = counts.get(key, 0) + 1
    return counts


def _parse(gen: Generation | None, level: str, limits: ProgramLimits) -> Program | None:
    if gen is None or gen.finish_reason == "error":
        return None
    return parse_program(gen.text, level, limits, truncated=gen.finish_reason == "length")


def _goes_to_chunks(gen: Generation | None, program: Program | None, unparsed_policy: str) -> bool:
    if gen is None:
        return True  # doc level off
    if program is None:
        return False  # the doc-level call failed: retried as a whole next run
    decision = doc_decision(program)
    return decision == "keep" or (decision == "unparsed" and unparsed_policy == "keep")


def refine_document(text: str, doc_gen: Generation | None, doc_program: Program | None, chunks: list[Chunk],
                    chunk_gens: list[Generation | None], settings: RefineSettings) -> dict:
    """One document's row from its generations (no model here: tests and the benchmark call it directly)."""
    tokens = _tokens([doc_gen, *chunk_gens])
    row = {"doc_decision": None, "doc_program": None, "chunk_count": len(chunks), "chunk_programs": [],
           "lines_removed": 0, "chars_removed": 0, "normalizations": 0, "clipped_ranges": 0,
           "rejected_lines": 0, "duplicate_calls": 0, "refined_text": None, "error": None, **tokens}
    if doc_gen is not None:
        row["doc_program"] = doc_gen.text
        if doc_program is None:
            return {**row, "keep": True, "status": _failed(doc_gen), "error": doc_gen.error}
        row["doc_decision"] = doc_decision(doc_program)
        row["rejected_lines"] = doc_program.errors
        row["duplicate_calls"] = doc_program.duplicates
        if row["doc_decision"] == "drop":
            return {**row, "keep": False, "status": "dropped_doc"}
        if row["doc_decision"] == "unparsed" and settings.unparsed_policy == "drop":
            return {**row, "keep": False, "status": "dropped_unparsed"}
    if "chunk" not in settings.levels:
        return {**row, "keep": True, "status": "kept"}
    scoped, records, failure, chunk_errors = [], [], None, 0
    for chunk, gen in zip(chunks, chunk_gens, strict=True):
        record, part = _chunk_record(chunk, gen, settings.limits)
        records.append(record)
        if record["status"].startswith("failed_") and failure is None:
            failure = gen
        if part is not None:
            scoped.append((chunk.first_line, chunk.last_line, part))
            row["clipped_ranges"] += part.clipped
        chunk_errors += sum(r["reason"] not in NOT_ERRORS for r in record["rejected"])
        row["duplicate_calls"] += record.pop("_duplicates")
    row["chunk_programs"] = records
    row["rejected_lines"] += chunk_errors
    if failure is not None:
        return {**row, "keep": True, "status": _failed(failure), "error": failure.error}
    # The error budget counts chunk programs only (as ProX, whose doc stage has no notion of a bad line).
    outcome = apply_programs(text, scoped, settings.rules, chunk_errors)
    row.update(keep=outcome.keep, status=outcome.status, refined_text=outcome.refined_text,
               lines_removed=outcome.lines_removed, chars_removed=outcome.chars_removed,
               normalizations=outcome.normalizations)
    return row


def _chunk_record(chunk: Chunk, gen: Generation | None, limits: ProgramLimits):
    record = {"chunk_index": chunk.index, "first_line": chunk.first_line, "last_line": chunk.last_line,
              "tokens": chunk.tokens, "program": None, "calls": [], "rejected": [], "status": "skipped_too_long",
              "finish_reason": None, "_duplicates": 0}
    if gen is None:
        return record, None
    record["program"], record["finish_reason"] = gen.text, gen.finish_reason
    if gen.finish_reason == "error":
        return {**record, "status": _failed(gen)}, None
    program = parse_program(gen.text, "chunk", limits, truncated=gen.finish_reason == "length")
    part = scope_calls(program, chunk.first_line, chunk.last_line)
    rejected = [*program.rejected, *part.rejected]
    record["calls"] = [dict(zip(_CALL_FIELDS, c, strict=True)) for c in part.calls]
    record["rejected"] = [{"line": r.line, "reason": r.reason} for r in rejected]
    record["_duplicates"] = program.duplicates
    if not part.calls and not rejected:
        record["status"] = "empty"
    elif not rejected:
        record["status"] = "ok"
    else:
        record["status"] = "partial" if part.calls else "unparsed"
    return record, part


def _failed(gen: Generation) -> str:
    return f"failed_{(gen.error or 'engine_error').split(':')[0]}"


def _tokens(gens: list[Generation | None]) -> dict:
    done = [g for g in gens if g is not None]
    return {"prompt_tokens": sum(g.prompt_tokens or 0 for g in done),
            "output_tokens": sum(g.output_tokens or 0 for g in done)}
