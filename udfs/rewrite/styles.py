"""The style library (conf/prompts/*.yaml): loading and checking styles, chunking, prompts, style assignment."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Literal

import xxhash
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from refinery.udfs import fs

CountTokens = Callable[[list[str]], list[int]]
_SENTENCE_END = re.compile(r"(?<=[.!?…。])\s+")


class StyleError(ValueError):
    """A style file or entry is invalid; the message names the file, the style and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Chunking(_Strict):
    max_input_tokens: int = Field(300, gt=0)
    split_on: Literal["sentence", "line"] = "sentence"
    min_input_tokens: int = Field(0, ge=0)  # shorter chunks (a document's tail) are not rewritten


class QaRule(_Strict):
    min_pairs: int = Field(1, ge=1)
    tokens_per_pair: int | None = Field(None, gt=0)  # keep ~input_tokens / this many pairs (Nemotron-CC sampling)
    max_pairs: int | None = Field(None, ge=1)


class PatternRule(_Strict):
    pattern: str
    min_count: int = Field(1, ge=1)
    reason: str = Field(pattern=r"^[a-z][a-z0-9_]*$")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as err:
            raise ValueError(f"not a valid regular expression ({err})") from None
        return value


class PostProcess(_Strict):
    drop_truncated: bool = False  # an output cut at max_output_tokens is rejected (`truncated`)
    required_prefix: str | None = None  # stripped; an output without it is rejected (`missing_prefix`)
    strip_chatter: bool = False  # drop a leading "Sure! Here is ...:" line
    remove_markdown: bool = False
    strip_quotes: bool = False
    qa: QaRule | None = None
    require: tuple[PatternRule, ...] = ()
    min_output_tokens: int = Field(0, ge=0)


class Style(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    version: int = Field(ge=1)
    description: str = ""
    system: str | None = None
    user: str
    chunking: Chunking = Field(default_factory=Chunking)
    max_output_tokens: int = Field(gt=0)
    postprocess: PostProcess = Field(default_factory=PostProcess)

    @field_validator("user")
    @classmethod
    def _has_text_slot(cls, value: str) -> str:
        if value.count("{text}") != 1:
            raise ValueError("must contain the placeholder {text} exactly once")
        return value

    def messages(self, chunk: str) -> list[dict[str, str]]:
        # Plain replacement, not str.format: templates and web text may both contain braces.
        user = self.user.replace("{text}", chunk)
        return ([{"role": "system", "content": self.system}] if self.system else []) + [
            {"role": "user", "content": user}]


def load_styles(files: Sequence[str | Path] | None = None) -> dict[str, Style]:
    """Every style of the given YAML files (default: the packaged conf/prompts/*.yaml), by id."""
    if files is None:
        folder = resources.files("refinery.conf").joinpath("prompts")
        sources = [(f"conf/prompts/{p.name}", p.read_text()) for p in sorted(folder.iterdir(), key=lambda p: p.name)
                   if p.name.endswith(".yaml")]
    else:
        sources = []
        for f in files:
            if not fs.exists(str(f)):  # a local path or a URI (s3://...)
                raise StyleError(f"style file {f}: not found")
            sources.append((str(f), fs.read_text(str(f))))
    styles: dict[str, Style] = {}
    for source, text in sources:
        for style in _parse_file(source, text):
            if style.id in styles:
                raise StyleError(f"style file {source}: style id {style.id!r} is defined twice")
            styles[style.id] = style
    return styles


def _parse_file(source: str, text: str) -> list[Style]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise StyleError(f"style file {source}: not valid YAML ({err})") from None
    entries = data.get("styles") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise StyleError(f"style file {source}: expected a non-empty list under 'styles:'")
    parsed = []
    for number, entry in enumerate(entries, start=1):
        name = entry.get("id", f"entry {number}") if isinstance(entry, dict) else f"entry {number}"
        try:
            parsed.append(Style.model_validate(entry))
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
            raise StyleError(f"style file {source}, style {name}: {problems}") from None
    return parsed


def chunk_text(text: str, max_tokens: int, count_tokens: CountTokens, split_on: str = "sentence") -> list[str]:
    """Greedy packing of sentences (or lines) into chunks of at most max_tokens tokens of the model's tokenizer.

    A single unit longer than max_tokens is cut between words; units are never reordered."""
    units = _units(text, split_on)
    if not units:
        return []
    joiner = "\n" if split_on == "line" else " "
    chunks: list[str] = []
    for unit, size in zip(units, count_tokens(units), strict=True):
        chunks += _pack(unit.split(), count_tokens(unit.split()), max_tokens, " ") if size > max_tokens else [unit]
    packed = _pack(chunks, count_tokens(chunks), max_tokens, joiner)
    # Token counts of separately tokenized pieces are an estimate of the joined text's; check the real ones.
    return [c for chunk, n in zip(packed, count_tokens(packed), strict=True)
            for c in ([chunk] if n <= max_tokens else _halve(chunk, max_tokens, count_tokens))]


def _pack(units: list[str], sizes: list[int], max_tokens: int, joiner: str) -> list[str]:
    chunks, current, used = [], [], 0
    for unit, size in zip(units, sizes, strict=True):
        if current and used + size > max_tokens:
            chunks.append(joiner.join(current))
            current, used = [], 0
        current.append(unit)
        used += size
    if current:
        chunks.append(joiner.join(current))
    return chunks


def _halve(chunk: str, max_tokens: int, count_tokens: CountTokens) -> list[str]:
    words = chunk.split(" ")
    if len(words) < 2:
        return [chunk]
    halves = [" ".join(words[: len(words) // 2]), " ".join(words[len(words) // 2 :])]
    return [c for half, n in zip(halves, count_tokens(halves), strict=True)
            for c in ([half] if n <= max_tokens else _halve(half, max_tokens, count_tokens))]


def _units(text: str, split_on: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines()]
    if split_on == "line":
        return [line for line in lines if line]
    return [s.strip() for line in lines if line for s in _SENTENCE_END.split(line) if s.strip()]


def assign_styles(doc_id: str, mix: dict[str, float], k: int = 1, seed: int = 0) -> list[str]:
    """k distinct styles drawn by quota weight, reproducibly per document.

    Weighted sampling without replacement with Efraimidis-Spirakis keys u**(1/w), u a hash of (seed, doc_id,
    style): the first pick is style s with probability w_s / sum(w), and adding a style to the mix changes only
    the documents that now pick it."""
    keyed = []
    for style, weight in mix.items():
        u = (xxhash.xxh64_intdigest(f"{seed}\x1f{doc_id}\x1f{style}".encode()) + 0.5) / 2.0**64
        keyed.append((u ** (1.0 / weight), style))
    keyed.sort(reverse=True)
    return [style for _, style in keyed[:k]]


def synth_id(doc_id: str, chunk_index: int, style_id: str, style_version: int, model: str) -> str:
    return xxhash.xxh3_128_hexdigest(f"{doc_id}\x1f{chunk_index}\x1f{style_id}\x1f{style_version}\x1f{model}".encode())
