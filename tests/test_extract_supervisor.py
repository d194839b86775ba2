"""The extraction supervisor: a page past its budget or a dying child costs that page only."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from refinery.udfs.ingest.extract import ExtractionTimeout, extract_main_text
from refinery.udfs.ingest.extract_supervisor import ExtractionCrashed, ExtractionSupervisor
from refinery.udfs.ingest.http import parse_http_response

from .conftest import GOLD_SAMPLE, response_records
from .data.hostile.recipes import article_html, slow_html


@pytest.fixture(scope="module")
def gold_html() -> list[str]:
    from refinery.udfs.ingest.charset import decode_html

    pages = []
    for _, block in list(response_records(GOLD_SAMPLE))[:6]:
        http = parse_http_response(block)
        pages.append(decode_html(http.body, http.charset)[0])
    return pages


def test_supervised_extraction_gives_the_in_process_result(gold_html):
    supervisor = ExtractionSupervisor("trafilatura", 30)
    try:
        for html in gold_html:
            assert supervisor.extract(html) == extract_main_text(html, "trafilatura")
        assert supervisor.starts == 1
    finally:
        supervisor.close()


def test_a_page_past_its_budget_is_killed_and_the_next_page_gets_a_fresh_process():
    supervisor = ExtractionSupervisor("trafilatura", 0.5)
    try:
        first_pid = supervisor.extract(article_html()) and supervisor._proc.pid
        started = time.monotonic()
        with pytest.raises(ExtractionTimeout, match="killed"):
            supervisor.extract(slow_html())
        assert time.monotonic() - started < 5  # stopped at the budget, not when lxml was done
        with pytest.raises(ProcessLookupError):
            os.kill(first_pid, 0)
        assert "stone bridge" in supervisor.extract(article_html()).text
        assert supervisor.starts == 2
    finally:
        supervisor.close()


def test_a_child_that_dies_mid_page_is_a_crash_for_that_page_only():
    supervisor = ExtractionSupervisor("trafilatura", 60)
    try:
        supervisor.extract(article_html())
        victim = supervisor._proc.pid
        # What the OOM killer does to a worker that a page blew up: SIGKILL while it works.
        threading.Timer(0.3, os.kill, (victim, signal.SIGKILL)).start()
        with pytest.raises(ExtractionCrashed, match="SIGKILL"):
            supervisor.extract(slow_html())
        assert "stone bridge" in supervisor.extract(article_html()).text
        assert supervisor.starts == 2
    finally:
        supervisor.close()
