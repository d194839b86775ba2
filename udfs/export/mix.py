"""Training-mix export, the pure parts: recipes, token counting, the seeded shuffle key, budgets and shard bytes.
No Spark here; jobs/export.py runs these on executors."""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from pathlib import Path
from typing import Literal

import xxhash
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SHARD_COLUMNS = ("text", "source", "doc_id", "synth_id", "tokens")
ZSTD_LEVEL = 10


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the file, the key and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["curated", "synthetic", "taxonomy"]
    tokens: int | None = Field(None, gt=0)  # an absolute budget ...
    ratio: float | None = Field(None, gt=0)  # ... or a share of the ratio pool
    styles: list[str] | None = None  # synthetic: rewrite style ids (default: all)
    models: list[str] | None = None  # synthetic: model names (default: all)
    view: str | None = Field(None, pattern=r"^eai_[a-z_]+$")  # taxonomy: an eai_* dataset view

    @model_validator(mode="after")
    def _one_budget(self) -> SourceSpec:
        if (self.tokens is None) == (self.ratio is None):
            raise ValueError(f"source {self.name!r}: give exactly one of `tokens` (a budget) or `ratio` (a share)")
        if self.kind == "taxonomy" and self.view is None:
            raise ValueError(f"source {self.name!r}: a taxonomy source names its `view` (eai_math, eai_code, ...)")
        if self.kind != "taxonomy" and self.view is not None:
            raise ValueError(f"source {self.name!r}: `view` is for kind taxonomy only")
        if self.kind != "synthetic" and (self.styles or self.models):
            raise ValueError(f"source {self.name!r}: `styles` / `models` are for kind synthetic only")
        return self


class Recipe(_Strict):
    name: str
    seed: int = 0
    tokenizer: str = "whitespace"  # whitespace | regex | tokenizer.json path (Hugging Face `tokenizers`)
    total_tokens: int | None = Field(None, gt=0)  # cap of the ratio pool; default: the largest pool that fits
    shard_tokens: int = Field(50_000_000, gt=0)  # target shard size
    formats: list[Literal["parquet", "jsonl.zst"]] = ["parquet", "jsonl.zst"]
    # upstream stages whose tables must exist for the curated documents (as rewrite.require)
    require: list[Literal["quality", "dedup", "decontaminate"]] = ["quality", "dedup", "decontaminate"]
    sources: list[SourceSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Recipe:
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique, got {names}")
        return self


def load_recipe(path: str | Path) -> tuple[Recipe, str]:
    """The recipe and its hash (sha256 of the parsed recipe as canonical JSON: comments and layout do not count)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError(f"recipe {path}: no such file; pass --recipe conf/mixes/real_only.yaml or your own") from None
    except yaml.YAMLError as e:
        raise RecipeError(f"recipe {path}: not valid YAML ({e})") from None
    try:
        recipe = Recipe.model_validate(raw or {})
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise RecipeError(f"recipe {path}: key {where}: {first['msg']}") from None
    canonical = json.dumps(recipe.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return recipe, hashlib.sha256(canonical.encode()).hexdigest()


# --- tokenizers: a name the manifest records, and a counter that runs on executors -----------------------------

_REGEX = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def tokenizer_payload(spec: str) -> tuple[str, str | None]:
    """(name, tokenizer.json text or None), read on the driver so executors never open a driver-local path."""
    if spec in ("whitespace", "regex"):
        return spec, None
    path = Path(spec)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise RecipeError(f"recipe key tokenizer: {spec!r} is neither `whitespace`, `regex` nor a tokenizer.json "
                          "file or folder holding one (a local copy; nothing is downloaded)")
    text = path.read_text(encoding="utf-8")
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"hf-tokenizers:{path.parent.name or path.name}:sha256-{digest}", text


def token_counter(name: str, payload: str | None):
    """A function text -> token count. `whitespace`: str.split; `regex`: words and single punctuation marks;
    otherwise the Hugging Face tokenizer, without special tokens."""
    if name == "whitespace":
        return lambda text: len(text.split())
    if name == "regex":
        return lambda text: len(_REGEX.findall(text))
    try:
        from tokenizers import Tokenizer
    except ImportError as e:
        raise RecipeError("recipe key tokenizer: a tokenizer.json needs the `tokenizers` package "
                          "(pip install tokenizers), or use `whitespace`") from e
    tokenizer = Tokenizer.from_str(payload)
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


def shuffle_key(seed: int, source: str, item_id: str) -> int:
    """Position in the global shuffle: a 63-bit hash of (seed, source, id), the same on every run and machine."""
    return xxhash.xxh3_64_intdigest(f"{seed}\x00{source}\x00{item_id}".encode()) >> 1


# --- budgets ----------------------------------------------------------------------------------------------------

def plan_budgets(recipe: Recipe, available: dict[str, int]) -> dict[str, int]:
    """Token budget per source. A `tokens` source gets its budget; `ratio` sources share a pool split by their
    ratios: `total_tokens`, shrunk to the largest pool every ratio source can fill, so the ratio holds."""
    budgets = {s.name: s.tokens for s in recipe.sources if s.tokens is not None}
    shares = {s.name: s.ratio for s in recipe.sources if s.ratio is not None}
    if shares:
        total = sum(shares.values())
        fits = min(available.get(name, 0) * total / r for name, r in shares.items())
        pool = min(fits, recipe.total_tokens) if recipe.total_tokens else fits
        budgets.update({name: int(math.floor(pool * r / total)) for name, r in shares.items()})
    return budgets


def shard_of(tokens_before: int, shard_tokens: int) -> int:
    """Shard of an item whose predecessors in the shuffle hold `tokens_before` tokens."""
    return tokens_before // shard_tokens


def shard_name(index: int, fmt: str) -> str:
    return f"shard-{index:05d}.{fmt}"


# --- shard bytes ------------------------------------------------------------------------------------------------

def parquet_bytes(rows) -> bytes:
    """Parquet (zstd) of a pandas frame with SHARD_COLUMNS, in the frame's order; the same rows give the same bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("text", pa.string()), ("source", pa.string()), ("doc_id", pa.string()),
                        ("synth_id", pa.string()), ("tokens", pa.int64())])
    table = pa.Table.from_pandas(rows[list(SHARD_COLUMNS)], schema=schema, preserve_index=False)
    table = table.replace_schema_metadata(None)  # pandas metadata would vary with the frame's index
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def jsonl_zst_bytes(rows) -> bytes:
    """One JSON object per line (keys in SHARD_COLUMNS order, UTF-8), zstd-compressed as one frame."""
    import zstandard

    lines = []
    for record in rows[list(SHARD_COLUMNS)].itertuples(index=False):
        obj = {c: (None if v is None or (isinstance(v, float) and math.isnan(v)) else v)
               for c, v in zip(SHARD_COLUMNS, record, strict=True)}
        obj["tokens"] = int(obj["tokens"])
        lines.append(json.dumps(obj, ensure_ascii=False))
    data = ("\n".join(lines) + "\n").encode("utf-8")
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)
