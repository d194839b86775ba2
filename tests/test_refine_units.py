"""The refine stage without Spark: line-numbered chunking, execution rules, the Llama-2 layout and truncation,
recorded programs served by an in-process OpenAI-compatible server (exact refined text), and the tiny model's
garbage output becoming counted outcomes."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refinery.udfs.llm import EngineSpec, Sampling
from refinery.udfs.llm.templates import llama2_prompt
from refinery.udfs.refine.execute import ChunkRules, apply_programs, number_lines, scope_calls, split_chunks
from refinery.udfs.refine.program import parse_program
from refinery.udfs.refine.udf import PROX_PROMPTS, RefineSettings, fit_document, load_teacher_prompts, refine_slice

from .conftest import sample_texts
from .test_llm_engines import serve


def words(texts: list[str]) -> list[int]:
    return [len(t.split()) for t in texts]


def run(text: str, programs: dict[tuple[int, int], str], rules: ChunkRules | None = None):
    """Parse and scope each (first, last) chunk's program, then execute; returns (outcome, scoped parts)."""
    scoped, errors = [], 0
    for (first, last), program in programs.items():
        part = scope_calls(parse_program(program, "chunk"), first, last)
        errors += parse_program(program, "chunk").errors + len(part.rejected)
        scoped.append((first, last, part))
    return apply_programs(text, scoped, rules or ChunkRules(), errors), [p for _, _, p in scoped]


TEXT = "\n".join(f"line {i} has some words in it for counting" for i in range(12))


def test_lines_are_numbered_globally_from_zero_and_split_on_newline_only():
    assert number_lines("a\nb\r c\u2028d\n") == ["[000]a", "[001]b\r c\u2028d", "[002]"]
    assert number_lines("\n".join("x" * 1001))[1000] == "[1000]x"


def test_chunks_pack_whole_lines_within_the_budget_and_flag_an_over_long_line():
    text = "\n".join(["one two three"] * 5 + ["w " * 50] + ["four five"] * 3)
    chunks = split_chunks(text, words, max_tokens=10)
    assert [(c.first_line, c.last_line) for c in chunks] == [(0, 1), (2, 3), (4, 4), (5, 5), (6, 8)]
    assert [c.too_long for c in chunks] == [False, False, False, True, False]
    assert all(c.tokens <= 10 for c in chunks if not c.too_long)
    assert chunks[1].text == "[002]one two three\n[003]one two three"


def test_remove_lines_is_inclusive_and_clipped_to_its_chunk():
    outcome, parts = run(TEXT, {(0, 5): "remove_lines(line_start=4, line_end=9)", (6, 11): "keep_chunk()"})
    assert parts[0].clipped == 1 and outcome.lines_removed == 2  # 4-5 only: 6-9 belong to the next chunk
    assert outcome.refined_text == "\n".join(TEXT.split("\n")[:4] + TEXT.split("\n")[6:])


def test_a_range_wholly_outside_its_chunk_is_rejected_and_counts_as_an_error():
    outcome, parts = run(TEXT, {(0, 5): "remove_lines(8, 9)", (6, 11): "remove_lines(start=6, end=6)"})
    assert [r.reason for r in parts[0].rejected] == ["out_of_chunk"]
    assert outcome.status == "refined" and outcome.lines_removed == 1


def test_normalize_acts_only_on_its_own_chunk_and_calls_apply_in_order():
    text = "Share this page\nreal content here with enough words to stay\nShare this page\nmore real words here now"
    outcome, _ = run(text, {(0, 1): "keep_chunk()",
                            (2, 3): 'normalize("Share this", "Send")\nnormalize("Send page", "")'})
    assert outcome.refined_text.split("\n") == ["Share this page", "real content here with enough words to stay",
                                                "", "more real words here now"]
    assert outcome.normalizations == 2


def test_documents_left_with_too_little_are_dropped_by_ratio_then_by_word_count():
    assert run(TEXT, {(0, 11): "remove_lines(0, 11)"})[0].status == "dropped_mostly_removed"
    assert run(TEXT, {(0, 11): "remove_lines(all=True)"})[0].keep is False
    short = "tiny page\nwith nine words in all of it ok"
    assert run(short, {(0, 1): "keep_chunk()"})[0].status == "dropped_too_few_words"
    loose = ChunkRules(min_kept_ratio=0.0, min_kept_words=0)
    assert run(TEXT, {(0, 11): "remove_lines(0, 10)"}, loose)[0].status == "refined"


def test_an_empty_document_is_dropped_not_divided_by_zero():
    assert run("", {(0, 0): "keep_chunk()"})[0].status == "dropped_too_few_words"
    assert run("  \n \t", {(0, 1): "remove_lines(0, 0)"})[0].status == "dropped_too_few_words"


_lines = st.lists(st.text(alphabet=st.sampled_from(list("ab  \t.")), max_size=12), min_size=1, max_size=12)
_calls = st.lists(st.one_of(
    st.tuples(st.integers(0, 12), st.integers(0, 4)).map(lambda p: f"remove_lines({p[0]}, {p[0] + p[1]})"),
    st.sampled_from(['normalize("a", "")', 'normalize("a b", "b")', 'normalize(".", " . x ")', "keep_chunk()",
                     'normalize("b", "")'])), max_size=6)


@settings(max_examples=300, deadline=None)
@given(lines=_lines, calls=_calls, ratio=st.sampled_from([0.0, 0.05, 0.3, 0.5, 0.9, 1.0]),
       min_words=st.integers(0, 12))
def test_the_bounded_word_rule_decides_as_prox_counting_every_word(lines, calls, ratio, min_words):
    text = "\n".join(lines)
    rules = ChunkRules(max_rejected_lines=None, min_kept_ratio=ratio, min_kept_words=min_words)
    outcome, _ = run(text, {(0, len(lines) - 1): "\n".join(calls)}, rules)
    refined = "\n".join(  # the naive execution, then ProX's rule counting every word of both texts
        line for i, line in enumerate(_naive(lines, calls)) if i not in _naive_removed(calls, len(lines)))
    words, kept = len(text.split()), len(refined.split())
    if words and kept / words <= ratio:
        assert outcome.status == "dropped_mostly_removed"
    elif kept <= min_words:
        assert outcome.status == "dropped_too_few_words"
    else:
        assert outcome.keep and (outcome.refined_text or text) == refined


def _naive(lines: list[str], calls: list[str]) -> list[str]:
    out = list(lines)
    for c in parse_program("\n".join(calls), "chunk").calls:  # parsed: repeated calls apply once
        if c.name == "normalize":
            out = [line.replace(c.source_str, c.target_str) for line in out]
    return out


def _naive_removed(calls: list[str], n: int) -> set[int]:
    gone = set()
    for c in parse_program("\n".join(calls), "chunk").calls:
        if c.name == "remove_lines":
            gone |= set(range(c.line_start, min(c.line_end, n - 1) + 1))
    return gone


def test_two_rejected_lines_keep_the_original_text_as_prox_does():
    outcome, _ = run(TEXT, {(0, 11): "remove_lines(0, 3)\nos.system('x')\ndelete(1)"})
    assert outcome.status == "program_rejected" and outcome.keep and outcome.refined_text is None
    assert run(TEXT, {(0, 11): "remove_lines(0, 3)\nos.system('x')"})[0].status == "refined"
    off = ChunkRules(max_rejected_lines=None)
    assert run(TEXT, {(0, 11): "remove_lines(0, 3)\nx\ny\nz"}, off)[0].lines_removed == 4


def test_the_llama2_layout_matches_llama2_chat():
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": " doc \n"}]
    # as the Llama-2-chat template: the joined system + user content is stripped at its two ends only
    assert llama2_prompt(messages) == "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\n doc [/INST]"
    assert llama2_prompt([{"role": "user", "content": "u"}]) == "<s>[INST] u [/INST]"


def test_teacher_prompts_are_versioned_and_wrap_chunks_like_prox():
    prompts = load_teacher_prompts()
    assert prompts.version == "teacher_v1"
    user = prompts.chunk_messages("[000]x")[-1]["content"]
    assert user == PROX_PROMPTS.chunk_messages("[000]x")[-1]["content"] == "[doc]\n[000]x\n[/doc]"


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def test_a_long_document_is_cut_so_the_prompt_keeps_its_generation_cue(tokenizer):
    from refinery.udfs.llm.templates import render_ids

    doc = " ".join(sample_texts())[:20000]
    cut = fit_document(doc, tokenizer, PROX_PROMPTS, "llama2", 300)
    ids = render_ids(tokenizer, PROX_PROMPTS.doc_messages(cut), "llama2")
    tail = tokenizer(" [/INST]", add_special_tokens=False)["input_ids"]
    assert 250 < len(ids) <= 300 and ids[-len(tail):] == tail and doc.startswith(cut)
    assert ids[0] == tokenizer.bos_token_id
    assert fit_document("short text", tokenizer, PROX_PROMPTS, "llama2", 300) == "short text"


# --- recorded programs from an in-process OpenAI-compatible server: the exact refined text ----------------------

ORCHID = "\n".join([
    "Home | About | Contact",
    "Orchid care for beginners",
    "Orchids need bright, indirect light (not direct sun). Share this: Facebook",
    "Water them once a week and let the roots dry out between waterings.",
    "Repot every two years in fresh bark, never in garden soil.",
    "Share this: Facebook",
    "(c) 2024 Garden Weekly, all rights reserved",
])
ORCHID_REFINED = "\n".join([
    "Orchid care for beginners",
    "Orchids need bright, indirect light (not direct sun).",
    "Water them once a week and let the roots dry out between waterings.",
    "Repot every two years in fresh bark, never in garden soil.",
])
CASINO = "Best casino bonus codes online casino free spins casino casino bonus"
LIBRARY = ("The committee met on Tuesday and approved the budget for the new public library.\n"
           "Construction is expected to start in the spring and to finish within two years.")
MENU = "\n".join(["Menu"] * 30 + ["Only seven words of content are left."])
RECORDED = {  # marker in the prompt -> (doc program, chunk program)
    "Orchid care": ("keep_doc()", "```python\n# navigation\nremove_lines(line_start=0, line_end=0)\n"
                    "normalize(source_str=\" Share this: Facebook\", target_str=\"\")\n"
                    "remove_lines(start=5, end=6)\nos.system('rm -rf /')\n```"),
    "casino": ("drop_doc()", "keep_chunk()"),
    "committee": ("The page is fine, keep it.", "keep_chunk()"),
    "Menu": ("keep_doc()", "remove_lines(0, 29)"),
}


def test_recorded_programs_served_over_http_give_the_exact_refined_text(tiny_model, tokenizer):
    prompts_seen = []
    lock = threading.Lock()

    def completions(body: dict):
        text = tokenizer.decode(body["prompt"])
        with lock:
            prompts_seen.append(text)
        level = 1 if "[doc]" in text else 0
        program = next(p[level] for marker, p in RECORDED.items() if marker in text)
        choice = {"index": 0, "text": program, "finish_reason": "stop"}
        return 200, {}, {"choices": [choice], "usage": {"prompt_tokens": len(body["prompt"]),
                                                        "completion_tokens": 9}}

    server, seen = serve(completions)
    try:
        spec = EngineSpec(engine="openai", model=str(tiny_model), prompt_template="llama2", timeout_s=5.0,
                          base_url=f"http://127.0.0.1:{server.server_port}/v1", max_retries=0)
        settings = RefineSettings(("doc", "chunk"), spec, spec, PROX_PROMPTS, Sampling(64, 0.0, 0.9),
                                  Sampling(256, 0.0, 0.9))
        rows = refine_slice(["a", "b", "c", "d"], [ORCHID, CASINO, LIBRARY, MENU], settings)
    finally:
        server.shutdown()
    orchid, casino, library, menu = rows
    assert orchid["status"] == "refined" and orchid["refined_text"] == ORCHID_REFINED and orchid["keep"]
    assert orchid["lines_removed"] == 3 and orchid["normalizations"] == 1 and orchid["rejected_lines"] == 1
    assert orchid["chunk_programs"][0]["rejected"] == [{"line": "os.system('rm -rf /')", "reason": "attribute_call"}]
    assert orchid["chars_removed"] == len(ORCHID) - len(ORCHID_REFINED)
    assert casino["status"] == "dropped_doc" and not casino["keep"] and casino["chunk_count"] == 0
    assert library["doc_decision"] == "unparsed" and library["status"] == "kept" and library["refined_text"] is None
    assert menu["status"] == "dropped_too_few_words" and menu["lines_removed"] == 30
    # 4 doc prompts + 3 chunk prompts (the dropped document gets none), all in ProX's layout and formats
    assert len(seen) == 7 and all(b["max_tokens"] in (64, 256) and isinstance(b["prompt"][0], int)
                                  for _, b, _ in seen)
    system = "<s>[INST] <<SYS>>\nYou are a helpful, respectful and honest assistant.\n<</SYS>>\n\n"
    assert all(p.startswith(system) and p.endswith(" [/INST]") for p in prompts_seen)
    assert f"{system}[doc]\n[000]Home | About | Contact\n[001]Orchid care" in "".join(prompts_seen)
    assert f"{system}{ORCHID} [/INST]" in prompts_seen


def test_the_tiny_models_garbage_becomes_counted_outcomes_not_errors(tiny_model):
    spec = EngineSpec(engine="transformers", model=str(tiny_model), max_model_len=1024, batch_size=4,
                      prompt_template="llama2")
    settings = RefineSettings(("doc", "chunk"), spec, spec, PROX_PROMPTS, Sampling(12, 0.0, 0.9),
                              Sampling(24, 0.0, 0.9), doc_max_prompt_tokens=400, chunk_max_tokens=200)
    texts = sample_texts(4)
    rows = refine_slice([str(i) for i in range(len(texts))], texts, settings)
    assert len(rows) == len(texts)
    for row in rows:
        assert row["doc_decision"] == "unparsed" and row["keep"]  # unparsed doc output: kept, as ProX
        assert row["status"] in ("kept", "program_rejected", "dropped_too_few_words")
        assert row["chunk_count"] == len(row["chunk_programs"]) >= 1
        statuses = {c["status"] for c in row["chunk_programs"]}
        assert statuses <= {"unparsed", "empty", "partial", "ok", "skipped_too_long"}
        assert row["rejected_lines"] == sum(r["reason"] != "truncated_output" for c in row["chunk_programs"]
                                            for r in c["rejected"])
        assert row["prompt_tokens"] > 0 and row["output_tokens"] > 0
    assert any(row["doc_truncated"] for row in rows) or max(len(t) for t in texts) < 400


def test_refine_settings_pick_the_layout_models_and_prompts_from_config(tmp_path):
    from refinery.jobs.config import ConfigError, load_config
    from refinery.jobs.refine import refine_settings, settings_hash

    prox = load_config(overrides=["llm.model=/m/chunk", "llm.model_name=chunky", "refine.doc_model=/m/doc"],
                       environ={})
    settings, labels = refine_settings(prox.refine, prox.llm)
    assert settings.doc_spec.model == "/m/doc" and settings.chunk_spec.model == "/m/chunk"
    assert settings.doc_spec.prompt_template == "llama2" and labels == {"doc": "/m/doc", "chunk": "chunky"}
    assert settings.doc_sampling.max_tokens == 64 and settings.chunk_sampling.temperature == 0.0
    teacher = load_config(overrides=["llm.model=/m/instruct", "refine.mode=teacher", "refine.levels=[chunk]"],
                          environ={})
    t_settings, t_labels = refine_settings(teacher.refine, teacher.llm)
    assert t_settings.doc_spec is None and t_settings.chunk_spec.prompt_template == "chat"
    assert t_settings.prompts.version == "teacher_v1" and t_labels["doc"] is None
    assert settings_hash(settings, labels) != settings_hash(t_settings, t_labels)
    with pytest.raises(ConfigError, match=r"llm.model: not set.*refine stage"):
        refine_settings(load_config(environ={}).refine, load_config(environ={}).llm)
    bad = load_config(overrides=["llm.model=/m", "refine.mode=teacher", f"refine.teacher_prompts={tmp_path}/x.yaml"],
                      environ={})
    with pytest.raises(ConfigError, match=r"refine.teacher_prompts: .*x.yaml: not found"):
        refine_settings(bad.refine, bad.llm)
    with pytest.raises(ConfigError, match=r"refine.levels"):
        load_config(overrides=["refine.levels=[doc, doc]"], environ={})


def test_teacher_mode_sends_our_few_shot_prompts_as_chat_and_executes_the_same_way(tiny_model):
    def chat(body: dict):
        user = body["messages"][-1]["content"]
        program = "keep_doc()" if "Page:" in user else "```python\nremove_lines(line_start=0, line_end=0)\n```"
        return 200, {}, {"choices": [{"message": {"role": "assistant", "content": program},
                                      "finish_reason": "stop"}], "usage": {"prompt_tokens": 50,
                                                                          "completion_tokens": 5}}

    server, seen = serve(chat)
    try:
        spec = EngineSpec(engine="openai", model=str(tiny_model), prompt_template="chat", timeout_s=5.0,
                          base_url=f"http://127.0.0.1:{server.server_port}/v1", max_retries=0)
        teacher = load_teacher_prompts()
        settings = RefineSettings(("doc", "chunk"), spec, spec, teacher, Sampling(64, 0.0, 0.9),
                                  Sampling(256, 0.0, 0.9))
        [row] = refine_slice(["a"], [ORCHID], settings)
    finally:
        server.shutdown()
    assert row["doc_decision"] == "keep" and row["status"] == "refined"
    assert row["refined_text"] == ORCHID.split("\n", 1)[1]
    doc_body, chunk_body = (b for _, b, _ in seen)
    assert doc_body["messages"][0]["content"] == teacher.doc_system and "prompt" not in doc_body
    assert chunk_body["messages"][-1]["content"].startswith("[doc]\n[000]Home | About | Contact\n[001]")
    assert "remove_lines(line_start=A, line_end=B)" in chunk_body["messages"][0]["content"]
