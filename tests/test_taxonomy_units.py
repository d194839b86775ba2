"""The EAI taxonomy parser (compact and teacher formats), label sets and the long-document subsampling."""

from __future__ import annotations

import pytest

from refinery.udfs.label.taxonomy import (
    CATEGORIES,
    code_columns,
    compact_output,
    label_codes,
    label_names,
    parse_compact,
    parse_teacher,
    subsample,
)
from refinery.udfs.label.udf import LabelPromptError, LabelSettings, label_row, load_teacher_prompts
from refinery.udfs.llm import Generation

from .conftest import SAMPLE

CALCULUS = "515.33,510.71\n3,2\n3,2\n3,-1\n3,0\n0,-1\n23,10\n4,3\n4,3\n3,2"


def test_a_compact_output_becomes_typed_codes_with_fdc_levels_as_strings():
    parsed = parse_compact(CALCULUS + "\n", "stop")
    assert parsed.status == "ok" and parsed.error is None
    row = parsed.columns()
    assert (row["fdc_primary"], row["fdc_primary_l1"], row["fdc_primary_l2"], row["fdc_primary_l3"]) == \
        ("515.33", "5", "51", "515")
    assert row["fdc_secondary_l3"] == "510"
    assert row["document_type_v1_primary"] == 3 and row["document_type_v1_secondary"] is None  # -1 = abstain
    assert row["extraction_artifacts_secondary"] == 0  # code 0 is a real label, not a missing one
    assert row["document_type_v2_primary"] == 23 and row["education_level_secondary"] == 2
    assert set(row) == {name for name, _ in code_columns()}


def test_leading_zeros_blank_lines_skip_and_missing_secondaries_are_read_as_written():
    parsed = parse_compact("\n004.6\n\n3,skip\n3,\n4\n0\n0\n8,23\n3\n4\n 3 , 2 \n", "stop")
    assert parsed.status == "ok"
    row = parsed.columns()
    assert row["fdc_primary"] == "004.6" and row["fdc_primary_l2"] == "00" and row["fdc_secondary"] is None
    assert row["bloom_cognitive_process_secondary"] is None and row["education_level_secondary"] == 2


def test_a_secondary_equal_to_its_primary_is_dropped_and_counted():
    parsed = parse_compact(CALCULUS.replace("\n4,3\n4,3\n", "\n4,4\n4,3\n"), "stop")
    assert parsed.status == "ok" and parsed.repeated_secondaries == 1
    assert parsed.columns()["reasoning_depth_secondary"] is None


@pytest.mark.parametrize("output, status, detail", [
    ("515.33,510.71\n3,2\n3,2", "missing_category", "first missing: document_type_v1"),
    (CALCULUS + "\n5,1", "malformed", "11 lines"),
    (CALCULUS.replace("23,10", "26,10"), "invalid_code", "document_type_v2: '26'"),
    (CALCULUS.replace("3,0\n0,-1", "3,0\n7,-1"), "invalid_code", "missing_content: '7'"),
    (CALCULUS.replace("515.33", "51"), "invalid_code", "not an FDC code"),
    (CALCULUS.replace("4,3\n4,3", "4,3,1\n4,3"), "malformed", "more than two codes"),
    (CALCULUS.replace("3,2\n3,2\n3,-1", "3 - Apply,2\n3,2\n3,-1"), "invalid_code", "'3 - Apply'"),
    (CALCULUS.replace("3,-1", "3,-2"), "invalid_code", "'-2'"),
])
def test_a_wrong_compact_output_is_a_named_outcome_with_no_codes(output, status, detail):
    parsed = parse_compact(output, "stop")
    assert parsed.status == status and detail in parsed.error
    assert all(v is None for v in parsed.columns().values())


def test_an_output_cut_at_the_token_limit_is_truncated_even_if_its_lines_parse():
    assert parse_compact(CALCULUS, "length").status == "truncated"


def test_compact_output_round_trips_through_the_parser():
    codes = parse_compact(CALCULUS, "stop").codes
    assert parse_compact(compact_output(codes), "stop").codes == codes


PASS_1 = """Content Analysis:
1. Core themes: Division of fractions

Classification Logic:
Dewey Decimal Classification: 513.212 is the best fit.

Final Classification:

DDS: Primary Classification: 513.212  - Arithmetic operations on fractions
DDS: Secondary Classification: 510.71  - Mathematics study and teaching

Bloom Cognitive Process: Primary Classification: 2 - UNDERSTAND
Bloom Cognitive Process: Secondary Classification: 3 - APPLY

Bloom Knowledge Domain: Primary Classification: 3 - PROCEDURAL
Bloom Knowledge Domain: Secondary Classification: 1 - FACTUAL

Document Type: Primary Classification: 3 - Reference/Encyclopedic/Educational
Document Type: Secondary Classification: -1 - Abstain

Extraction Artifacts: Primary Classification: 0 - No Artifacts
Extraction Artifacts: Secondary Classification: 3 - Irrelevant Content

Missing Content: Primary Classification: 0 - No missing content
Missing Content: Secondary Classification: 2 - Click Here References"""

PASS_2 = """Content Analysis: a worked example.
Classification Logic: Document Type: Primary Classification is discussed here before the final block.

Final Classification:
**Document Type: Primary Classification: 23 - Tutorial**
**Document Type: Secondary Classification: 10 - Knowledge Article**
Reasoning Depth: Primary Classification: 2 - Basic Reasoning
Reasoning Depth: Secondary Classification: 3 - Intermediate Reasoning
Technical Correctness: Primary Classification: 4 - Highly Correct
Technical Correctness: Secondary Classification: 3 - Mostly Correct
Educational Level: Primary Classification: 1 - General Audience
Educational Level: Secondary Classification: 2 - High School Level"""


def test_the_teachers_two_long_answers_give_the_same_columns_as_the_compact_format():
    parsed = parse_teacher(PASS_1, PASS_2, ("stop", "stop"))
    assert parsed.status == "ok", parsed.error
    expected = "513.212,510.71\n2,3\n3,1\n3\n0,3\n0,2\n23,10\n2,3\n4,3\n1,2"
    assert compact_output(parsed.codes) == expected
    assert parsed.columns() == parse_compact(expected, "stop").columns()


@pytest.mark.parametrize("first, second, reasons, status, detail", [
    (PASS_1.replace("Missing Content: Secondary", "Missing: Secondary"), PASS_2, ("stop", "stop"),
     "missing_category", "pass 1: no 'Missing Content: Secondary"),
    (PASS_1, PASS_2.replace("4 - Highly", "9 - Highly"), ("stop", "stop"), "invalid_code", "technical_correctness"),
    (PASS_1, PASS_2.replace("23 - Tutorial", "Tutorial"), ("stop", "stop"), "invalid_code", "has no code"),
    (PASS_1, PASS_2 + "\nReasoning Depth: Primary Classification: 4 - Advanced", ("stop", "stop"), "malformed",
     "given twice"),
    (PASS_1, PASS_2, ("stop", "length"), "truncated", "pass 2"),
])
def test_a_wrong_teacher_answer_is_a_named_outcome(first, second, reasons, status, detail):
    parsed = parse_teacher(first, second, reasons)
    assert parsed.status == status and detail in parsed.error and parsed.codes == {}


def test_engine_failures_keep_their_reason_and_token_counts_add_up_over_passes():
    row = label_row([Generation(PASS_1, 900, 300, "stop"), Generation(PASS_2, 800, 200, "stop")], "teacher")
    assert row["status"] == "ok" and row["prompt_tokens"] == 1700 and row["output_tokens"] == 500
    assert row["raw_output"] == PASS_1 and row["raw_output_pass2"] == PASS_2
    failed = label_row([Generation(None, 12, 0, "error", "timeout")], "compact")
    assert failed["status"] == "failed_timeout" and failed["finish_reason"] == "error"
    assert failed["fdc_primary"] is None and failed["raw_output_pass2"] is None


def test_the_label_sets_hold_the_papers_codes():
    assert label_codes("document_type_v1") == frozenset(range(1, 18))
    assert label_codes("document_type_v2") == frozenset(range(1, 26))
    assert label_codes("extraction_artifacts") == frozenset(range(0, 5))
    assert label_codes("missing_content") == frozenset(range(0, 7))
    assert label_names()["reasoning_depth"]["2"] == "Basic Reasoning"
    assert label_names()["fdc_level_1"]["5"] == "Science"
    assert len(CATEGORIES) == 10


def test_teacher_prompts_are_versioned_and_fill_every_placeholder_with_braces_left_alone():
    prompts = load_teacher_prompts()
    assert prompts.version >= 1
    first, second = prompts.messages("f(x) = {x}", "https://a.example/p", 12345)
    assert "https://a.example/p" in first[1]["content"] and "12345 characters" in second[1]["content"]
    assert "f(x) = {x}" in first[1]["content"] and "{document}" not in first[1]["content"]


def test_a_teacher_prompt_file_without_a_placeholder_is_rejected_naming_it(tmp_path):
    bad = tmp_path / "teacher.yaml"
    bad.write_text("version: 1\nsystem: s\npass_1: '{url} {num_char}'\npass_2: '{url} {num_char} {document}'\n")
    with pytest.raises(LabelPromptError, match=r"teacher.yaml: pass_1 lacks the placeholder\(s\) \{document\}"):
        load_teacher_prompts(str(bad))


def test_settings_hash_changes_with_model_prompt_and_mode():
    compact = LabelSettings("compact", "taxonomy", None, 100)
    assert compact.settings_hash("m") == LabelSettings("compact", "taxonomy", None, 100).settings_hash("m")
    assert compact.settings_hash("m") != compact.settings_hash("other")
    assert compact.settings_hash("m") != LabelSettings("compact", "tax", None, 100).settings_hash("m")
    teacher = LabelSettings("teacher", "taxonomy", load_teacher_prompts(), 2048)
    assert teacher.prompt_version() == "teacher/v1" and compact.prompt_version() == "compact"


@pytest.fixture(scope="module")
def long_page() -> tuple[str, str]:
    from refinery.udfs.ingest.warc import FileOutcome, IngestSettings, read_warc_documents

    path = str(SAMPLE / "iana-org-2014_pywb_with_revisits.warc.gz")
    docs = read_warc_documents(path, IngestSettings(extractor="resiliparse"), FileOutcome(path))
    page = next(d for d in docs if d["url"] == "http://www.iana.org/protocols")
    return page["doc_id"], page["text"]


def test_a_long_real_page_is_subsampled_to_three_deterministic_10k_windows(long_page):
    doc_id, text = long_page
    assert len(text) > 100_000
    sent = subsample(text, doc_id)
    assert sent == subsample(text, doc_id)  # the reference draws the middle unseeded; ours follows doc_id
    head, rest = sent.split("\n[middle]\n")
    middle, tail = rest.split("\n[end]\n")
    assert head == "[beginning]\n" + text[:10_000] and tail == text[-10_000:]
    start = text.index(middle)
    assert len(middle) == 10_000 and 10_000 <= start and start + 10_000 <= len(text) - 10_000
    assert subsample(text, "another-doc") != sent  # the middle window moves with the id


def test_texts_up_to_the_limit_are_sent_unchanged(long_page):
    _, text = long_page
    assert subsample(text[:30_000], "x") == text[:30_000]
    assert subsample(text[:30_001], "x").startswith("[beginning]\n")


def test_refinery_run_labels_before_rewriting_whenever_a_model_is_configured():
    from refinery.jobs.config import load_config
    from refinery.jobs.main import default_stages, make_stage

    assert "label" not in default_stages(load_config(environ={}))
    stages = default_stages(load_config(overrides=["llm.model=/models/eai-distill-0.5b"], environ={}))
    assert stages[-2:] == ["label", "rewrite"] and make_stage("label").outputs == ("taxonomy", "eai_labels")
