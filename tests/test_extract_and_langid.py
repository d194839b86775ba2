import json
from pathlib import Path

import pytest

from refinery.udfs.ingest.charset import decode_html
from refinery.udfs.ingest.extract import ExtractionTimeout, extract_main_text
from refinery.udfs.ingest.http import parse_http_response
from refinery.udfs.ingest.langid import detect_language

from .conftest import CC_SAMPLE, GOLD_SAMPLE, SAMPLE, response_block, response_records


def _html(path, url_part: str) -> str:
    return decode_html(parse_http_response(response_block(path, url_part)).body)[0]


def _gold_snippet_rates(extractor: str) -> tuple[float, float]:
    """Share of gold `with` snippets found and of boilerplate `without` snippets present."""
    blocks = dict(response_records(GOLD_SAMPLE))
    found = wanted = leaked = unwanted = 0
    for line in (Path(__file__).parent / "data" / "gold_first80.jsonl").read_text().splitlines():
        gold = json.loads(line)
        html = decode_html(parse_http_response(blocks[gold["url"]]).body)[0]
        text = _norm(extract_main_text(html, extractor, timeout_s=30).text)
        found += sum(_norm(s) in text for s in gold["with"])
        leaked += sum(_norm(s) in text for s in gold["without"])
        wanted, unwanted = wanted + len(gold["with"]), unwanted + len(gold["without"])
    return found / wanted, leaked / unwanted


def _norm(text: str) -> str:
    return " ".join(text.split())


def test_trafilatura_keeps_gold_main_text_and_drops_boilerplate_on_real_pages():
    kept, leaked = _gold_snippet_rates("trafilatura")
    assert kept >= 0.85
    assert leaked <= 0.15


def test_resiliparse_keeps_gold_main_text_on_real_pages():
    kept, leaked = _gold_snippet_rates("resiliparse")
    assert kept >= 0.85
    assert leaked <= 0.5  # resiliparse's main-content heuristic keeps more boilerplate: a known trade-off


@pytest.mark.parametrize("extractor", ["trafilatura", "resiliparse"])
def test_extractors_return_the_page_title(extractor):
    html = _html(SAMPLE / "cc-main-2024-22_whirlwind.warc.gz", "Escopete")
    extracted = extract_main_text(html, extractor, timeout_s=30)
    assert "Escopete" in extracted.text
    assert extracted.title and extracted.title.startswith("Escopete")


def test_extraction_over_the_time_limit_raises_timeout():
    html = _html(GOLD_SAMPLE, "cdu-fraktion-erfurt.de") * 40
    with pytest.raises(ExtractionTimeout):
        extract_main_text(html, "trafilatura", timeout_s=0.01)


def test_unknown_extractor_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown extractor 'goose'"):
        extract_main_text("<html></html>", "goose")


def test_language_of_real_pages():
    german = extract_main_text(_html(GOLD_SAMPLE, "cdu-fraktion-erfurt.de"), "resiliparse").text
    chinese = extract_main_text(_html(CC_SAMPLE, "041696.com"), "resiliparse").text
    russian = extract_main_text(_html(CC_SAMPLE, "01spb.ru"), "resiliparse").text
    for text, expected in ((german, "de"), (chinese, "zh"), (russian, "ru")):
        label, score = detect_language(text)
        assert label == expected
        assert 0.5 < score <= 1.0


def test_language_of_empty_text_is_none():
    assert detect_language(" \n ") == (None, 0.0)


def test_trafilatura_output_does_not_depend_on_pages_extracted_before():
    html = _html(GOLD_SAMPLE, "cdu-fraktion-erfurt.de")
    first = extract_main_text(html, "trafilatura").text
    for _ in range(3):  # trafilatura's own cross-call deduplication would now drop repeated segments
        extract_main_text(html, "trafilatura")
    assert extract_main_text(html, "trafilatura").text == first
