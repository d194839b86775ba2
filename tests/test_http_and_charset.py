from refinery.udfs.ingest.charset import decode_html, meta_charset, normalize_charset
from refinery.udfs.ingest.http import dechunk, parse_http_response

from .conftest import CC_SAMPLE, CHUNKED_SAMPLE, GOLD_SAMPLE, response_block


def test_chunked_transfer_encoding_is_decoded_to_the_full_html():
    response = parse_http_response(response_block(CHUNKED_SAMPLE, "iana.org"))
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.status == 200
    assert response.body.lstrip().lower().startswith(b"<!doctype html")
    assert response.body.rstrip().endswith(b"</html>")
    assert b"\r\n0\r\n" not in response.body[-20:]  # the terminating chunk is gone


def test_body_that_is_not_really_chunked_passes_through():
    body = b"<html><body>already de-chunked by the crawler</body></html>"
    assert dechunk(body) == body


def test_charset_from_http_header_decodes_cyrillic_page():
    response = parse_http_response(response_block(CC_SAMPLE, "01spb.ru"))
    assert response.charset == "windows-1251"
    text, used = decode_html(response.body, response.charset)
    assert used == "cp1251"
    assert sum("\u0400" <= ch <= "\u04ff" for ch in text) > 100


def test_charset_from_meta_tag_when_header_has_none():
    response = parse_http_response(response_block(CC_SAMPLE, "041696.com"))
    assert response.charset is None
    assert meta_charset(response.body) == "gb18030"
    text, _ = decode_html(response.body, None)
    assert sum("\u4e00" <= ch <= "\u9fff" for ch in text) > 100
    assert "\ufffd" not in text


def test_latin1_label_decodes_as_windows_1252_like_browsers():
    assert normalize_charset("ISO-8859-1") == "cp1252"
    assert normalize_charset("no-such-charset") is None


def test_wrong_header_charset_falls_back_to_the_document():
    # A real German page (meta windows-1252) served with a lying utf-8 header.
    body = parse_http_response(response_block(GOLD_SAMPLE, "cdu-fraktion-erfurt.de")).body
    text, used = decode_html(body, "utf-8")
    assert used == "cp1252"
    assert "\ufffd" not in text
    assert any(ch in text for ch in "äöüÄÖÜß")


def test_undeclared_utf8_is_detected():
    text, used = decode_html("<html><body>Grüße aus Köln</body></html>".encode(), None)
    assert used == "utf-8"
    assert "Grüße" in text
