"""Agreement between two taxonomy labelings and orthogonality between categories, as Essential-Web v1.0 measures
them (paper §5.1; eai-taxonomy annotation/agreement.py and nmi.py): a modified Cohen's kappa where two label sets
(primary + secondary) match when they overlap, and NMI over every (primary/secondary) label pair weighted by the
document's length. Pure functions over Python lists; the CLI feeds them label columns (never text)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

LabelSet = tuple  # a document's distinct labels in one category, primary first

# The paper's 12 categories: FDC at three levels plus the nine coded ones (our column stems).
AGREEMENT_CATEGORIES = ("fdc_l1", "fdc_l2", "fdc_l3", "bloom_cognitive_process", "bloom_knowledge_domain",
                        "document_type_v1", "extraction_artifacts", "missing_content", "document_type_v2",
                        "reasoning_depth", "technical_correctness", "education_level")
# The paper's average inter-category NMI leaves out FDC levels 1-2 (nested in level 3) and one document type
# version; its text names v2 (the Table 14 caption says v1), and we follow the text.
NMI_AVERAGE_EXCLUDES = ("fdc_l1", "fdc_l2", "document_type_v2")


def columns_of(category: str) -> tuple[str, str]:
    """The taxonomy table's (primary, secondary) columns of a category."""
    if category.startswith("fdc_l"):
        return f"fdc_primary_{category[4:]}", f"fdc_secondary_{category[4:]}"
    return f"{category}_primary", f"{category}_secondary"


def _valid(code) -> bool:
    if code is None or (isinstance(code, float) and math.isnan(code)):
        return False
    return not (isinstance(code, int | float) and code < 0)  # -1 = abstain; 0 is a real code


def label_set(primary, secondary, top_pick: bool = False) -> LabelSet:
    """Primary then secondary, abstentions (None, negative) left out, each label once; top_pick keeps the first."""
    labels: list = []
    for code in (primary, secondary):
        if _valid(code) and code not in labels:
            labels.append(code)
            if top_pick:
                break
    return tuple(labels)


def overlap(a: LabelSet, b: LabelSet, weighted: bool = False) -> float:
    """Match of two label sets: overlap (both empty also match), or their Jaccard similarity when weighted."""
    if not a or not b:
        return 1.0 if len(a) == len(b) else 0.0
    common = len(set(a) & set(b))
    return common / len(set(a) | set(b)) if weighted else float(common > 0)


def observed(rows: Sequence[Sequence[LabelSet]], weighted: bool = False) -> float:
    """P_o: per row the mean match over ordered pairs of annotators, then the mean over rows."""
    total, counted = 0.0, 0
    for row in rows:
        pairs = [(i, j) for i in range(len(row)) for j in range(len(row)) if i != j]
        if pairs:
            total += sum(overlap(row[i], row[j], weighted) for i, j in pairs) / len(pairs)
            counted += 1
    return total / counted if counted else float("nan")


@dataclass(frozen=True)
class Chance:
    """An annotator's chance model: P(emitting 0, 1, 2 labels) and P(label), aligned to `labels`."""

    fertility: tuple[float, float, float]
    weights: tuple[float, ...]
    labels: tuple


def chance_pooled(rows: Sequence[Sequence[LabelSet]]) -> Chance:
    """One shared, unsmoothed model over every annotation (Fleiss-style)."""
    sizes = [0, 0, 0]
    counts: dict[Hashable, int] = defaultdict(int)
    for row in rows:
        for labels in row:
            sizes[len(labels)] += 1
            for label in labels:
                counts[label] += 1
    order = tuple(sorted(counts, key=_sort_key))
    labelled = sum(counts.values())
    return Chance(_ratio(sizes), tuple(counts[x] / labelled for x in order), order)


def chance_per_annotator(rows: Sequence[Sequence[LabelSet]], smoothing: bool = True) -> list[Chance]:
    """One model per annotator (Cohen-style) over the shared label universe, add-one smoothed by default."""
    annotators = len(rows[0]) if rows else 0
    sizes = [[0, 0, 0] for _ in range(annotators)]
    counts: list[dict] = [defaultdict(int) for _ in range(annotators)]
    for row in rows:
        for i, labels in enumerate(row):
            sizes[i][len(labels)] += 1
            for label in labels:
                counts[i][label] += 1
    order = tuple(sorted({x for c in counts for x in c}, key=_sort_key))
    add = 1 if smoothing else 0
    models = []
    for i in range(annotators):
        labelled, seen = sum(counts[i].values()), sum(sizes[i])
        weights = tuple((counts[i][x] + add) / (labelled + add * len(order)) if labelled + add * len(order) else 0.0
                        for x in order)
        fertility = tuple((n + add) / (seen + 3 * add) for n in sizes[i])
        models.append(Chance(fertility, weights, order))
    return models


def expected(a: Chance, b: Chance, weighted: bool = False) -> float:
    """P_e: the chance two independent annotators' label sets match, the second label of a pair drawn without
    replacement, summed over the set sizes (0, 1, 2) both may emit."""
    wa, wb = a.weights, b.weights
    rest_a, rest_b = _rest(wa), _rest(wb)
    both = [x * y for x, y in zip(wa, wb, strict=True)]
    # weighted: a Jaccard of 1/2 for a single label inside a pair, 1/3 for two pairs sharing one label
    scale = {(1, 2): 0.5, (2, 1): 0.5, (2, 2): 1 / 3} if weighted else {}
    p = [[1.0, 0.0, 0.0], [0.0, sum(both), 0.0], [0.0, 0.0, 0.0]]
    p[1][2] = sum(m * (1 + rest_b[x]) for x, m in enumerate(both)) * scale.get((1, 2), 1.0)
    p[2][1] = sum(m * (1 + rest_a[x]) for x, m in enumerate(both)) * scale.get((2, 1), 1.0)
    p[2][2] = sum(m * (1 + rest_a[x]) * (1 + rest_b[x]) for x, m in enumerate(both)) * scale.get((2, 2), 1.0)
    # The sum above counts the pairs [x, y] / [x, y] and [x, y] / [y, x] twice; the reference takes one count
    # back under 0/1 matching and adds 1/3 under Jaccard (where such pairs are worth 1), and so do we.
    correction = 1 / 3 if weighted else -1.0
    for x in range(len(wa)):
        for y in range(len(wa)):
            if x != y:
                first = _draw(wa[x], wa[y])
                second = _draw(wb[y], wb[x]) + _draw(wb[x], wb[y])
                p[2][2] += first * second * correction
    return sum(a.fertility[j] * b.fertility[k] * p[j][k] for j in range(3) for k in range(3))


def kappa(po: float, pe: float) -> float:
    return (po - pe) / (1 - pe) if pe != 1 else po


@dataclass(frozen=True)
class Agreement:
    category: str
    rows: int
    po: float
    pe: float
    kappa: float


def agreement(category: str, first: Sequence[LabelSet], second: Sequence[LabelSet], weighted: bool = False,
              pooled: bool = False) -> Agreement:
    """Kappa of two labelings of the same documents (aligned lists of label sets): per-annotator smoothed chance
    models by default (the reference's --pairwise, as the paper compares a model with GPT-4o / Claude), or one
    pooled model (its default, Fleiss-style)."""
    rows = [[a, b] for a, b in zip(first, second, strict=True)]
    if not rows:
        return Agreement(category, 0, float("nan"), float("nan"), float("nan"))
    po = observed(rows, weighted)
    if pooled:
        model = chance_pooled(rows)
        pe = expected(model, model, weighted)
    else:
        pe = expected(*chance_per_annotator(rows), weighted)
    return Agreement(category, len(rows), po, pe, kappa(po, pe))


def nmi(first: Sequence[Sequence], second: Sequence[Sequence], weights: Sequence[float],
        cross_weight: float = 0.01) -> float:
    """Normalised mutual information 2 I(X;Y) / (H(X) + H(Y)) (log2) of two categories over documents. first[i]
    and second[i] are document i's labels in each category (primary, then secondary; abstentions left out):
    every pair of them is an event, weighted by weights[i] (the reference uses the text length) when both sit
    at the same position and by cross_weight times that otherwise; 1e-20 per cell keeps the logs finite."""
    joint: dict = defaultdict(lambda: defaultdict(float))
    for xs, ys, weight in zip(first, second, weights, strict=True):
        for i, x in enumerate(xs):
            for j, y in enumerate(ys):
                joint[x][y] += weight if i == j else cross_weight * weight
    xs_all = sorted(joint, key=_sort_key)
    ys_all = sorted({y for row in joint.values() for y in row}, key=_sort_key)
    if not xs_all:
        return float("nan")
    tiny = 1e-20
    total = sum(v for row in joint.values() for v in row.values()) + tiny * len(xs_all) * len(ys_all)
    count_x = {x: sum(joint[x].values()) + tiny * len(ys_all) for x in xs_all}
    count_y = {y: sum(joint[x].get(y, 0.0) for x in xs_all) + tiny * len(xs_all) for y in ys_all}
    h_x = _entropy([c / total for c in count_x.values()])
    h_y = _entropy([c / total for c in count_y.values()])
    h_x_given_y = sum(count_y[y] / total * _entropy([(joint[x].get(y, 0.0) + tiny) / count_y[y] for x in xs_all])
                      for y in ys_all)
    if h_x + h_y == 0:
        return float("nan")  # both categories constant: no information to normalise by
    return 2 * (h_x - h_x_given_y) / (h_x + h_y)


def labels_for_nmi(primary, secondary) -> tuple:
    """A document's labels for NMI: primary then secondary, abstentions dropped; unlike label_set a secondary
    equal to the primary stays (FDC levels of 513 and 510 are both 5), as in the reference."""
    return tuple(code for code in (primary, secondary) if _valid(code))


def _entropy(probabilities: Sequence[float]) -> float:
    return -sum(p * math.log2(p) for p in probabilities if p > 0)


def _rest(weights: Sequence[float]) -> list[float]:
    """For each label x: sum over the other labels y of w(y) / (1 - w(y)), i.e. P(y first, then x) / w(x)."""
    shares = [w / (1 - w) if w < 1 else 0.0 for w in weights]
    total = sum(shares)
    return [total - s for s in shares]


def _draw(first: float, second: float) -> float:
    """P(first label, then second label) drawn without replacement."""
    return first * second / (1 - first) if first < 1 else 0.0


def _ratio(counts: Sequence[int]) -> tuple[float, float, float]:
    total = sum(counts)
    return tuple(c / total for c in counts) if total else (1.0, 0.0, 0.0)


def _sort_key(label) -> tuple:
    return (str(type(label).__name__), label)
