"""Integration: export and report over the sample's tables (the CC sample ingested, upstream decisions, synthetic
rows from the tiny model), and the report opened in a real headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from refinery.cli import app
from refinery.jobs.base import InputError, run_stage
from refinery.jobs.ingest import IngestStage
from refinery.jobs.rewrite import RewriteStage
from refinery.jobs.storage import Lakehouse
from refinery.schemas.tables import CONTAMINATION, DOCUMENTS, DUPLICATES, QUALITY
from refinery.udfs.export.mix import shuffle_key

from .conftest import CC_SAMPLE, lake_config
from .test_rewrite_spark import _full_rows

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory, tiny_model):
    """The CC sample ingested, upstream decisions for its first 40 documents (as the rewrite test builds them: the
    real quality, dedup and decontaminate stages take minutes here), and synthetic rows from the tiny model."""
    root = tmp_path_factory.mktemp("export") / "lake"
    config = lake_config(root, "ingest.extractor=resiliparse", f"llm.model={tiny_model}",
                         "llm.model_name=tiny-llama", "llm.max_model_len=1024", "llm.batch_size=8",
                         "rewrite.mix={wrap_easy: 1.0}", "rewrite.max_chunks_per_doc=1", "rewrite.max_seeds=8",
                         "rewrite.max_output_tokens=24", "rewrite.partitions=2")
    assert run_stage(IngestStage(input_glob=str(CC_SAMPLE)), spark, config).status == "succeeded"
    lake_ = Lakehouse(spark, config.storage)
    ids = sorted(r.doc_id for r in lake_.read(DOCUMENTS.name).select("doc_id").collect())[:40]
    # 0-3 dropped by quality, 4-5 duplicates of 6, 7 contaminated; the others are curated
    reasons = [["gopher_short_doc"], ["fineweb_line_punct_ratio", "gopher_short_doc"], ["c4_curly_bracket"],
               ["gopher_short_doc"]]
    upstream = {
        QUALITY: ([(d, i >= 4, reasons[i] if i < 4 else [], (i * 37 % 100) / 100, i % 20) for i, d in enumerate(ids)],
                  "doc_id keep drop_reasons quality_score quality_bucket"),
        DUPLICATES: ([(d, 3 if i in (4, 5, 6) else 1, i not in (4, 5), "near_duplicate" if i in (4, 5) else "unique")
                      for i, d in enumerate(ids)], "doc_id cluster_size is_kept reason"),
        CONTAMINATION: ([(d, i == 7, int(i == 7), int(i == 7), ["gsm8k"] if i == 7 else [], 100, 0, None, None,
                          "0" * 64, "test") for i, d in enumerate(ids)], None),
    }
    for spec, (rows_, columns) in upstream.items():
        lake_.create(spec)
        lake_.merge(spec.name, _full_rows(spark, spec, rows_, columns))
    assert run_stage(RewriteStage(), spark, config).status == "succeeded"
    return config, lake_, len(ids)


def recipe(tmp_path: Path, text: str) -> str:
    path = tmp_path / "mix.yaml"
    path.write_text(text)
    return str(path)


ONE_TO_ONE = """name: wrap_test
seed: {seed}
tokenizer: {tokenizer}
shard_tokens: 50
sources:
  - {{name: real, kind: curated, ratio: 1}}
  - {{name: wrap, kind: synthetic, styles: [wrap_easy], ratio: 1}}
"""


def read_shards(folder: Path) -> tuple[list[dict], list[dict]]:
    import pyarrow.parquet as pq
    import zstandard

    parquet, jsonl = [], []
    for path in sorted(folder.glob("shard-*.parquet")):
        parquet += pq.read_table(path).to_pylist()
    for path in sorted(folder.glob("shard-*.jsonl.zst")):
        data = zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes())
        jsonl += [json.loads(line) for line in data.decode().splitlines()]
    return parquet, jsonl


@pytest.fixture(scope="module")
def exported(lake, spark, tmp_path_factory):
    from refinery.jobs.export import export_mix

    config = lake[0]
    tmp = tmp_path_factory.mktemp("mix")
    path = recipe(tmp, ONE_TO_ONE.format(seed=0, tokenizer="whitespace"))
    first = export_mix(spark, config, path, str(tmp / "a"))
    second = export_mix(spark, config, path, str(tmp / "b"))
    return tmp, first, second


def test_a_1to1_mix_balances_tokens_and_records_versions_and_counts(lake, spark, exported):
    config, lake_, n_docs = lake
    tmp, manifest, _ = exported
    real, wrap = manifest["sources"]["real"], manifest["sources"]["wrap"]
    assert wrap["tokens"] == wrap["available_tokens"] > 0 and wrap["docs"] > 0  # the smaller side sets the pool
    assert real["budget_tokens"] == wrap["budget_tokens"] == wrap["available_tokens"]
    assert real["available_tokens"] > real["tokens"] >= real["budget_tokens"]  # includes the crossing document
    assert real["available_docs"] == n_docs - 7 and 0 < real["docs"] < n_docs - 7  # 4 dropped, 2 dups, 1 dirty
    assert manifest["tokenizer"] == "whitespace" and manifest["recipe"]["name"] == "wrap_test"
    assert manifest["table_versions"] == {t: lake_.version(t) for t in manifest["table_versions"]}
    assert {"documents", "quality", "duplicates", "contamination", "synthetic"} <= set(manifest["table_versions"])
    parquet, jsonl = read_shards(tmp / "a")
    assert parquet == jsonl and len(parquet) == manifest["totals"]["docs"] == real["docs"] + wrap["docs"]
    assert sum(r["tokens"] for r in parquet) == manifest["totals"]["tokens"]
    assert all(r["tokens"] == len(r["text"].split()) for r in parquet)
    assert "documents_curated" in lake_.register_views()
    curated = {r.doc_id for r in spark.sql("SELECT doc_id FROM documents_curated").collect()}
    ok = {r.synth_id for r in lake_.read("synthetic").where("status = 'ok'").collect()}
    assert {r["doc_id"] for r in parquet if r["source"] == "real"} <= curated
    assert {r["synth_id"] for r in parquet if r["source"] == "wrap"} <= ok
    keys = [shuffle_key(0, r["source"], r["synth_id"] or r["doc_id"]) for r in parquet]
    assert keys == sorted(keys) and len({r["source"] for r in parquet}) == 2  # one seeded order over both sources
    assert manifest["totals"]["shards"] > 1 and len(manifest["shards"]) == 2 * manifest["totals"]["shards"]
    on_disk = json.loads((tmp / "a" / "manifest.json").read_text())
    assert on_disk == manifest


def test_a_rerun_on_the_same_versions_writes_byte_identical_shards(exported):
    tmp, first, second = exported
    names = sorted(p.name for p in (tmp / "a").iterdir())
    assert names == sorted(p.name for p in (tmp / "b").iterdir())
    for name in names:
        assert (tmp / "a" / name).read_bytes() == (tmp / "b" / name).read_bytes(), name


def test_another_seed_reorders_and_a_model_tokenizer_counts_its_tokens(lake, spark, exported, tiny_model, tmp_path):
    from refinery.jobs.export import export_mix

    config = lake[0]
    base, first, _ = exported
    manifest = export_mix(spark, config, recipe(tmp_path, ONE_TO_ONE.format(seed=1, tokenizer=tiny_model)),
                          str(tmp_path / "c"))
    assert manifest["tokenizer"].startswith("hf-tokenizers:")
    rows, _ = read_shards(tmp_path / "c")
    whitespace, _ = read_shards(base / "a")
    assert sum(r["tokens"] for r in rows) == manifest["totals"]["tokens"] != first["totals"]["tokens"]
    keys = [shuffle_key(1, r["source"], r["synth_id"] or r["doc_id"]) for r in rows]
    assert keys == sorted(keys)
    assert [r["synth_id"] for r in rows if r["synth_id"]] != [r["synth_id"] for r in whitespace if r["synth_id"]]


def test_the_cli_refuses_to_overwrite_and_names_a_missing_label_stage(lake, exported, tmp_path):
    config = lake[0]
    tmp, _, _ = exported
    base = ["--set", f"storage.root={config.storage.root}", "--set", "spark.master=local[2]"]
    shutil.copy(Path(__file__).resolve().parents[1] / "conf" / "mixes" / "real_only.yaml", tmp_path / "r.yaml")
    result = CliRunner().invoke(app, ["export", "-r", str(tmp_path / "r.yaml"), "-o", str(tmp / "a"), *base])
    assert result.exit_code == 2 and "already holds an export" in " ".join(result.output.split())
    math = recipe(tmp_path, "name: m\nsources: [{name: math, kind: taxonomy, view: eai_math, ratio: 1}]")
    result = CliRunner().invoke(app, ["export", "-r", math, "-o", str(tmp_path / "m"), *base])
    assert result.exit_code == 2 and "run the label stage" in " ".join(result.output.split())
    result = CliRunner().invoke(app, ["export", "-r", str(tmp_path / "r.yaml"), "-o", str(tmp_path / "o"), *base])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["sources"]["real"]["docs"] > 0


def test_an_export_of_nothing_is_an_error_not_an_empty_folder(lake, spark, tmp_path):
    from refinery.jobs.export import export_mix

    config = lake[0]
    path = recipe(tmp_path, "name: none\nsources: [{name: wrap, kind: synthetic, styles: [no_such_style], "
                            "ratio: 1}]")
    with pytest.raises(InputError, match="selected nothing"):
        export_mix(spark, config, path, str(tmp_path / "x"))
    assert not (tmp_path / "x" / "manifest.json").exists()


@pytest.fixture(scope="module")
def report(lake, spark, tmp_path_factory):
    from refinery.jobs.report import build_report

    config = lake[0]
    path = tmp_path_factory.mktemp("report") / "report.html"
    sections = build_report(spark, config, str(path))
    return path, sections


def test_the_report_is_one_offline_file_with_every_section(report):
    path, sections = report
    page = path.read_text()
    assert [s.title for s in sections] == ["Funnel", "Languages", "Quality", "Dedup", "Contamination", "Taxonomy",
                                           "Synthetic", "Runs"]
    plotted = {s.title for s in sections if s.figures}
    assert {"Funnel", "Languages", "Quality", "Dedup", "Synthetic", "Runs"} <= plotted
    assert "Taxonomy" not in plotted and "<script src=" not in page and "src=\"http" not in page
    assert page.count("Plotly.newPlot") == sum(len(s.figures) for s in sections)


def test_a_report_of_an_empty_lakehouse_says_what_to_run_instead_of_failing(spark, tmp_path):
    from refinery.jobs.report import build_report

    sections = build_report(spark, lake_config(tmp_path / "empty"), str(tmp_path / "r.html"))
    assert not any(s.figures for s in sections) and all(s.notes for s in sections)
    assert "run the ingest stage" in (tmp_path / "r.html").read_text()


def _chrome():
    """A headless Chromium driver, or None when the browser or selenium is missing (fails under
    REFINERY_REQUIRE_BROWSER=1, as in CI)."""
    required = os.environ.get("REFINERY_REQUIRE_BROWSER") == "1"
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        selenium = None
    else:
        selenium = webdriver
    if selenium is None or binary is None or driver is None:
        message = f"headless browser unavailable (selenium: {selenium is not None}, chromium: {binary}, " \
                  f"chromedriver: {driver}); apt-get install chromium chromium-driver"
        if required:
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def test_the_report_renders_every_plot_in_chromium_without_console_errors(report, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    path, sections = report
    browser = _chrome()
    try:
        browser.get(path.as_uri())
        expected = sum(len(s.figures) for s in sections)
        WebDriverWait(browser, 60).until(lambda b: b.execute_script(
            "return document.querySelectorAll('.plotly-graph-div .main-svg').length > 0 && "
            "[...document.querySelectorAll('.plotly-graph-div')].every(d => d._fullLayout)"))
        traces = browser.execute_script(
            "return [...document.querySelectorAll('.plotly-graph-div')].map(d => [d.id, "
            "d.querySelectorAll('svg.main-svg .trace').length])")
        assert len(traces) == expected
        empty = [div for div, n in traces if n == 0]
        assert not empty, f"plots without rendered traces: {empty}"
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        height = browser.execute_script("return document.body.scrollHeight")
        browser.set_window_size(1280, min(height + 100, 16000))
        shot = tmp_path / "report.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000  # docs/report.png is this file, from a run on the sample
    finally:
        browser.quit()

