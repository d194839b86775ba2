"""Shared fixtures: a real local Spark session with Delta, and helpers over the shipped sample WARCs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
CC_SAMPLE = SAMPLE / "cc-main-2020-34_sample_resiliparse.warc.gz"
GOLD_SAMPLE = SAMPLE / "gold_pages_first80.warc.gz"
CHUNKED_SAMPLE = SAMPLE / "iana-org_chunked_warcio.warc"


def response_records(path: Path) -> Iterator[tuple[str, bytes]]:
    """(target URI, raw response block) of every response record, read with FastWARC."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    with open(path, "rb") as stream:
        for record in ArchiveIterator(stream, parse_http=False):
            if record.record_type == WarcRecordType.response:
                yield record.headers.get("WARC-Target-URI"), record.reader.read()


def response_block(path: Path, url_part: str) -> bytes:
    return next(block for url, block in response_records(path) if url_part in url)


def lake_config(root: Path, *extra: str):
    from refinery.jobs.config import load_config

    return load_config(overrides=[f"storage.root={root}", "spark.master=local[2]",
                                  "spark.shuffle_partitions=2", *extra], environ={})


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from refinery.jobs.session import get_spark

    # Metastore-mode tables land in the session's warehouse: keep it out of the repo.
    warehouse = tmp_path_factory.mktemp("warehouse")
    config = lake_config(Path("/tmp/unused"), f'spark.conf={{"spark.sql.warehouse.dir": "{warehouse}"}}')
    session = get_spark(config.spark)
    yield session
    session.stop()


def sample_texts(limit: int | None = None) -> list[str]:
    """Extracted main text of the CC sample's pages (resiliparse: fast, no network)."""
    from refinery.udfs.ingest.warc import FileOutcome, IngestSettings, read_warc_documents

    docs = read_warc_documents(str(CC_SAMPLE), IngestSettings(extractor="resiliparse"), FileOutcome(str(CC_SAMPLE)))
    return [d["text"] for d in docs][:limit]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random Llama (2 layers, hidden 64) with a BPE tokenizer trained on the sample text and a chat
    template, saved with save_pretrained. Skips where the llm extra (torch, transformers) is not installed."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from refinery.udfs.llm.tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), sample_texts())


@pytest.fixture(scope="session")
def vllm_tiny_model(tmp_path_factory) -> Path:
    """The tiny Llama with 2 heads of 32: vLLM's CPU attention needs a head size of at least 32."""
    pytest.importorskip("vllm")
    from refinery.udfs.llm.tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama-vllm"), sample_texts(), heads=2)


def vllm_spec(model: Path, **overrides):
    """The vLLM engine on CPU as the tests and bench run it: in process, eager, 1 GiB of KV cache."""
    from refinery.udfs.llm import EngineSpec

    settings = {"engine": "vllm", "model": str(model), "max_model_len": 512, "dtype": "float32",
                "enforce_eager": True, "cpu_kv_cache_gb": 1.0, "max_num_seqs": 64, **overrides}
    return EngineSpec(**settings)
