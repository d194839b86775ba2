"""Keep/drop decisions over the quality signals: every failing rule's reason, thresholds from conf/filters.yaml."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

from refinery.udfs import fs
from refinery.udfs.quality.c4 import C4LineSettings, c4_signals
from refinery.udfs.quality.fineweb import fineweb_signals
from refinery.udfs.quality.gopher import (
    DUP_NGRAM_SIZES,
    TOP_NGRAM_SIZES,
    gopher_quality_signals,
    gopher_repetition_signals,
)
from refinery.udfs.quality.text import split_into_words

# filter -> rule (= the drop reason we report) -> the signal it bounds
RULE_SIGNALS: dict[str, dict[str, str]] = {
    "gopher_repetition": {
        "gopher_rep_empty": "gopher_text_chars",
        "dup_para_frac": "gopher_dup_para_frac",
        "dup_para_char_frac": "gopher_dup_para_char_frac",
        "dup_line_frac": "gopher_dup_line_frac",
        "dup_line_char_frac": "gopher_dup_line_char_frac",
        **{f"top_{n}_gram": f"gopher_top_{n}_gram_char_frac" for n in TOP_NGRAM_SIZES},
        **{f"duplicated_{n}_n_grams": f"gopher_dup_{n}_gram_char_frac" for n in DUP_NGRAM_SIZES},
    },
    "gopher_quality": {
        "gopher_short_doc": "gopher_words",
        "gopher_long_doc": "gopher_words",
        "gopher_below_avg_threshold": "gopher_mean_word_length",
        "gopher_above_avg_threshold": "gopher_mean_word_length",
        "gopher_too_many_hashes": "gopher_hash_word_ratio",
        "gopher_too_many_ellipsis": "gopher_ellipsis_word_ratio",
        "gopher_too_many_bullets": "gopher_bullet_lines_ratio",
        "gopher_too_many_end_ellipsis": "gopher_end_ellipsis_lines_ratio",
        "gopher_below_alpha_threshold": "gopher_alpha_words_ratio",
        "gopher_enough_stop_words": "gopher_stop_words",
    },
    "c4": {
        "c4_lorem_ipsum": "c4_lorem_ipsum_lines",
        "c4_curly_bracket": "c4_curly_bracket_lines",
        "c4_too_few_sentences": "c4_sentences",
    },
    "fineweb": {
        "fineweb_empty": "fineweb_lines",
        "fineweb_line_punct_ratio": "fineweb_line_punct_ratio",
        "fineweb_short_line_ratio": "fineweb_short_line_ratio",
        "fineweb_char_dup_ratio": "fineweb_char_dup_ratio",
        "fineweb_list_ratio": "fineweb_newline_word_ratio",
    },
}

# Our reason -> datatrove's, where they differ: datatrove's "empty" is used by two filters and C4's and FineWeb's
# names do not say which filter spoke, so those carry the filter's prefix here. The rest are datatrove's names.
DATATROVE_REASONS: dict[str, str] = {
    "gopher_rep_empty": "empty",
    "c4_lorem_ipsum": "lorem_ipsum",
    "c4_curly_bracket": "curly_bracket",
    "c4_too_few_sentences": "too_few_sentences",
    "fineweb_empty": "empty",
    "fineweb_line_punct_ratio": "line_punct_ratio",
    "fineweb_short_line_ratio": "short_line_ratio",
    "fineweb_char_dup_ratio": "char_dup_ratio",
    "fineweb_list_ratio": "list_ratio",
}

# The signals each filter computes, in table column order (quality.<filter>.<signal without its prefix>).
SIGNAL_GROUPS: dict[str, list[str]] = {f: list(dict.fromkeys(rules.values())) for f, rules in RULE_SIGNALS.items()}
SIGNAL_GROUPS["c4"].append("c4_kept_lines")
COUNT_SIGNALS = frozenset({"gopher_text_chars", "gopher_words", "gopher_stop_words", "c4_sentences", "c4_kept_lines",
                           "c4_lorem_ipsum_lines", "c4_curly_bracket_lines", "fineweb_lines"})


def signal_field(signal: str) -> str:
    """Column name of a signal inside its filter's struct: the signal without its filter prefix."""
    return signal.split("_", 1)[1]


_C4_LINE_KEYS = {"remove_citations": bool, "filter_no_terminal_punct": bool, "min_words_per_line": int,
                 "max_word_length": int, "filter_javascript": bool, "filter_policy": bool}


def all_quality_signals(text: str, thresholds: dict[str, Any] | None = None) -> dict[str, float]:
    """Every signal of the four filters, splitting the text into words once for all of them."""
    thresholds = thresholds or _default_thresholds()
    words = split_into_words(text)
    signals = gopher_repetition_signals(text, words)
    signals.update(gopher_quality_signals(text, words))
    signals.update(c4_signals(text, C4LineSettings.from_thresholds(thresholds)))
    signals.update(fineweb_signals(text, words, thresholds["fineweb"]["short_line_length"]))
    return signals


def quality_drop_reasons(signals: dict[str, float], thresholds: dict[str, Any] | None = None) -> list[str]:
    """Names of all enabled rules the signals fail, in filter order; empty = keep."""
    thresholds = thresholds or _default_thresholds()
    reasons = []
    for filter_name, rules in RULE_SIGNALS.items():
        section = thresholds[filter_name]
        if not section["enabled"]:
            continue
        for reason, signal in rules.items():
            rule = section["rules"][reason]
            if not rule["enabled"]:
                continue
            value = signals[signal]
            if "min" in rule and value < rule["min"] and not (value == 0 and rule.get("exclude_zero")):
                reasons.append(reason)
            elif "max" in rule and value > rule["max"]:
                reasons.append(reason)
    return reasons


def load_filter_thresholds(path: str | Path | None = None) -> dict[str, Any]:
    """The packaged conf/filters.yaml, with the file at `path` (same layout, any subset of it) laid over it."""
    import yaml

    thresholds = copy.deepcopy(_default_thresholds())
    if path is not None:
        overrides = yaml.safe_load(fs.read_text(str(path))) or {}  # a local path or a URI
        if not isinstance(overrides, dict):
            raise ValueError(f"{path}: expected a mapping of filters ({', '.join(RULE_SIGNALS)})")
        _merge(thresholds, overrides)
        _validate(thresholds, str(path))
    return thresholds


@cache
def _default_thresholds() -> dict[str, Any]:
    # read once per process: the signals run per document, and nothing may change this copy
    from importlib.resources import files

    import yaml

    thresholds = yaml.safe_load(files("refinery.conf").joinpath("filters.yaml").read_text())
    _validate(thresholds, "conf/filters.yaml")
    return thresholds


def _merge(base: dict, overrides: dict) -> None:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _validate(thresholds: dict[str, Any], source: str) -> None:
    unknown = set(thresholds) - set(RULE_SIGNALS)
    if unknown:
        raise ValueError(f"{source}: unknown filter(s) {sorted(unknown)}; known: {', '.join(RULE_SIGNALS)}")
    for filter_name, rules in RULE_SIGNALS.items():
        section = thresholds.get(filter_name)
        if not isinstance(section, dict) or not isinstance(section.get("rules"), dict):
            raise ValueError(f"{source}: {filter_name}.rules is missing; copy it from the packaged conf/filters.yaml")
        section["enabled"] = _flag(section.get("enabled", True), f"{source}: {filter_name}.enabled")
        unknown = set(section["rules"]) - set(rules)
        if unknown:
            raise ValueError(f"{source}: unknown rule(s) {sorted(unknown)} in {filter_name}; known: {', '.join(rules)}")
        for reason in rules:
            where = f"{source}: {filter_name}.rules.{reason}"
            rule = section["rules"].get(reason)
            if not isinstance(rule, dict) or len({"min", "max"} & set(rule)) != 1:
                raise ValueError(f"{where} needs exactly one of min or max, e.g. {{max: 0.3}}")
            rule["enabled"] = _flag(rule.get("enabled", True), f"{where}.enabled")
            bound = "min" if "min" in rule else "max"
            if isinstance(rule[bound], bool) or not isinstance(rule[bound], int | float):
                raise ValueError(f"{where}.{bound} must be a number, got {rule[bound]!r}")
    lines = thresholds["c4"].get("lines", {})
    for key, kind in _C4_LINE_KEYS.items():
        if not isinstance(lines.get(key), kind) or (kind is int and isinstance(lines[key], bool)):
            raise ValueError(f"{source}: c4.lines.{key} must be {'true/false' if kind is bool else 'an integer'}")
    if set(lines) - set(_C4_LINE_KEYS):
        raise ValueError(f"{source}: unknown c4.lines key(s) {sorted(set(lines) - set(_C4_LINE_KEYS))}")
    length = thresholds["fineweb"].get("short_line_length")
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ValueError(f"{source}: fineweb.short_line_length must be an integer >= 0, got {length!r}")


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where} must be true or false, got {value!r}")
    return value
