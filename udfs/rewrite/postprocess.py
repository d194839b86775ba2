"""Post-processing of rewrite outputs: each style's rules turn raw model text into (status, text).

Model output is data: it is only matched with regular expressions and sliced, never evaluated."""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

from refinery.udfs.rewrite.styles import CountTokens, PostProcess, QaRule

OK = "ok"
_CHATTER = re.compile(r"^\s*(sure|certainly|of course|okay|ok|here(?:'s| is| are))\b[^\n]{0,160}:\s*\n", re.I)
_HEADER = re.compile(r"(?m)^\s{0,3}#{1,6}\s+")
# Linear time on any model output: a line start inside a whitespace run (or a run of rule characters) would try the
# same match again as the line start before it, so the leading \s* is possessive and a failed attempt still
# consumes what it read (the optional group stays empty and the text is put back unchanged).
_RULE = re.compile(r"(?m)^\s*+(?:(([-*_])(?:\s*\2){2,}\s*$)|([-*_])(?:\s*+\3)*+)?")
_BOLD_OPEN = re.compile(r"(\*\*|__)(?=\S)")
_BOLD_CLOSE = {"**": re.compile(r"(?<=\S)\*\*"), "__": re.compile(r"(?<=\S)__")}
_ITALIC = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?!\w)")
_CODE_FENCE = re.compile(r"(?m)^\s*+(```[\w-]*\s*$\n?)?")
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
# No "[" inside a link's text, so each "[" scans only up to the next bracket ("[a [b](u)" keeps its first "[").
_LINK = re.compile(r"!?\[([^\[\]\n]++)\]\([^)\s]++\)")
_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019", "\u00ab": "\u00bb"}
_QUESTION = re.compile(r"^\s*+(?:\d++[.)]\s*+)?(?:Q(?:uestion)?)\s*+\d*+\s*+[:.)]\s*(.*)$", re.I)
_ANSWER = re.compile(r"^\s*+(?:A(?:nswer)?)\s*+\d*+\s*+[:.)]\s*(.*)$", re.I)


@dataclass(frozen=True)
class Processed:
    status: str  # "ok" or the rejection reason
    text: str | None


def postprocess(raw: str, finish_reason: str, rules: PostProcess, count_tokens: CountTokens,
                input_tokens: int = 0, seed: int = 0) -> Processed:
    """Apply a style's rules in a fixed order; the first rule that fails names the rejection reason."""
    if rules.drop_truncated and finish_reason == "length":
        return Processed("truncated", None)
    text = raw.strip()
    if rules.required_prefix is not None:
        text = strip_required_prefix(text, rules.required_prefix)
        if text is None:
            return Processed("missing_prefix", None)
    if rules.strip_chatter:
        text = _CHATTER.sub("", text, count=1).strip()
    if rules.remove_markdown:
        text = remove_markdown(text)
    if rules.strip_quotes:
        text = strip_enclosing_quotes(text)
    if rules.qa is not None:
        text = format_qa(text, rules.qa, input_tokens, seed)
        if text is None:
            return Processed("malformed_qa", None)
    for rule in rules.require:
        if len(re.findall(rule.pattern, text)) < rule.min_count:
            return Processed(rule.reason, None)
    if not text:
        return Processed("empty", None)
    if rules.min_output_tokens and count_tokens([text])[0] < rules.min_output_tokens:
        return Processed("too_short", None)
    return Processed(OK, text)


def strip_required_prefix(text: str, prefix: str) -> str | None:
    """The text after the required opening line; None when the model did not open with it.

    Models often wrap the line in Markdown (`**Here is ...:**`) or skip the colon; both still count."""
    head = re.escape(prefix.rstrip(":").strip())
    match = re.match(rf"^[\s*_#>\"']*{head}\s*:?[\s*_]*", text, re.I)
    return text[match.end():].strip() if match else None


def remove_markdown(text: str) -> str:
    text = _CODE_FENCE.sub(_unless_empty(1), text)
    text = _HEADER.sub("", text)
    text = _RULE.sub(_unless_empty(1), text)
    text = _strip_bold(text)
    text = _ITALIC.sub(r"\1", text)
    text = _INLINE_CODE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _unless_empty(group: int):
    """A replacement that deletes the match when `group` took part in it and puts the text back otherwise."""
    return lambda match: match.group(0) if match.group(group) is None else ""


def _strip_bold(text: str) -> str:
    """r"(\\*\\*|__)(?=\\S)(.+?)(?<=\\S)\\1" replaced by its inner text, with the same matches in linear time: when a
    delimiter has no closing partner after one opening, it has none after any later opening either."""
    pieces, position, search_from, unclosed = [], 0, 0, set()
    while opening := _BOLD_OPEN.search(text, search_from):
        delimiter = opening.group(1)
        closing = None if delimiter in unclosed else _BOLD_CLOSE[delimiter].search(text, opening.end() + 1)
        if closing is None:
            unclosed.add(delimiter)
            search_from = opening.start() + 1
            continue
        pieces += (text[position:opening.start()], text[opening.end():closing.start()])
        position = search_from = closing.end()
    return "".join(pieces) + text[position:]


def strip_enclosing_quotes(text: str) -> str:
    """Remove one pair of quotes around the whole output, when the opening quote does not recur inside it."""
    text = text.strip()
    if len(text) >= 2 and text[0] in _QUOTES and text[-1] == _QUOTES[text[0]]:
        inner = text[1:-1]
        if text[0] not in inner and _QUOTES[text[0]] not in inner:
            return inner.strip()
    return text


def parse_qa_pairs(text: str) -> list[tuple[str, str]]:
    """(question, answer) pairs from "Question: ... / Answer: ..." lines (numbered or Q:/A: forms too).

    A question without an answer, or an answer without a question, is skipped."""
    pairs: list[tuple[str, str]] = []
    question: list[str] | None = None
    answer: list[str] | None = None

    def close() -> None:
        if question is not None and answer is not None:
            q, a = " ".join(question).strip(), "\n".join(answer).strip()
            if q and a:
                pairs.append((q, a))

    for line in text.splitlines():
        if (m := _QUESTION.match(line)) and not _ANSWER.match(line):
            close()
            question, answer = [m.group(1)], None
        elif (m := _ANSWER.match(line)) and question is not None and answer is None:
            answer = [m.group(1)]
        elif answer is not None:
            answer.append(line)
        elif question is not None and line.strip():
            question.append(line.strip())
    close()
    return pairs


def format_qa(text: str, rule: QaRule, input_tokens: int, seed: int) -> str | None:
    pairs = parse_qa_pairs(text)
    if len(pairs) < rule.min_pairs:
        return None
    keep = len(pairs)
    if rule.tokens_per_pair:
        keep = min(keep, max(rule.min_pairs, math.ceil(input_tokens / rule.tokens_per_pair)))
    if rule.max_pairs:
        keep = min(keep, rule.max_pairs)
    if keep < len(pairs):
        # A reproducible sample per row (seeded by its key), in the model's order.
        chosen = sorted(random.Random(seed).sample(range(len(pairs)), keep))
        pairs = [pairs[i] for i in chosen]
    return "\n\n".join(f"Question: {q}\nAnswer: {a}" for q, a in pairs)
