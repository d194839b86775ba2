"""The Essential-Web (EAI) taxonomy: label sets, the long-document subsampling, and one strict parser for the
compact EAI-Distill format (10 `primary,secondary` lines) and the teacher's long format (two passes, each ending
in a "Final Classification" block). A parse never guesses: an output that is not exactly right is a named status
with every code null, and the raw output is kept by the caller."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import xxhash

# Compact-format line order (paper Alg. 13); FDC is one code that yields levels 1-3.
CATEGORIES = ("fdc", "bloom_cognitive_process", "bloom_knowledge_domain", "document_type_v1", "extraction_artifacts",
              "missing_content", "document_type_v2", "reasoning_depth", "technical_correctness", "education_level")
INT_CATEGORIES = CATEGORIES[1:]
# Teacher long format: the category names of each pass's final block, in our column names.
TEACHER_PASSES = (
    {"DDS": "fdc", "Bloom Cognitive Process": "bloom_cognitive_process",
     "Bloom Knowledge Domain": "bloom_knowledge_domain", "Document Type": "document_type_v1",
     "Extraction Artifacts": "extraction_artifacts", "Missing Content": "missing_content"},
    {"Document Type": "document_type_v2", "Reasoning Depth": "reasoning_depth",
     "Technical Correctness": "technical_correctness", "Educational Level": "education_level"},
)
STATUSES = ("ok", "truncated", "missing_category", "invalid_code", "malformed")
MAX_CHARS = 30_000  # longer documents are subsampled (first, a middle and the last third of this)

_FDC = re.compile(r"^\d{3}(?:\.\d+)?$")
_INT = re.compile(r"^\d{1,2}$")
_ABSTAIN = {"", "-1", "skip"}


def fdc_levels(code: str | None) -> tuple[str | None, str | None, str | None]:
    """FDC levels 1-3 of a code: '513.212' -> ('5', '51', '513'); strings, so '004' keeps its zeros."""
    return (code[:1], code[:2], code[:3]) if code else (None, None, None)


def code_columns() -> list[tuple[str, str]]:
    """(column, 'string' | 'int') of every code column, in table order."""
    columns = []
    for rank in ("primary", "secondary"):
        columns += [(f"fdc_{rank}", "string")] + [(f"fdc_{rank}_l{n}", "string") for n in (1, 2, 3)]
    for category in INT_CATEGORIES:
        columns += [(f"{category}_primary", "int"), (f"{category}_secondary", "int")]
    return columns


@cache
def label_names() -> dict[str, dict[str, str]]:
    """category -> code -> name, from the packaged conf/taxonomy/eai_labels.csv."""
    text = resources.files("refinery.conf").joinpath("taxonomy/eai_labels.csv").read_text()
    names: dict[str, dict[str, str]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        names.setdefault(row["category"], {})[row["code"]] = row["name"]
    return names


def label_codes(category: str) -> frozenset[int]:
    return frozenset(int(c) for c in label_names()[category])


def subsample(text: str, doc_id: str, max_chars: int = MAX_CHARS) -> str:
    """The paper's Alg. 12: a longer text becomes its first, a middle and its last max_chars/3 characters. The
    reference draws the middle from an unseeded RNG; here it follows from doc_id, so a re-run sends the same input."""
    if len(text) <= max_chars:
        return text
    third = max_chars // 3
    half = third // 2
    low, high = third + half, len(text) - third - half
    middle = low + xxhash.xxh64_intdigest(doc_id.encode()) % (high - low + 1)
    return (f"[beginning]\n{text[:third]}\n[middle]\n{text[middle - half : middle + half]}\n"
            f"[end]\n{text[-third:]}")


@dataclass(frozen=True)
class Parsed:
    status: str  # one of STATUSES
    codes: dict[str, tuple] = field(default_factory=dict)  # category -> (primary, secondary); empty unless ok
    error: str | None = None  # what was wrong, for the parse_error column
    repeated_secondaries: int = 0  # secondaries equal to their primary, dropped (counted by the stage)

    def columns(self) -> dict[str, object]:
        """The code columns of this parse (all null unless ok)."""
        out: dict[str, object] = dict.fromkeys(name for name, _ in code_columns())
        for category, (primary, secondary) in self.codes.items():
            if category == "fdc":
                for rank, code in (("primary", primary), ("secondary", secondary)):
                    out[f"fdc_{rank}"] = code
                    for n, level in enumerate(fdc_levels(code), start=1):
                        out[f"fdc_{rank}_l{n}"] = level
            else:
                out[f"{category}_primary"], out[f"{category}_secondary"] = primary, secondary
        return out


class _Invalid(ValueError):
    pass


def _code(category: str, raw: str) -> str | int | None:
    """One code: None for abstain ('', 'skip', '-1'); the FDC code as a string; others as an int in the label set."""
    value = raw.strip()
    if value.lower() in _ABSTAIN:
        return None
    if category == "fdc":
        if not _FDC.match(value):
            raise _Invalid(f"{category}: {value[:40]!r} is not an FDC code (three digits, optional decimals)")
        return value
    if not _INT.match(value) or int(value) not in label_codes(category):
        codes = sorted(label_codes(category))
        raise _Invalid(f"{category}: {value[:40]!r} is not a code {codes[0]}-{codes[-1]}")
    return int(value)


def _pair(category: str, primary_raw: str, secondary_raw: str) -> tuple[tuple, int]:
    primary, secondary = _code(category, primary_raw), _code(category, secondary_raw)
    if secondary is not None and secondary == primary:
        return (primary, None), 1
    return (primary, secondary), 0


def parse_compact(text: str | None, finish_reason: str) -> Parsed:
    """EAI-Distill's output: exactly 10 non-blank lines `primary[,secondary]`, in CATEGORIES order."""
    if finish_reason == "length":
        return Parsed("truncated", error="output reached the token limit before the model stopped")
    lines = [line.strip() for line in (text or "").split("\n") if line.strip()]
    if len(lines) < len(CATEGORIES):
        return Parsed("missing_category", error=f"{len(lines)} of {len(CATEGORIES)} lines; first missing: "
                                                f"{CATEGORIES[len(lines)]}")
    if len(lines) > len(CATEGORIES):
        return Parsed("malformed", error=f"{len(lines)} lines, expected {len(CATEGORIES)}")
    codes, repeated = {}, 0
    for number, (category, line) in enumerate(zip(CATEGORIES, lines, strict=True), start=1):
        parts = line.split(",")
        if len(parts) > 2:
            return Parsed("malformed", error=f"line {number} ({category}): {line[:60]!r} has more than two codes")
        try:
            codes[category], dropped = _pair(category, parts[0], parts[1] if len(parts) == 2 else "")
        except _Invalid as err:
            return Parsed("invalid_code", error=f"line {number} {err}")
        repeated += dropped
    return Parsed("ok", codes, repeated_secondaries=repeated)


_FINAL = re.compile(r"final classification", re.IGNORECASE)
_VALUE = re.compile(r"^(-?[0-9][0-9.]*)(?:\s*-\s*.*)?$")


def parse_teacher(first: str | None, second: str | None, finish_reasons: tuple[str, str]) -> Parsed:
    """The teacher's two long answers: in each, the lines `<Category>: Primary|Secondary Classification: <code> -
    <name>` after the last "Final Classification" heading (or anywhere, when it has none), once each."""
    if "length" in finish_reasons:
        return Parsed("truncated", error=f"pass {finish_reasons.index('length') + 1} reached the token limit")
    codes, repeated = {}, 0
    for number, (text, names) in enumerate(zip((first, second), TEACHER_PASSES, strict=True), start=1):
        text = text or ""
        heading = list(_FINAL.finditer(text))
        block = text[heading[-1].end():] if heading else text
        for name, category in names.items():
            found = {}
            for rank in ("Primary", "Secondary"):
                pattern = re.compile(rf"^[\s*#>-]*{re.escape(name)}\s*:\s*\**\s*{rank} Classification\s*:\s*\**\s*"
                                     r"(.*?)\s*$", re.MULTILINE | re.IGNORECASE)
                values = {m.group(1).strip("* ") for m in pattern.finditer(block)}
                if not values:
                    return Parsed("missing_category", error=f"pass {number}: no '{name}: {rank} Classification' line")
                if len(values) > 1:
                    return Parsed("malformed", error=f"pass {number}: {name} {rank} given twice, differently")
                value = values.pop()
                match = _VALUE.match(value)
                if not match:
                    return Parsed("invalid_code", error=f"pass {number} {category}: {value[:60]!r} has no code")
                found[rank] = match.group(1)
            try:
                codes[category], dropped = _pair(category, found["Primary"], found["Secondary"])
            except _Invalid as err:
                return Parsed("invalid_code", error=f"pass {number} {err}")
            repeated += dropped
    return Parsed("ok", codes, repeated_secondaries=repeated)


def compact_output(codes: dict[str, tuple]) -> str:
    """The compact format of parsed codes (-1 for an abstained primary): the teacher's two answers condensed, as
    the paper built EAI-Distill's training targets; also the fixture of tests."""
    lines = []
    for category in CATEGORIES:
        primary, secondary = codes[category]
        first = "-1" if primary is None else str(primary)
        lines.append(first if secondary is None else f"{first},{secondary}")
    return "\n".join(lines)
