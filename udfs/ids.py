"""Deterministic identifiers and text hashes."""

from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit

import xxhash


def doc_id_from_record_id(record_id: str) -> str:
    """Stable 128-bit id of a WARC record: the same record gives the same doc_id on every run."""
    return xxhash.xxh3_128_hexdigest(record_id.strip().strip("<>").encode("utf-8"))


def normalize_text(text: str) -> str:
    """NFKC, case-folded, whitespace runs collapsed: texts equal up to these differences hash equal."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def text_hash(text: str) -> str:
    return xxhash.xxh3_128_hexdigest(normalize_text(text).encode("utf-8"))


def url_host(url: str | None) -> str | None:
    if not url:
        return None
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return None
    return host.lower() if host else None
