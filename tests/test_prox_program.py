"""The ProX program parser: a catalogue of adversarial and malformed programs with their expected outcome, and a
hypothesis fuzz test (never raises, bounded time per line). Nothing a model writes is ever evaluated."""

from __future__ import annotations

import gc
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refinery.udfs.refine.execute import doc_decision
from refinery.udfs.refine.program import ProgramLimits, _parse_ast, _Reject, parse_call, parse_program

RL = "remove_lines(line_start={}, line_end={})"

# (program, level, the calls it yields (canonical text), the reasons of its rejected lines)
CATALOGUE = [
    # --- the forms the released models and the teacher prompts write ---
    ("remove_lines(line_start=0, line_end=2)", "chunk", [RL.format(0, 2)], []),
    ("remove_lines(start=3, end=5)", "chunk", [RL.format(3, 5)], []),
    ("remove_lines(3, 5)", "chunk", [RL.format(3, 5)], []),  # positional: an error in the reference parser
    ("remove_lines(3, line_end=5)", "chunk", [RL.format(3, 5)], []),
    ("remove_lines(all=True)", "chunk", ["remove_lines(all=True)"], []),
    ("keep_chunk()", "chunk", ["keep_chunk()"], []),
    ("untouch_doc()", "chunk", ["untouch_doc()"], []),
    ('normalize(source_str="Share this:", target_str="")', "chunk",
     ["normalize(source_str='Share this:', target_str='')"], []),
    ('normalize("Click here")', "chunk", ["normalize(source_str='Click here', target_str='')"], []),
    ('normalize(source="a", target="b")', "chunk", ["normalize(source_str='a', target_str='b')"], []),
    ("drop_doc()", "doc", ["drop_doc()"], []),
    ("keep_doc()", "doc", ["keep_doc()"], []),
    ("keep_doc() # no drop needed", "doc", ["keep_doc()"], []),  # P9: not a "drop" substring match
    # --- the reference parser's string bugs (P4) ---
    ('normalize(source_str="a (b)", target_str="")', "chunk", ["normalize(source_str='a (b)', target_str='')"], []),
    ('normalize(source_str="http://x.co.uk/citations?user=abc", target_str="")', "chunk",
     ["normalize(source_str='http://x.co.uk/citations?user=abc', target_str='')"], []),
    ('normalize(source_str="a, b, c", target_str="")', "chunk", ["normalize(source_str='a, b, c', target_str='')"],
     []),
    ("normalize(source_str='single quoted', target_str='')", "chunk",
     ["normalize(source_str='single quoted', target_str='')"], []),
    (r'normalize(source_str="tab\there \"q\"", target_str="")', "chunk",
     ["normalize(source_str='tab\\there \"q\"', target_str='')"], []),
    # --- layout the executor tolerates: fences, comments, blank lines, duplicates ---
    ("```python\n# lines 0-2 are a menu\nremove_lines(line_start=0, line_end=2)\n\n```", "chunk",
     [RL.format(0, 2)], []),
    ("remove_lines(start=7, end=7)\n" * 5, "chunk", [RL.format(7, 7)], []),  # P7: repeated output, applied once
    ("   keep_chunk()   ", "chunk", ["keep_chunk()"], []),
    # --- code, not data: rejected, never run ---
    ("__import__('os').system('rm -rf /')", "chunk", [], ["attribute_call"]),
    ("import os", "chunk", [], ["syntax"]),
    ("os.system('ls')", "chunk", [], ["attribute_call"]),
    ("exec('print(1)')", "chunk", [], ["unknown_function"]),
    ("eval('1+1')", "chunk", [], ["unknown_function"]),
    ("open('/etc/passwd')", "chunk", [], ["unknown_function"]),
    ("remove_lines(line_start=x, line_end=2)", "chunk", [], ["non_literal_argument"]),
    ("remove_lines(line_start=int('3'), line_end=4)", "chunk", [], ["non_literal_argument"]),
    ("remove_lines(line_start=1+2, line_end=4)", "chunk", [], ["non_literal_argument"]),
    ('normalize(source_str=f"{x}", target_str="")', "chunk", [], ["non_literal_argument"]),
    ("normalize(source_str=[c for c in 'ab'], target_str='')", "chunk", [], ["non_literal_argument"]),
    ("normalize(source_str=(lambda: 'a')(), target_str='')", "chunk", [], ["non_literal_argument"]),
    ("remove_lines(**{'line_start': 1, 'line_end': 2})", "chunk", [], ["non_literal_argument"]),
    ("remove_lines(*[1, 2])", "chunk", [], ["non_literal_argument"]),
    ("remove_lines", "chunk", [], ["not_a_call"]),
    ("x = remove_lines(1, 2)", "chunk", [], ["syntax"]),
    ("remove_lines(1, 2); drop_doc()", "chunk", [], ["syntax"]),
    ("(remove_lines)(1, 2)", "chunk", [RL.format(1, 2)], []),  # still a plain Name call
    ("remove_lines(1, 2)(3)", "chunk", [], ["not_a_call"]),
    # --- wrong shapes and values ---
    ("remove_lines(line_start=5, line_end=3)", "chunk", [], ["bad_range"]),  # P11
    ("remove_lines(line_start=-1, line_end=3)", "chunk", [], ["bad_range"]),
    ("remove_lines(line_start=1.5, line_end=3)", "chunk", [], ["bad_arguments"]),
    ("remove_lines(line_start=True, line_end=3)", "chunk", [], ["bad_arguments"]),
    ("remove_lines(line_start='1', line_end='3')", "chunk", [], ["bad_arguments"]),
    ("remove_lines(1)", "chunk", [], ["bad_arguments"]),
    ("remove_lines(1, 2, 3)", "chunk", [], ["bad_arguments"]),
    ("remove_lines(1, line_start=2)", "chunk", [], ["bad_arguments"]),
    ("remove_lines(first=1, last=2)", "chunk", [], ["bad_arguments"]),
    ("remove_lines(all=False)", "chunk", [], ["bad_arguments"]),
    ("remove_lines(all=True, line_start=1)", "chunk", [], ["bad_arguments"]),
    ("remove_lines(line_start=1, line_start=2, line_end=3)", "chunk", [], ["bad_arguments"]),
    ("remove_lines(line_start=10**100, line_end=3)", "chunk", [], ["non_literal_argument"]),
    (f"remove_lines(line_start={10**12}, line_end={10**12})", "chunk", [], ["int_out_of_range"]),
    ("remove_lines(line_start=" + "9" * 5000 + ", line_end=1)", "chunk", [], ["too_long"]),
    ('normalize(source_str="", target_str="x")', "chunk", [], ["empty_source"]),
    ('normalize(source_str=" ", target_str="")', "chunk", [], ["empty_source"]),
    ('normalize(source_str="a\\nb", target_str="")', "chunk", [], ["multiline_normalize"]),
    ('normalize(source_str=b"bytes", target_str="")', "chunk", [], ["bad_arguments"]),
    ("normalize(source_str=None)", "chunk", [], ["bad_arguments"]),
    ('normalize(source_str="' + "a" * 1500 + '")', "chunk", [], ["string_too_long"]),
    ("keep_chunk(1)", "chunk", [], ["bad_arguments"]),
    ("drop_doc(reason='spam')", "doc", [], ["bad_arguments"]),
    # --- wrong level, unknown names, garbage ---
    ("drop_doc()", "chunk", [], ["wrong_level"]),
    ("remove_lines(0, 1)", "doc", [], ["wrong_level"]),
    ("delete_lines(0, 1)", "chunk", [], ["unknown_function"]),
    ("Remove_Lines(0, 1)", "chunk", [], ["unknown_function"]),
    ("The document looks fine to me.", "doc", [], ["syntax"]),
    ("remove_lines(line_start=0, line_end=2", "chunk", [], ["syntax"]),  # unclosed
    ("((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((("
     "(((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((",
     "chunk", [], ["syntax"]),  # deep nesting: a SyntaxError, not a crash
    ("'just a string'", "chunk", [], ["not_a_call"]),
    ("\x00\x01 remove_lines(1,2)", "chunk", [], ["syntax"]),
    # --- mixtures: valid calls survive beside rejected lines, in order ---
    ("remove_lines(0, 0)\nos.system('x')\nnormalize('ad', '')", "chunk",
     [RL.format(0, 0), "normalize(source_str='ad', target_str='')"], ["attribute_call"]),
    ("", "chunk", [], []),
    ("\n\n# nothing to do\n", "chunk", [], []),
]


@pytest.mark.parametrize(("program", "level", "calls", "reasons"), CATALOGUE,
                         ids=[f"{i:02d}" for i in range(len(CATALOGUE))])
def test_catalogue_program_parses_to_its_expected_calls_and_rejections(program, level, calls, reasons):
    parsed = parse_program(program, level)
    assert [c.text() for c in parsed.calls] == calls
    assert [r.reason for r in parsed.rejected] == reasons


def test_the_catalogue_has_at_least_forty_programs_most_of_them_hostile():
    assert len(CATALOGUE) >= 40
    assert sum(bool(reasons) for *_, reasons in CATALOGUE) >= 40


def test_a_program_cut_at_max_tokens_rejects_its_partial_last_line_as_not_an_error():
    parsed = parse_program("remove_lines(start=7, end=7)\nremove_lines(start=7, end=7)\nremove_li", "chunk",
                           truncated=True)
    assert [c.text() for c in parsed.calls] == [RL.format(7, 7)] and parsed.duplicates == 1
    assert [r.reason for r in parsed.rejected] == ["truncated_output"] and parsed.errors == 0


def test_calls_beyond_the_limit_are_rejected_and_long_rejected_lines_are_shortened():
    text = "\n".join(RL.format(i, i) for i in range(10))
    parsed = parse_program(text, "chunk", ProgramLimits(max_calls=4))
    assert len(parsed.calls) == 4 and [r.reason for r in parsed.rejected] == ["too_many_calls"] * 6
    long = parse_program("x" * 3000, "chunk")
    assert long.rejected[0].reason == "too_long" and len(long.rejected[0].line) == 200


def test_the_doc_decision_is_the_first_valid_call_not_a_substring():
    assert doc_decision(parse_program("keep_doc() # no drop needed", "doc")) == "keep"
    assert doc_decision(parse_program("```\ndrop_doc()\n```", "doc")) == "drop"
    assert doc_decision(parse_program("I would drop this document.", "doc")) == "unparsed"
    assert doc_decision(parse_program("", "doc")) == "unparsed"


def test_parse_call_never_evaluates_anything(monkeypatch):
    import builtins

    def refuse(*_a, **_k):
        raise AssertionError("evaluated model output")

    monkeypatch.setattr(builtins, "eval", refuse)
    monkeypatch.setattr(builtins, "exec", refuse)
    # (not compile: ast.parse is compile(..., PyCF_ONLY_AST), which builds a tree and runs nothing)
    for program, level, *_ in CATALOGUE:
        parse_program(program, level)


# --- fuzz: any text, including near-miss programs, parses without raising and in bounded time ----------------

_pieces = st.sampled_from(["remove_lines", "normalize", "keep_chunk", "drop_doc", "(", ")", ",", "=", "'", '"',
                           "line_start", "line_end", "all=True", "-", "1", "999999999999", "\\", "\n", "#", "```",
                           "[", "]", "{", "}", "lambda", "*", "**", "f'", "\x00", "é", " "])
_programs = st.one_of(st.text(max_size=400), st.lists(_pieces, max_size=80).map("".join))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=_programs, level=st.sampled_from(["doc", "chunk"]), truncated=st.booleans())
def test_fuzzed_programs_never_raise_and_parse_fast(program, level, truncated):
    # This thread's CPU time with the collector paused: neither other threads of the test process (Spark's py4j
    # callbacks) nor a full collection of the heap earlier tests left behind is parse time.
    gc.disable()
    try:
        started = time.thread_time()
        parsed = parse_program(program, level, truncated=truncated)
        elapsed = time.thread_time() - started
    finally:
        gc.enable()
    lines = max(program.count("\n") + 1, 1)
    assert elapsed / lines < 0.1
    for call in parsed.calls:
        assert call.name in ("drop_doc", "keep_doc") if level == "doc" else call.name != "drop_doc"
        if call.name == "remove_lines" and not call.all_lines:
            assert 0 <= call.line_start <= call.line_end


@settings(max_examples=200, deadline=None)
@given(source=st.text(min_size=1, max_size=50), target=st.text(max_size=50))
def test_any_quoted_string_round_trips_through_normalize(source, target):
    call_text = f"normalize(source_str={source!r}, target_str={target!r})"
    parsed = parse_program(call_text, "chunk")
    if not source.strip() or "\n" in source + target or len(call_text) > 2000:
        assert not parsed.calls
    elif "\r" in call_text or "\x0b" in call_text or "\x0c" in call_text or "\x1c" in call_text \
            or "\x1d" in call_text or "\x1e" in call_text or "\x85" in call_text or "\u2028" in call_text \
            or "\u2029" in call_text:
        pass  # repr() leaves escapes for these; the line still parses as one line
    else:
        assert parse_call(call_text, "chunk", ProgramLimits()).source_str == source
        assert parsed.calls[0].target_str == target


_near_calls = st.builds(
    lambda name, a, sep, b, close: f"{name}({a}{sep}{b}{close}",
    st.sampled_from(["remove_lines", "keep_chunk", "keep_doc", "drop_doc", "untouch_doc", "normalize"]),
    st.sampled_from(["", "1", "0", "007", "12", "-3", "line_start=4", "start=2", "start = 9", " 5", "True", "x"]),
    st.sampled_from(["", ",", ", ", " ,", ",\xa0", ",\u2028", ",\x0c"]),
    st.sampled_from(["", "1", "3", "line_end=4", "end=1", "end = 12", "line_end=99999999999", "2,", "'a'"]),
    st.sampled_from([")", " )", "", ") # c", "))"]))


@settings(max_examples=500, deadline=None)
@given(line=_near_calls, level=st.sampled_from(["doc", "chunk"]))
def test_the_fast_path_agrees_with_the_ast_parser(line, level):
    limits = ProgramLimits()

    def outcome(parse):
        try:
            return parse(line, level, limits)
        except _Reject as err:
            return err.reason

    assert outcome(parse_call) == outcome(_parse_ast)


_quoted = st.text(alphabet=st.sampled_from(list("ab \"'\\,()=\t\x00\u2028é")), max_size=6)


@settings(max_examples=500, deadline=None)
@given(source=_quoted, target=_quoted, quote=st.sampled_from(['"', "'"]),
       form=st.sampled_from(["{s}", "source_str={s}", "source={s}", "{s}, {t}", "{s}, target_str={t}",
                             "source_str={s}, target_str={t}", "source_str={s}, {t}", "target={t}, source={s}",
                             " {s} ,{t} ,", "{s}, target_str={t}, target_str={t}"]))
def test_the_normalize_fast_path_agrees_with_the_ast_parser(source, target, quote, form):
    line = "normalize(" + form.format(s=quote + source + quote, t=quote + target + quote) + ")"
    limits = ProgramLimits(max_string_chars=4)

    def outcome(parse):
        try:
            return parse(line, "chunk", limits)
        except _Reject as err:
            return err.reason

    assert outcome(parse_call) == outcome(_parse_ast)
