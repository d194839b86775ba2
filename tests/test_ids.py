from refinery.udfs.ids import doc_id_from_record_id, normalize_text, text_hash, url_host


def test_doc_id_is_deterministic_and_distinct_per_record():
    a = doc_id_from_record_id("<urn:uuid:5caf7c30-270f-4422-b8a8-39520a630f93>")
    assert a == doc_id_from_record_id("<urn:uuid:5caf7c30-270f-4422-b8a8-39520a630f93>")
    assert a == doc_id_from_record_id("urn:uuid:5caf7c30-270f-4422-b8a8-39520a630f93")
    assert a != doc_id_from_record_id("<urn:uuid:dda783c9-b4da-466c-b336-d7f0c0dc4ad8>")
    assert len(a) == 32 and int(a, 16) >= 0


def test_text_hash_ignores_case_width_and_whitespace_only():
    assert text_hash("Hello  World\n\tAgain") == text_hash("hello world again")
    assert text_hash("ＨＥＬＬＯ") == text_hash("hello")  # NFKC folds full-width letters
    assert text_hash("hello world") != text_hash("hello, world")
    assert normalize_text("  A\u00a0B ") == "a b"


def test_url_host_is_lowercased_and_tolerates_bad_urls():
    assert url_host("http://WWW.Example.COM:8080/a?b") == "www.example.com"
    assert url_host("not a url") is None
    assert url_host(None) is None
