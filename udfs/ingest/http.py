"""HTTP response parsing for WARC response blocks: status, headers, de-chunked and decoded body."""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass

_STEP = 1 << 16  # decompressed bytes produced per call: memory stays near the cap, whatever the ratio


class BodyTooLarge(ValueError):
    """The body, as stored or once decompressed, is larger than the cap: counted `skipped_too_large`."""


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


def parse_http_response(block: bytes, max_body_bytes: int | None = None) -> HttpResponse:
    """Split a WARC response block into status line, headers and body; undo chunking and content encodings.

    Raises BodyTooLarge when the body, or what it decompresses to, exceeds max_body_bytes; decompression
    stops at the cap, so a gzip bomb costs at most max_body_bytes of memory.
    """
    response = parse_http_head(block)
    if response.status is None and not response.headers:
        return response
    body = response.body
    if "chunked" in response.headers.get("transfer-encoding", "").lower():
        body = dechunk(body)
    cap = max_body_bytes if max_body_bytes is not None else 1 << 62
    if len(body) > cap:
        raise BodyTooLarge(f"body of {len(body)} bytes is over the {cap}-byte cap")
    body = decode_content(body, response.headers.get("content-encoding", "").lower(), cap)
    return HttpResponse(response.status, response.headers, body)


def parse_http_head(block: bytes) -> HttpResponse:
    """Status and headers of a response block (or of its first bytes); the body is left as stored."""
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


def decode_content(body: bytes, encoding: str, cap: int) -> bytes:
    """Undo Content-Encoding (gzip, deflate, br, zstd; listed codings are undone last to first).

    Many crawlers store the decoded payload but keep the header, so a body whose bytes are not really
    in the coding is kept as it is and judged by the HTML check.
    """
    for coding in reversed([c.strip() for c in encoding.split(",") if c.strip()]):
        decoder = _DECODERS.get(coding)
        if decoder is None:
            continue
        try:
            body = decoder(body, cap)
        except BodyTooLarge:
            raise
        except (zlib.error, ValueError):  # the decoders turn brotli's and zstd's own errors into ValueError
            return body
    return body


def _gunzip(body: bytes, cap: int) -> bytes:
    if body[:2] != b"\x1f\x8b":
        return body
    return _inflate(body, cap, zlib.MAX_WBITS | 16)


def _deflate(body: bytes, cap: int) -> bytes:
    # RFC 9110 says zlib-wrapped; many servers send raw deflate, so try that when the wrapper is missing.
    try:
        return _inflate(body, cap, zlib.MAX_WBITS)
    except zlib.error:
        return _inflate(body, cap, -zlib.MAX_WBITS)


def _inflate(body: bytes, cap: int, wbits: int) -> bytes:
    out = bytearray()
    data = body
    while True:
        d = zlib.decompressobj(wbits)
        while data:
            out += d.decompress(data, _STEP)
            _check(len(out), cap)
            data = d.unconsumed_tail
        while not d.eof:
            chunk = d.decompress(b"", _STEP)
            if not chunk:
                break
            out += chunk
            _check(len(out), cap)
        out += d.flush()
        _check(len(out), cap)
        # gzip allows several members one after the other (as gzip.decompress reads them).
        data = d.unused_data
        if not (d.eof and data[:2] == b"\x1f\x8b" and wbits & 16):
            return bytes(out)


def _unbrotli(body: bytes, cap: int) -> bytes:
    import brotli

    d = brotli.Decompressor()
    out = bytearray()
    try:
        out += d.process(body, output_buffer_limit=_STEP)
        _check(len(out), cap)
        while not d.is_finished():
            chunk = d.process(b"", output_buffer_limit=_STEP)
            if not chunk:
                break
            out += chunk
            _check(len(out), cap)
    except brotli.error as err:
        raise ValueError(f"not brotli: {err}") from err
    return bytes(out)


def _unzstd(body: bytes, cap: int) -> bytes:
    import zstandard

    out = bytearray()
    try:
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body), read_across_frames=True) as reader:
            while chunk := reader.read(_STEP):
                out += chunk
                _check(len(out), cap)
    except zstandard.ZstdError as err:
        raise ValueError(f"not zstd: {err}") from err
    return bytes(out)


def _check(size: int, cap: int) -> None:
    if size > cap:
        raise BodyTooLarge(f"body decompresses to more than the {cap}-byte cap")


_DECODERS = {"gzip": _gunzip, "x-gzip": _gunzip, "deflate": _deflate, "br": _unbrotli, "zstd": _unzstd}
