"""Modified Cohen's kappa and NMI: hand-computed values, scikit-learn where the definitions coincide, and
`refinery agreement` on two labeling files."""

from __future__ import annotations

import json
import math
import random

import pytest
from typer.testing import CliRunner

from refinery.cli import app
from refinery.udfs.label.agreement import (
    agreement,
    chance_per_annotator,
    expected,
    kappa,
    label_set,
    labels_for_nmi,
    nmi,
    observed,
    overlap,
)
from refinery.udfs.label.taxonomy import parse_compact

# Two labelers, four documents: agree, overlap on the secondary, disagree, both abstain.
A = [(1,), (1, 2), (2,), ()]
B = [(1,), (2,), (1,), ()]


def test_label_sets_drop_abstentions_keep_code_zero_and_order_primary_first():
    assert label_set(3, None) == (3,) and label_set(None, 2) == (2,) and label_set(-1, -1) == ()
    assert label_set(0, 3) == (0, 3) and label_set(4, 4) == (4,) and label_set(2, 5, top_pick=True) == (2,)
    assert label_set(None, 5, top_pick=True) == (5,)  # the first code present, as the reference's extract


def test_overlap_matches_when_sets_share_a_label_and_jaccard_weights_it():
    assert overlap((1, 2), (2,)) == 1.0 and overlap((1,), (2,)) == 0.0
    assert overlap((), ()) == 1.0 and overlap((), (1,)) == 0.0 and overlap((1,), ()) == 0.0
    assert overlap((1, 2), (2,), weighted=True) == 0.5 and overlap((1, 2), (2, 1), weighted=True) == 1.0


def test_pooled_kappa_equals_the_hand_computed_value():
    # f = (2, 5, 1)/8 sets of size 0/1/2; w = (4, 3)/7; p11 = 25/49, p12 = p21 = p22 = 1 (two labels only)
    # Pe = 4/64 + 25/64 * 25/49 + 2 * 5/64 + 1/64 = 1360/3136; Po = 3/4
    result = agreement("x", A, B, pooled=True)
    assert result.po == 0.75 and result.pe == pytest.approx(1360 / 3136, abs=1e-12)
    assert result.kappa == pytest.approx((0.75 - 1360 / 3136) / (1 - 1360 / 3136), abs=1e-12)


def test_per_labeling_kappa_uses_add_one_smoothed_chance_models():
    # A: f = (2, 3, 2)/7, w = (3, 3)/6;  B: f = (2, 4, 1)/7, w = (3, 2)/5  ->  Pe = 23/49
    result = agreement("x", A, B)
    assert result.pe == pytest.approx(23 / 49, abs=1e-12)
    assert result.kappa == pytest.approx((0.75 - 23 / 49) / (1 - 23 / 49), abs=1e-12)


def test_jaccard_weighted_observed_agreement():
    assert observed([[a, b] for a, b in zip(A, B, strict=True)], weighted=True) == pytest.approx(2.5 / 4)


def test_kappa_falls_back_to_observed_agreement_when_chance_agreement_is_certain():
    assert kappa(0.9, 1.0) == 0.9
    same = agreement("x", [(1,)] * 5, [(1,)] * 5, pooled=True)
    assert same.pe == 1.0 and same.kappa == 1.0


def test_single_primary_labels_without_smoothing_give_scikit_learns_cohen_kappa():
    cohen_kappa_score = pytest.importorskip("sklearn.metrics").cohen_kappa_score
    rng = random.Random(7)
    first = [rng.choice([1, 2, 3, 4, 5]) for _ in range(300)]
    second = [x if rng.random() < 0.6 else rng.choice([1, 2, 3, 4, 5, 6]) for x in first]
    rows = [[(x,), (y,)] for x, y in zip(first, second, strict=True)]
    pe = expected(*chance_per_annotator(rows, smoothing=False))
    assert kappa(observed(rows), pe) == pytest.approx(cohen_kappa_score(first, second), abs=1e-12)


def test_primary_only_unit_weight_nmi_is_scikit_learns_arithmetic_nmi():
    normalized_mutual_info_score = pytest.importorskip("sklearn.metrics").normalized_mutual_info_score
    rng = random.Random(3)
    xs = [rng.choice("abcd") for _ in range(500)]
    ys = [x if rng.random() < 0.5 else rng.choice("efg") for x in xs]
    ours = nmi([(x,) for x in xs], [(y,) for y in ys], [1.0] * len(xs))
    assert ours == pytest.approx(normalized_mutual_info_score(xs, ys, average_method="arithmetic"), abs=1e-9)


def test_nmi_weighs_documents_by_length_and_cross_pairs_at_one_percent():
    # doc 1 (100 chars): X=a, Y=c then d -> (a,c) 100, (a,d) 1;  doc 2 (100 chars): X=b, Y=d -> (b,d) 100
    def h(*ps):
        return -sum(p * math.log2(p) for p in ps)

    hx = h(101 / 201, 100 / 201)
    hy = h(100 / 201, 101 / 201)
    hx_given_y = 101 / 201 * h(1 / 101, 100 / 101)
    want = 2 * (hx - hx_given_y) / (hx + hy)
    assert nmi([("a",), ("b",)], [("c", "d"), ("d",)], [100, 100]) == pytest.approx(want, abs=1e-12)
    assert nmi([("a",), ("a",), ("b",), ("b",)], [("c",), ("c",), ("d",), ("d",)], [1] * 4) == pytest.approx(1.0)
    assert nmi([("a",), ("a",), ("b",), ("b",)], [("c",), ("d",), ("c",), ("d",)], [1] * 4) == pytest.approx(0.0)
    assert labels_for_nmi("5", "5") == ("5", "5") and labels_for_nmi(None, 3) == (3,)


CODE_DOC = "005.133,004.6\n3,4\n3,2\n3,4\n0,3\n0,-1\n8,23\n3,4\n4,3\n3,2"
MATH_DOC = "512.9,510.71\n3,2\n3,2\n3,4\n0,3\n0\n23,10\n3,2\n4,3\n2,3"


def _write(path, outputs: dict[str, str], status: dict[str, str] | None = None) -> str:
    with open(path, "w") as f:
        for doc_id, output in outputs.items():
            row = {"doc_id": doc_id, **parse_compact(output, "stop").columns(), "input_chars": 1000,
                   "status": (status or {}).get(doc_id, "ok")}
            f.write(json.dumps(row) + "\n")
    return str(path)


def test_refinery_agreement_compares_two_labeling_files(tmp_path):
    first = _write(tmp_path / "a.jsonl", {"d1": CODE_DOC, "d2": MATH_DOC, "d3": MATH_DOC, "d4": CODE_DOC})
    second = _write(tmp_path / "b.jsonl", {"d1": CODE_DOC, "d2": MATH_DOC, "d3": CODE_DOC, "d4": CODE_DOC,
                                           "d5": MATH_DOC}, status={"d4": "invalid_code"})
    result = CliRunner().invoke(app, ["agreement", first, second])
    assert result.exit_code == 0, result.output
    assert "agreement over 3 documents" in result.output  # d4 did not parse in B, d5 is not in A
    reasoning = next(line for line in result.output.splitlines() if line.strip().startswith("│ reasoning_depth"))
    # reasoning depth sets: d1 {3,4}/{3,4}, d2 {3,2}/{3,2}, d3 {3,2}/{3,4}: all overlap
    assert "1.0000" in reasoning
    assert "NMI between categories of A" in result.output


def test_refinery_agreement_names_a_missing_file(tmp_path):
    result = CliRunner().invoke(app, ["agreement", str(tmp_path / "nope.jsonl"), str(tmp_path / "b.jsonl")])
    assert result.exit_code == 2 and "nope.jsonl: not found" in " ".join(result.output.split())


def test_a_reference_file_in_the_published_nested_schema_is_read_like_the_taxonomy_table(tmp_path):
    from refinery.jobs.agreement import compare, load_labeling
    from refinery.udfs.label.taxonomy import INT_CATEGORIES

    codes = parse_compact(CODE_DOC, "stop").codes
    nested = {"free_decimal_correspondence": {"primary": {"code": "005.133"}, "secondary": {"code": "004.6"}}}
    for category in INT_CATEGORIES:
        primary, secondary = codes[category]
        nested[category] = {"primary": {"code": str(primary), "label": "x"},
                            "secondary": {"code": "-1" if secondary is None else str(secondary), "label": "x"}}
    reference = tmp_path / "reference.jsonl"
    reference.write_text(json.dumps({"doc_id": "d1", "text": "abc", "eai_taxonomy": nested}) + "\n")
    ours = load_labeling(_write(tmp_path / "ours.jsonl", {"d1": CODE_DOC}))
    theirs = load_labeling(str(reference))
    assert theirs.iloc[0]["fdc_primary_l3"] == "005" and theirs.iloc[0]["input_chars"] == 3
    assert all(k.po == 1.0 for k in compare(ours, theirs).kappas)
