"""HTTP response parsing for WARC response blocks: status, headers, de-chunked and decoded body."""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class HttpResponse:
    status: int | None
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    @property
    def charset(self) -> str | None:
        for param in self.headers.get("content-type", "").split(";")[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "charset" and value.strip():
                return value.split(",")[0].strip().strip("'\"").lower()
        return None


def parse_http_response(block: bytes) -> HttpResponse:
    """Split a WARC response block into status line, headers and body; undo chunking and gzip."""
    head, sep, body = block.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = block.partition(b"\n\n")
    if not sep:
        return HttpResponse(None, {}, block)
    lines = head.decode("latin-1").splitlines()
    status = _status_code(lines[0]) if lines else None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = dechunk(body)
    body = _decode_content(body, headers.get("content-encoding", "").lower())
    return HttpResponse(status, headers, body)


def _status_code(status_line: str) -> int | None:
    parts = status_line.split()
    if len(parts) >= 2 and parts[0].upper().startswith("HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return None


def dechunk(body: bytes) -> bytes:
    """Decode HTTP/1.1 chunked transfer encoding; bodies that are not really chunked pass through."""
    out = bytearray()
    pos = 0
    while True:
        line_end = body.find(b"\r\n", pos)
        if line_end < 0:
            break
        size_field = body[pos:line_end].split(b";", 1)[0].strip()
        try:
            size = int(size_field, 16)
        except ValueError:
            # Crawlers often store the body already de-chunked while keeping the header.
            return body if pos == 0 else bytes(out)
        if size == 0:
            return bytes(out)
        out += body[line_end + 2 : line_end + 2 + size]
        pos = line_end + 2 + size + 2
    return bytes(out) if out else body


def _decode_content(body: bytes, encoding: str) -> bytes:
    # Many crawlers store the decoded payload but keep the Content-Encoding header, so decode
    # only when the bytes really are compressed and keep them as they are otherwise.
    try:
        if "gzip" in encoding and body[:2] == b"\x1f\x8b":
            return gzip.decompress(body)
        if "deflate" in encoding:
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)
        if encoding.strip() == "br":
            import brotli

            return brotli.decompress(body)
    except Exception:  # noqa: BLE001 - undecodable payloads are kept raw and judged by the HTML check
        return body
    return body
