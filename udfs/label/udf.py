"""The label stage's pandas UDF body: documents -> EAI taxonomy codes, through any engine (compact EAI-Distill
prompt, or the two-pass teacher prompts), parsed strictly. Runs under mapInPandas or directly in a test or bench."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from importlib import resources

import pandas as pd
import yaml

from refinery.udfs import fs
from refinery.udfs.label.taxonomy import MAX_CHARS, Parsed, code_columns, parse_compact, parse_teacher, subsample
from refinery.udfs.llm import EngineSpec, Generation, Sampling, get_engine, loads_of
from refinery.udfs.llm.base import Messages
from refinery.udfs.rewrite.udf import _pin_task_gpus, _task_id, whole_partition

LABELED_COLUMNS = ["doc_id", *(name for name, _ in code_columns()), "status", "error", "raw_output",
                   "raw_output_pass2", "finish_reason", "prompt_tokens", "output_tokens", "input_chars", "subsampled",
                   "generation_ms", "repeated_secondaries", "worker", "task_id", "engine_loads"]
_PLACEHOLDERS = ("{url}", "{num_char}", "{document}")


class LabelPromptError(ValueError):
    """The teacher prompt file is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class TeacherPrompts:
    version: int
    system: str
    pass_1: str
    pass_2: str

    def messages(self, document: str, url: str, num_chars: int) -> list[Messages]:
        # Plain replacement, not str.format: documents are full of braces.
        def fill(template: str) -> str:
            return (template.replace("{url}", url).replace("{num_char}", str(num_chars))
                    .replace("{document}", document))

        return [[{"role": "system", "content": self.system}, {"role": "user", "content": fill(p)}]
                for p in (self.pass_1, self.pass_2)]


def load_teacher_prompts(path: str | None = None) -> TeacherPrompts:
    """The teacher prompts (default: the packaged conf/prompts/taxonomy/eai_teacher.yaml)."""
    if path is None:
        source = "conf/prompts/taxonomy/eai_teacher.yaml"
        text = resources.files("refinery.conf").joinpath("prompts/taxonomy/eai_teacher.yaml").read_text()
    else:
        if not fs.exists(str(path)):  # a local path or a URI (s3://...)
            raise LabelPromptError(f"teacher prompt file {path}: not found")
        source, text = path, fs.read_text(path)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise LabelPromptError(f"teacher prompt file {source}: not valid YAML ({err})") from None
    missing = [k for k in ("version", "system", "pass_1", "pass_2") if k not in data]
    if missing:
        raise LabelPromptError(f"teacher prompt file {source}: missing key(s) {', '.join(missing)}")
    if not isinstance(data["version"], int) or data["version"] < 1:
        raise LabelPromptError(f"teacher prompt file {source}: version must be an integer >= 1")
    for key in ("pass_1", "pass_2"):
        absent = [p for p in _PLACEHOLDERS if p not in str(data[key])]
        if absent:
            raise LabelPromptError(f"teacher prompt file {source}: {key} lacks the placeholder(s) {', '.join(absent)}")
    return TeacherPrompts(int(data["version"]), str(data["system"]), str(data["pass_1"]), str(data["pass_2"]))


@dataclass(frozen=True)
class LabelSettings:
    mode: str  # compact | teacher
    system_prompt: str  # compact mode: EAI-Distill's system turn
    teacher: TeacherPrompts | None
    max_output_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    max_chars: int = MAX_CHARS

    def prompt_version(self) -> str:
        return f"teacher/v{self.teacher.version}" if self.mode == "teacher" and self.teacher else "compact"

    def settings_hash(self, model: str) -> str:
        """What a row's labels depend on: model, mode, prompts, decoding; a change re-labels every document."""
        settings = {**asdict(self), "model": model}
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:32]

    def messages(self, doc_id: str, text: str, url: str | None) -> list[Messages]:
        document = subsample(text, doc_id, self.max_chars)
        if self.mode == "teacher":
            return self.teacher.messages(document, url or "", len(text))
        return [[{"role": "system", "content": self.system_prompt}, {"role": "user", "content": document}]]


def label_documents(frames: Iterator[pd.DataFrame], spec: EngineSpec,
                    settings: LabelSettings) -> Iterator[pd.DataFrame]:
    """(doc_id, text, url) rows -> one labelled row each; the engine is loaded once per Python worker."""
    _pin_task_gpus()
    engine = get_engine(spec)
    worker, task_id = f"{socket.gethostname()}:{os.getpid()}", _task_id()
    slice_rows = spec.batch_size * 4  # several engine batches per call, so the engine can group by length
    if engine.batches_itself:  # vLLM schedules its own batches: the whole partition in one call
        frames, slice_rows = whole_partition(frames), sys.maxsize
    for frame in frames:
        out = [label_slice(engine, frame.iloc[start : start + slice_rows], settings)
               for start in range(0, len(frame), slice_rows)]
        if out:
            result = pd.concat(out, ignore_index=True)
            result["worker"], result["task_id"] = worker, task_id
            result["engine_loads"] = loads_of(spec)
            yield result[LABELED_COLUMNS]


def label_slice(engine, rows: pd.DataFrame, settings: LabelSettings) -> pd.DataFrame:
    """Generate and parse one slice of documents (columns doc_id, text, url)."""
    urls = rows["url"] if "url" in rows else [None] * len(rows)
    per_doc = [settings.messages(d, t or "", u) for d, t, u in zip(rows["doc_id"], rows["text"], urls, strict=True)]
    sampling = Sampling(max_tokens=settings.max_output_tokens, temperature=settings.temperature,
                        top_p=settings.top_p, seed=settings.seed)
    started = time.monotonic()
    flat = engine.generate([m for prompts in per_doc for m in prompts], sampling)
    share_ms = int((time.monotonic() - started) * 1000 / max(len(per_doc), 1))
    passes = len(per_doc[0]) if per_doc else 1
    records = []
    for i, (doc_id, text) in enumerate(zip(rows["doc_id"], rows["text"], strict=True)):
        gens = flat[i * passes : (i + 1) * passes]
        record = {"doc_id": doc_id, **label_row(gens, settings.mode)}
        record.update(input_chars=len(text or ""), subsampled=len(text or "") > settings.max_chars,
                      generation_ms=share_ms)
        records.append(record)
    return pd.DataFrame.from_records(records, columns=LABELED_COLUMNS[: LABELED_COLUMNS.index("worker")])


def label_row(gens: list[Generation], mode: str) -> dict[str, object]:
    """Status, codes, raw outputs and token counts of one document's generation(s)."""
    failed = next((g for g in gens if g.finish_reason == "error"), None)
    if failed is not None:
        parsed = Parsed(f"failed_{(failed.error or 'engine_error').split(':')[0]}", error=failed.error)
    elif mode == "teacher":
        parsed = parse_teacher(gens[0].text, gens[1].text, (gens[0].finish_reason, gens[1].finish_reason))
    else:
        parsed = parse_compact(gens[0].text, gens[0].finish_reason)
    reasons = {g.finish_reason for g in gens}
    finish = "error" if "error" in reasons else "length" if "length" in reasons else "stop"
    return {**parsed.columns(), "status": parsed.status, "error": parsed.error, "raw_output": gens[0].text,
            "raw_output_pass2": gens[1].text if len(gens) > 1 else None, "finish_reason": finish,
            "prompt_tokens": _total(g.prompt_tokens for g in gens),
            "output_tokens": _total(g.output_tokens for g in gens),
            "repeated_secondaries": parsed.repeated_secondaries}


def _total(values) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None
