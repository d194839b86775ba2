"""Executing parsed ProX programs: line-numbered chunking, the doc-level decision, chunk-level edits and the
keep/drop rule. Pure string work (no model): what the benchmark times at tens of thousands of documents/s.

Choices (documented in the README): lines are split on "\\n" only and numbered document-globally from 0 as
`[000]` (ProX's format); `remove_lines` is inclusive at both ends and clipped to its own chunk; `normalize` acts
only on its own chunk's lines (the reference replaces across the whole document); calls apply in order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import compress
from typing import NamedTuple

from refinery.udfs.refine.program import Call, Program, Rejected

_INVERT = bytes([1, 0]) + bytes(254)  # removed-line mask -> kept-line mask

CountTokens = Callable[[list[str]], list[int]]


@dataclass(frozen=True)
class ChunkRules:
    max_rejected_lines: int | None = 2  # a document with this many rejected lines keeps its text (ProX error_op)
    min_kept_ratio: float = 0.05  # dropped when kept words / original words <= this (ProX 1 - threshold_2)
    min_kept_words: int = 10  # dropped when <= this many words are left (ProX, FineWeb-style)


class Chunk(NamedTuple):
    index: int
    first_line: int
    last_line: int
    text: str  # the numbered lines, "\n"-joined
    tokens: int
    too_long: bool  # one line over the chunk budget: not sent to the model


class Scoped(NamedTuple):
    calls: tuple[Call, ...]
    rejected: tuple[Rejected, ...]  # calls wholly outside the chunk (out_of_chunk)
    clipped: int  # ranges cut back to the chunk's lines


class Outcome(NamedTuple):
    keep: bool
    status: str  # kept | refined | dropped_mostly_removed | dropped_too_few_words | program_rejected
    refined_text: str | None  # null when unchanged or dropped
    lines_removed: int
    chars_removed: int  # net: len(original) - len(refined)
    normalizations: int  # replacements made


def number_lines(text: str) -> list[str]:
    # "\n" only: splitlines() also splits on \r, \x0b, U+2028 ..., and the model's numbers would not line up.
    return [f"[{i:03d}]{line}" for i, line in enumerate(text.split("\n"))]


def split_chunks(text: str, count_tokens: CountTokens, max_tokens: int = 1500) -> list[Chunk]:
    """Greedy packing of numbered lines into chunks of at most max_tokens tokens (ProX's trunc_text: each line
    counts its tokens plus one). A single line over the budget is a chunk of its own, flagged too_long."""
    numbered = number_lines(text)
    sizes = [n + 1 for n in count_tokens(numbered)]
    chunks: list[Chunk] = []
    first, used = 0, 0
    for i, size in enumerate(sizes):
        if i > first and used + size > max_tokens:
            chunks.append(_chunk(len(chunks), numbered, first, i - 1, used, max_tokens))
            first, used = i, 0
        used += size
    if numbered:
        chunks.append(_chunk(len(chunks), numbered, first, len(numbered) - 1, used, max_tokens))
    return chunks


def _chunk(index: int, numbered: list[str], first: int, last: int, tokens: int, max_tokens: int) -> Chunk:
    return Chunk(index, first, last, "\n".join(numbered[first : last + 1]), tokens, tokens > max_tokens)


def doc_decision(program: Program) -> str:
    """keep | drop | unparsed: the first valid call decides (not a "drop" substring anywhere, as the reference)."""
    return {"drop_doc": "drop", "keep_doc": "keep"}[program.calls[0].name] if program.calls else "unparsed"


def scope_calls(program: Program, first_line: int, last_line: int) -> Scoped:
    """Clip remove_lines ranges to the chunk's lines; a range wholly outside it is rejected (out_of_chunk)."""
    calls, rejected, clipped = [], [], 0
    for call in program.calls:
        if call.name == "remove_lines" and not call.all_lines:
            start, end = max(call.line_start, first_line), min(call.line_end, last_line)
            if start > end:
                rejected.append(Rejected(call.text(), "out_of_chunk"))
                continue
            if (start, end) != (call.line_start, call.line_end):
                clipped += 1
                call = call._replace(line_start=start, line_end=end)
        calls.append(call)
    return Scoped(tuple(calls), tuple(rejected), clipped)


def apply_programs(text: str, scoped: Sequence[tuple[int, int, Scoped]], rules: ChunkRules,
                   errors: int = 0) -> Outcome:
    """Run each chunk's calls, in chunk order and call order, on that chunk's lines [first, last], then decide.

    `errors` counts the document's rejected program lines (parse and scope), checked against the error budget."""
    if rules.max_rejected_lines is not None and errors >= rules.max_rejected_lines:
        return Outcome(True, "program_rejected", None, 0, 0, 0)
    lines = text.split("\n")
    removed = bytearray(len(lines))
    before: dict[int, int] = {}  # words of each normalized line before its first replacement
    normalizations = 0
    for first, last, chunk in scoped:
        last = min(last, len(lines) - 1)
        for call in chunk.calls:
            if call.name == "normalize":
                for i in range(first, last + 1):
                    hits = lines[i].count(call.source_str)
                    if hits:
                        before.setdefault(i, len(lines[i].split()))
                        lines[i] = lines[i].replace(call.source_str, call.target_str)
                        normalizations += hits
            elif call.name == "remove_lines":
                start, end = (first, last) if call.all_lines else (call.line_start, min(call.line_end, last))
                removed[start : end + 1] = b"\x01" * (end + 1 - start)
    lines_removed = removed.count(1)
    if normalizations or lines_removed:
        refined = "\n".join(compress(lines, removed.translate(_INVERT)))
    else:
        refined = text
    chars_removed = len(text) - len(refined)
    status = _word_rule(lines, removed, before, refined, rules)
    if status is not None:
        return Outcome(False, status, None, lines_removed, chars_removed, normalizations)
    if refined == text:
        return Outcome(True, "kept", None, lines_removed, chars_removed, normalizations)
    return Outcome(True, "refined", refined, lines_removed, chars_removed, normalizations)


def _word_rule(lines: list[str], removed: bytearray, before: dict[int, int], refined: str,
               rules: ChunkRules) -> str | None:
    """ProX's decision on words (`split()`): dropped_mostly_removed when kept / original <= min_kept_ratio,
    dropped_too_few_words when kept <= min_kept_words, else None.

    Counting every word of both texts would be most of the stage's CPU time; instead only the edited lines are
    counted, and the refined text's words only up to the bound that could still trigger a rule."""
    removed_words = sum(before.get(i, len(lines[i].split())) for i, gone in enumerate(removed) if gone) \
        if removed.count(1) else 0
    delta = sum(len(lines[i].split()) - words for i, words in before.items() if not removed[i])
    ratio = rules.min_kept_ratio
    if ratio >= 1:
        cap = len(refined)  # every word: the rule keeps nothing but empty texts
    else:
        # kept / (kept - delta + removed_words) <= ratio  <=>  kept <= ratio * (removed_words - delta) / (1 - ratio)
        cap = max(rules.min_kept_words, int(ratio * max(removed_words - delta, 0) / (1 - ratio)) + 1)
    pieces = refined.split(None, cap)
    if len(pieces) > cap:
        return None  # more words than either rule could drop
    kept = len(pieces)
    original = kept - delta + removed_words  # exact: the unedited lines are the same words in both texts
    if original and kept / original <= ratio:
        return "dropped_mostly_removed"
    return "dropped_too_few_words" if kept <= rules.min_kept_words else None
