"""fastText quality classifier: trained on real labelled texts (Davidson et al. tweets), scored, bad files named."""

import gzip
import json
from pathlib import Path

import pytest

from refinery.jobs.base import InputError
from refinery.jobs.train_quality import read_texts, train
from refinery.udfs.quality.classifier import LOADS, ModelLoadError, fasttext_scores, load_fasttext
from refinery.udfs.quality.train import TrainSettings, roc_auc

DATA = Path(__file__).parent / "data" / "quality"
SMALL = TrainSettings(dim=16, bucket=20_000)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("clf") / "clean.bin"
    report = train([str(DATA / "davidson_neither.jsonl.gz")], [str(DATA / "davidson_offensive.jsonl.gz")],
                   str(path), settings=SMALL)
    return path, report


def test_trained_classifier_beats_chance_on_held_out_texts(model):
    _, report = model
    assert report.valid_positive > 100 and report.valid_negative > 100
    assert report.auc > 0.8 and report.precision > 0.7 and report.recall > 0.7


def test_scores_rank_unseen_texts_and_the_model_loads_once(model):
    path, _ = model
    clf = load_fasttext(str(path))
    assert load_fasttext(str(path)) is clf and LOADS[str(path)] == 1
    clean, offensive = (read_texts(str(DATA / f"davidson_{k}.jsonl.gz")) for k in ("neither", "offensive"))
    scores = fasttext_scores(clf, clean[-200:] + offensive[-200:] + [""], None, 10_000)
    assert scores[-1] is None and all(0.0 <= s <= 1.0 for s in scores[:-1])
    assert roc_auc(scores[:200], scores[200:400]) > 0.75


def test_parquet_input_trains_the_same_split(tmp_path, model):
    import pyarrow as pa
    import pyarrow.parquet as pq

    for kind in ("neither", "offensive"):
        texts = read_texts(str(DATA / f"davidson_{kind}.jsonl.gz"))
        pq.write_table(pa.table({"body": texts}), tmp_path / f"{kind}.parquet")
    report = train([str(tmp_path / "neither.parquet")], [str(tmp_path / "offensive.parquet")], str(tmp_path / "m.bin"),
                   text_field="body", settings=SMALL)
    assert (report.valid_positive, report.valid_negative) == (model[1].valid_positive, model[1].valid_negative)


def test_missing_or_corrupt_model_and_bad_input_are_named(tmp_path):
    with pytest.raises(ModelLoadError, match=r"/nope\.bin: file not found"):
        load_fasttext(str(tmp_path / "nope.bin"))
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"<html>not a model</html>")
    with pytest.raises(ModelLoadError, match=r"junk\.bin: not a fastText"):
        load_fasttext(str(junk))
    broken = tmp_path / "broken.jsonl.gz"
    with gzip.open(broken, "wt") as f:
        f.write(json.dumps({"text": "fine"}) + "\n{oops\n")
    with pytest.raises(InputError, match=r"broken\.jsonl\.gz line 2: not valid JSON"):
        read_texts(str(broken))


def test_roc_auc_counts_ties_half():
    assert roc_auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert roc_auc([0.5], [0.5]) == 0.5
    assert roc_auc([0.1], [0.9]) == 0.0
