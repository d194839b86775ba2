"""The style library, chunking, style assignment and post-processing on realistic hand-written model outputs."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from refinery.udfs.rewrite.postprocess import (
    OK,
    parse_qa_pairs,
    postprocess,
    remove_markdown,
    strip_enclosing_quotes,
)
from refinery.udfs.rewrite.styles import StyleError, assign_styles, chunk_text, load_styles, synth_id


def words(texts: list[str]) -> list[int]:
    return [len(t.split()) for t in texts]


def tokens(texts: list[str]) -> list[int]:
    """A stand-in for a subword tokenizer: words and punctuation marks."""
    return [len(re.findall(r"\w+|[^\w\s]", t)) for t in texts]


@pytest.fixture(scope="module")
def styles():
    return load_styles()


def run(styles, style_id: str, raw: str, finish: str = "stop", input_tokens: int = 300, seed: int = 1):
    return postprocess(raw, finish, styles[style_id].postprocess, tokens, input_tokens, seed)


def test_the_packaged_library_has_every_style_of_the_three_families(styles):
    assert {s for s in styles if s.startswith("wrap_")} == {"wrap_easy", "wrap_medium", "wrap_hard", "wrap_qa"}
    assert {s for s in styles if s.startswith("nemotron_")} == {
        "nemotron_wikipedia", "nemotron_diverse_qa", "nemotron_distill", "nemotron_extract_knowledge",
        "nemotron_knowledge_list"}
    assert {s for s in styles if s.startswith("beyondweb_")} == {
        "beyondweb_mcq", "beyondweb_dialogue", "beyondweb_structured_summary", "beyondweb_teaching"}
    assert all(s.chunking.max_input_tokens == 300 for k, s in styles.items() if k.startswith("wrap_"))


def test_prompt_messages_put_web_text_with_braces_into_the_template_verbatim(styles):
    messages = styles["wrap_medium"].messages("function f() { return {a: 1}; }")
    assert messages[0]["role"] == "system" and messages[-1]["role"] == "user"
    assert "function f() { return {a: 1}; }" in messages[-1]["content"]


def test_a_style_without_the_text_placeholder_names_the_file_and_style(tmp_path):
    bad = tmp_path / "mine.yaml"
    bad.write_text("styles:\n  - {id: terse, version: 1, user: 'Rewrite this.', max_output_tokens: 10}\n")
    with pytest.raises(StyleError, match=r"mine.yaml, style terse: user: .*\{text\}"):
        load_styles([bad])


def test_chunks_respect_the_token_limit_and_sentence_boundaries():
    text = " ".join(f"Sentence number {i} has exactly seven words." for i in range(40))
    chunks = chunk_text(text, 30, words, "sentence")
    assert all(words([c])[0] <= 30 for c in chunks)
    assert all(c.endswith("words.") for c in chunks)  # never cut inside a sentence
    assert " ".join(chunks) == text


def test_an_over_long_line_is_cut_between_words():
    text = "short line\n" + " ".join(["word"] * 95)
    chunks = chunk_text(text, 40, words, "line")
    assert chunks[0] == "short line" and [words([c])[0] for c in chunks[1:]] == [40, 40, 15]


def test_style_assignment_is_stable_per_document_and_follows_the_quotas():
    mix = {"nemotron_diverse_qa": 0.5, "nemotron_wikipedia": 0.3, "wrap_qa": 0.2}
    ids = [synth_id(str(i), 0, "x", 1, "m") for i in range(6000)]
    first = [assign_styles(d, mix)[0] for d in ids]
    assert first == [assign_styles(d, dict(reversed(mix.items())))[0] for d in ids]  # order of the mix is irrelevant
    shares = Counter(first)
    for style, weight in mix.items():
        assert abs(shares[style] / len(ids) - weight) < 0.025, shares
    assert first != [assign_styles(d, mix, seed=7)[0] for d in ids]
    two = assign_styles(ids[0], mix, k=2)
    assert len(set(two)) == 2


# --- post-processing, one realistic output per rule and style ---------------------------------------------------

WIKI = """Here is a paraphrased version:

The **Eiffel Tower** is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is named after the
engineer Gustave Eiffel, whose company designed and built it between 1887 and 1889."""


def test_nemotron_wikipedia_strips_the_prefix_and_markdown(styles):
    result = run(styles, "nemotron_wikipedia", WIKI)
    assert result.status == OK
    assert result.text.startswith("The Eiffel Tower is a wrought-iron")
    assert "**" not in result.text and "paraphrased" not in result.text


def test_a_bold_prefix_still_counts_as_the_required_prefix(styles):
    assert run(styles, "nemotron_distill", WIKI.replace("Here is a paraphrased version:",
                                                       "**Here is a paraphrased version**")).status == OK


def test_nemotron_output_without_the_required_prefix_is_rejected(styles):
    raw = "Sure! The Eiffel Tower is a wrought-iron lattice tower in Paris, named after Gustave Eiffel, " * 3
    assert run(styles, "nemotron_wikipedia", raw).status == "missing_prefix"
    assert run(styles, "nemotron_extract_knowledge", WIKI).status == "missing_prefix"  # another style's prefix


def test_over_long_nemotron_output_cut_at_max_tokens_is_dropped(styles):
    assert run(styles, "nemotron_wikipedia", WIKI, finish="length").status == "truncated"
    assert run(styles, "wrap_medium", WIKI.split("\n", 2)[2], finish="length").status == OK  # WRAP keeps it


def test_enclosing_quotes_are_removed_but_inner_quotes_kept(styles):
    raw = ('Here is the extracted knowledge:\n"Photosynthesis converts light energy into chemical energy stored in '
           'glucose. It takes place in the chloroplasts of plant cells, which contain the green pigment chlorophyll '
           'and absorb mostly red and blue light."')
    result = run(styles, "nemotron_extract_knowledge", raw)
    assert result.status == OK and result.text.startswith("Photosynthesis") and result.text.endswith("blue light.")
    kept = '"A" is the first letter, "B" the second'
    assert strip_enclosing_quotes(kept) == kept
    assert strip_enclosing_quotes("\u201cCurly quoted.\u201d") == "Curly quoted."


DIVERSE_QA = """Here are the questions and answers based on the provided text:

1. Question: When was the Eiffel Tower built?
Answer: Between 1887 and 1889.

2. **Question:** Who is the tower named after?
**Answer:** Gustave Eiffel, whose company designed and built it.

3. Question: Is the tower made of steel?
Answer: No, it is made of wrought iron.

4. Question: Where does the tower stand?
Answer: On the Champ de Mars in Paris.
5. Question: How tall was it when finished?"""


def test_diverse_qa_parses_pairs_drops_the_dangling_question_and_samples_by_input_length(styles):
    pairs = parse_qa_pairs(remove_markdown(DIVERSE_QA))
    assert len(pairs) == 4 and pairs[1] == ("Who is the tower named after?",
                                            "Gustave Eiffel, whose company designed and built it.")
    full = run(styles, "nemotron_diverse_qa", DIVERSE_QA, input_tokens=600)
    assert full.status == OK and full.text.count("Question: ") == 4 and "How tall" not in full.text
    sampled = run(styles, "nemotron_diverse_qa", DIVERSE_QA, input_tokens=100, seed=3)  # 100/60 -> 2 pairs
    assert sampled.text.count("Question: ") == 2
    assert sampled == run(styles, "nemotron_diverse_qa", DIVERSE_QA, input_tokens=100, seed=3)  # reproducible


def test_qa_output_without_any_complete_pair_is_malformed(styles):
    raw = ("Here are the questions and answers based on the provided text:\nThe Eiffel Tower was built between "
           "1887 and 1889 by the company of Gustave Eiffel. What else would you like to know about it?")
    assert run(styles, "nemotron_diverse_qa", raw).status == "malformed_qa"
    assert run(styles, "wrap_qa", "Question: What is it?\nQuestion: Where is it?").status == "malformed_qa"


def test_wrap_qa_accepts_q_and_a_shorthand_after_chatter(styles):
    raw = ("Sure, here are some questions and answers about the passage:\nQ: What converts light energy?\n"
           "A: Photosynthesis, in the chloroplasts.\nQ: Which pigment is involved?\nA: Chlorophyll, which is green.")
    result = run(styles, "wrap_qa", raw)
    assert result.status == OK
    assert result.text.startswith("Question: What converts light energy?\nAnswer: Photosynthesis")


def test_too_short_outputs_are_rejected(styles):
    assert run(styles, "wrap_easy", "The tower is tall.").status == "too_short"
    assert run(styles, "nemotron_wikipedia", "Here is a paraphrased version:\n").status == "empty"


def test_knowledge_list_needs_list_items(styles):
    ok = ("Here is the list of key information:\n- The Eiffel Tower stands on the Champ de Mars in Paris.\n"
          "- It was built between 1887 and 1889.\n- It is named after the engineer Gustave Eiffel.\n"
          "- It is made of wrought iron and was the tallest man-made structure until 1930.")
    assert run(styles, "nemotron_knowledge_list", ok).status == OK
    prose = ok.replace("\n- ", " ")
    assert run(styles, "nemotron_knowledge_list", prose).status == "malformed_list"


MCQ = """Here are three questions:

**Question 1.** In which city does the Eiffel Tower stand?
A) London
B) Paris
C) Rome
D) Berlin
Answer: B. The text says it stands on the Champ de Mars in Paris.

Question 2. What material is the tower made of?
A) Steel  B) Wrought iron  C) Concrete  D) Wood
Answer: B"""


def test_mcq_needs_lettered_options_and_an_answer_line(styles):
    result = run(styles, "beyondweb_mcq", MCQ)
    assert result.status == OK and not result.text.startswith("Here are") and "**" not in result.text
    no_answer = "\n".join(line for line in MCQ.splitlines() if not line.startswith("Answer"))
    assert run(styles, "beyondweb_mcq", no_answer).status == "malformed_mcq"


def test_dialogue_needs_both_speakers_at_least_twice(styles):
    raw = ("Student: What is the Eiffel Tower made of?\nTeacher: Wrought iron, assembled from thousands of parts.\n"
           "Student: Who built it?\nTeacher: The company of the engineer Gustave Eiffel, between 1887 and 1889.")
    assert run(styles, "beyondweb_dialogue", raw).status == OK
    monologue = "Teacher: " + raw.replace("Student: ", "").replace("\nTeacher: ", " ")
    assert run(styles, "beyondweb_dialogue", monologue).status == "malformed_dialogue"


def test_structured_summary_keeps_its_structure(styles):
    raw = ("Title: The Eiffel Tower\nKey points:\n- Wrought-iron lattice tower in Paris.\n- Built 1887-1889.\n"
           "- Named after Gustave Eiffel.\nTakeaway: An engineering landmark that became the symbol of Paris.")
    result = run(styles, "beyondweb_structured_summary", raw)
    assert result.status == OK and result.text.count("\n- ") == 3
    assert run(styles, "beyondweb_structured_summary", raw.replace("Title: ", "")).status == "malformed_summary"


def test_teaching_tone_removes_headers_and_links(styles):
    raw = ("## Lesson: the Eiffel Tower\nToday we look at a famous [landmark](https://example.org/eiffel). It was "
           "built for the 1889 World's Fair. For example, its 18,038 iron parts were joined by rivets. To recap: "
           "an iron tower, built fast, still standing.")
    result = run(styles, "beyondweb_teaching", raw)
    assert result.status == OK and result.text.startswith("Lesson: the Eiffel Tower\nToday we look at a famous "
                                                          "landmark.")
