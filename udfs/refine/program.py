"""ProX programs as data: each line parsed with `ast` into one whitelisted call with literal arguments.

Nothing is evaluated or executed. A line that is not such a call is rejected with a reason; comments, code fences
and blank lines are skipped. Fixes the reference parser's bugs: values may contain `)`, `=`, `,` and either quote
style (escapes decoded), and calls may be positional or keyword."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

DOC_FUNCTIONS = ("drop_doc", "keep_doc")
CHUNK_FUNCTIONS = ("remove_lines", "normalize", "keep_chunk", "untouch_doc")
# Rejections that are not the model's error (the output was cut at max_tokens): kept out of the error budget.
NOT_ERRORS = ("truncated_output",)
_SHOWN_CHARS = 200  # a rejected line is stored up to this many characters
_CACHED_CHARS = 256  # programs up to this long are memoised per process
# Fast path for the forms models write most (a strict subset of what `ast` accepts, with the same result; a test
# checks the two agree): a bare call, or remove_lines with two plain ints, both positional or both keywords.
_WS = r"[ \t]*"  # only what Python's tokenizer takes between tokens (\s would also match U+00A0, U+2028 ...)
_INT = r"(0|[1-9][0-9]{0,8})"
_BARE = re.compile(rf"(keep_doc|drop_doc|keep_chunk|untouch_doc)\({_WS}\)")
_RANGE = re.compile(rf"remove_lines\({_WS}(?:{_INT}{_WS},{_WS}{_INT}|(?:line_)?start{_WS}={_WS}{_INT}{_WS},{_WS}"
                    rf"(?:line_)?end{_WS}={_WS}{_INT}){_WS}(?:,{_WS})?\)")
# normalize with quoted strings free of backslashes and control characters (anything else goes to `ast`)
_STR = r"""(?:"([^"\\\x00-\x1f\x7f\ud800-\udfff]*)"|'([^'\\\x00-\x1f\x7f\ud800-\udfff]*)')"""
_SOURCE, _TARGET = rf"(?:source_str|source){_WS}={_WS}", rf"(?:target_str|target){_WS}={_WS}"
_NORMALIZE = (  # positional source (target positional or keyword), or keyword source (target keyword only)
    re.compile(rf"normalize\({_WS}{_STR}(?:{_WS},{_WS}(?:{_TARGET})?{_STR})?{_WS}(?:,{_WS})?\)"),
    re.compile(rf"normalize\({_WS}{_SOURCE}{_STR}(?:{_WS},{_WS}{_TARGET}{_STR})?{_WS}(?:,{_WS})?\)"),
)


@dataclass(frozen=True)
class ProgramLimits:
    max_calls: int = 64  # calls per program; later lines are rejected (too_many_calls)
    max_line_chars: int = 2000  # longer lines are rejected (too_long) before parsing
    max_string_chars: int = 1000  # normalize() strings
    max_line_number: int = 1_000_000


class Call(NamedTuple):
    name: str
    line_start: int | None = None
    line_end: int | None = None
    source_str: str | None = None
    target_str: str | None = None
    all_lines: bool = False

    def text(self) -> str:
        if self.name == "remove_lines":
            args = "all=True" if self.all_lines else f"line_start={self.line_start}, line_end={self.line_end}"
            return f"remove_lines({args})"
        if self.name == "normalize":
            return f"normalize(source_str={self.source_str!r}, target_str={self.target_str!r})"
        return f"{self.name}()"


class Rejected(NamedTuple):
    line: str
    reason: str


class Program(NamedTuple):
    calls: tuple[Call, ...]
    rejected: tuple[Rejected, ...]
    duplicates: int  # repeated identical calls, applied once (ProX failure mode: one call looped until max_tokens)

    @property
    def errors(self) -> int:
        return sum(r.reason not in NOT_ERRORS for r in self.rejected)


class _Reject(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def parse_program(text: str | None, level: str, limits: ProgramLimits = ProgramLimits(),
                  truncated: bool = False) -> Program:
    """Parse a doc-level (`level="doc"`) or chunk-level program. Never raises; time is bounded by the line limits.

    With `truncated` (the output hit max_tokens), the last line is incomplete and rejected as truncated_output."""
    text = text or ""
    if len(text) <= _CACHED_CHARS:  # most outputs are a few short, often identical programs (keep_doc(), ...)
        return _parse_short(text, level, limits, truncated)
    return _parse_lines(text, level, limits, truncated)


@lru_cache(maxsize=8192)
def _parse_short(text: str, level: str, limits: ProgramLimits, truncated: bool) -> Program:
    return _parse_lines(text, level, limits, truncated)  # Program is immutable: safe to share


def _parse_lines(text: str, level: str, limits: ProgramLimits, truncated: bool) -> Program:
    lines = text.split("\n")
    calls: list[Call] = []
    rejected: list[Rejected] = []
    seen: set[Call] = set()
    duplicates = 0
    for number, raw in enumerate(lines):
        line = raw.strip()
        if not line or line[0] == "#" or line.startswith("```"):
            continue
        if truncated and number == len(lines) - 1:
            rejected.append(Rejected(line[:_SHOWN_CHARS], "truncated_output"))
            continue
        try:
            if len(line) > limits.max_line_chars:
                raise _Reject("too_long")
            call = parse_call(line, level, limits)
            if call in seen:
                duplicates += 1
                continue
            if len(calls) >= limits.max_calls:
                raise _Reject("too_many_calls")
        except _Reject as err:
            rejected.append(Rejected(line[:_SHOWN_CHARS], err.reason))
            continue
        seen.add(call)
        calls.append(call)
    return Program(tuple(calls), tuple(rejected), duplicates)


def parse_call(line: str, level: str, limits: ProgramLimits) -> Call:
    """One line -> one Call, or _Reject(reason)."""
    bare = _BARE.fullmatch(line)
    if bare and (bare.group(1) in DOC_FUNCTIONS) == (level == "doc"):
        return Call(bare.group(1))
    plain = _RANGE.fullmatch(line) if level != "doc" else None
    if plain:
        start, end = (_check_int(int(g), limits) for g in plain.groups() if g is not None)
        if end < start:
            raise _Reject("bad_range")
        return Call("remove_lines", line_start=start, line_end=end)
    quoted = next((m for p in _NORMALIZE if (m := p.fullmatch(line))), None) if level != "doc" else None
    if quoted:
        source = quoted.group(1) if quoted.group(1) is not None else quoted.group(2)
        target = quoted.group(3) if quoted.group(3) is not None else quoted.group(4)
        if max(len(source), len(target or "")) > limits.max_string_chars:
            raise _Reject("string_too_long")
        return _normalize([source] + ([target] if target is not None else []), {})
    return _parse_ast(line, level, limits)


def _parse_ast(line: str, level: str, limits: ProgramLimits) -> Call:
    try:
        tree = ast.parse(line, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        raise _Reject("syntax") from None
    node = tree.body
    if not isinstance(node, ast.Call):
        raise _Reject("not_a_call")
    if isinstance(node.func, ast.Attribute):
        raise _Reject("attribute_call")
    if not isinstance(node.func, ast.Name):
        raise _Reject("not_a_call")
    name = node.func.id
    allowed, other = (DOC_FUNCTIONS, CHUNK_FUNCTIONS) if level == "doc" else (CHUNK_FUNCTIONS, DOC_FUNCTIONS)
    if name not in allowed:
        raise _Reject("wrong_level" if name in other else "unknown_function")
    args = [_literal(a, limits) for a in node.args]
    kwargs = {}
    for keyword in node.keywords:
        if keyword.arg is None:  # **mapping
            raise _Reject("non_literal_argument")
        if keyword.arg in kwargs:  # ast accepts a repeated keyword; only compiling would refuse it
            raise _Reject("bad_arguments")
        kwargs[keyword.arg] = _literal(keyword.value, limits)
    if name == "remove_lines":
        return _remove_lines(args, kwargs, limits)
    if name == "normalize":
        return _normalize(args, kwargs)
    if args or kwargs:
        raise _Reject("bad_arguments")
    return Call(name)


def _literal(node: ast.expr, limits: ProgramLimits) -> str | int | bool:
    """A str, int or bool constant (or a negated int); anything else is rejected."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        value = node.operand.value
        if isinstance(value, int) and not isinstance(value, bool):
            return _check_int(-value, limits)
        raise _Reject("bad_arguments")
    if not isinstance(node, ast.Constant):
        raise _Reject("non_literal_argument")
    value = node.value
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return _check_int(value, limits)
    if isinstance(value, str):
        if len(value) > limits.max_string_chars:
            raise _Reject("string_too_long")
        return value
    raise _Reject("bad_arguments")  # float, None, bytes, complex, Ellipsis


def _check_int(value: int, limits: ProgramLimits) -> int:
    if abs(value) > limits.max_line_number:
        raise _Reject("int_out_of_range")
    return value


def _bind(args: list, kwargs: dict, positional: tuple[str, ...], aliases: dict[str, str]) -> dict:
    """Map positional and keyword arguments (with their alias names) onto canonical names."""
    if len(args) > len(positional):
        raise _Reject("bad_arguments")
    bound = dict(zip(positional, args, strict=False))
    for key, value in kwargs.items():
        canonical = aliases.get(key)
        if canonical is None or canonical in bound:
            raise _Reject("bad_arguments")
        bound[canonical] = value
    return bound


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _remove_lines(args: list, kwargs: dict, limits: ProgramLimits) -> Call:
    bound = _bind(args, kwargs, ("line_start", "line_end"),
                  {"line_start": "line_start", "start": "line_start", "line_end": "line_end", "end": "line_end",
                   "all": "all"})
    if "all" in bound:
        if bound["all"] is not True or len(bound) != 1:
            raise _Reject("bad_arguments")
        return Call("remove_lines", all_lines=True)
    start, end = bound.get("line_start"), bound.get("line_end")
    if not (_is_int(start) and _is_int(end)):
        raise _Reject("bad_arguments")
    if start < 0 or end < start:
        raise _Reject("bad_range")
    return Call("remove_lines", line_start=start, line_end=end)


def _normalize(args: list, kwargs: dict) -> Call:
    bound = _bind(args, kwargs, ("source_str", "target_str"),
                  {"source_str": "source_str", "source": "source_str", "target_str": "target_str",
                   "target": "target_str"})
    source, target = bound.get("source_str"), bound.get("target_str", "")
    if not (isinstance(source, str) and isinstance(target, str)):
        raise _Reject("bad_arguments")
    if not source.strip():
        raise _Reject("empty_source")
    # Lines are the unit of numbering: a replacement that adds or removes a newline would shift every later line.
    if "\n" in source or "\n" in target:
        raise _Reject("multiline_normalize")
    return Call("normalize", source_str=source, target_str=target)
