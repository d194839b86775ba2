"""Character set detection for HTML payloads: HTTP header, then BOM/meta tag, then byte statistics."""

from __future__ import annotations

import codecs
import re

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_\-:.]+)""", re.IGNORECASE)
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
# WHATWG: pages labelled latin-1/ascii are decoded as windows-1252 by every browser.
_ALIASES = {"iso-8859-1": "cp1252", "latin-1": "cp1252", "latin1": "cp1252", "us-ascii": "cp1252",
            "ascii": "cp1252", "x-sjis": "shift_jis", "gb2312": "gb18030", "gbk": "gb18030"}


def normalize_charset(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().lower()
    label = _ALIASES.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def meta_charset(html: bytes) -> str | None:
    """The charset declared in the first 4 KiB of the document (meta charset or http-equiv)."""
    match = _META_CHARSET.search(html[:4096])
    return normalize_charset(match.group(1).decode("ascii", "ignore")) if match else None


def decode_html(body: bytes, header_charset: str | None = None) -> tuple[str, str]:
    """Decode HTML bytes to text; returns (text, charset used). Never raises."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(name, errors="replace"), name
    for candidate in (normalize_charset(header_charset), meta_charset(body)):
        if candidate:
            try:
                return body.decode(candidate), candidate
            except (UnicodeDecodeError, LookupError):
                continue  # a wrong label is common; fall through to detection
    detected = _detect(body)
    return body.decode(detected, errors="replace"), detected


def _detect(body: bytes) -> str:
    try:
        body.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    from resiliparse.parse.encoding import detect_encoding

    return normalize_charset(detect_encoding(body[:65536])) or "utf-8"
