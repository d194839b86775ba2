"""Quality signals and decisions on real pages from the sample WARCs (resiliparse text)."""

from __future__ import annotations

import pytest

from refinery.udfs.ingest.warc import FileOutcome, IngestSettings, read_warc_documents
from refinery.udfs.quality.c4 import C4LineSettings, c4_filtered_lines, c4_signals
from refinery.udfs.quality.fineweb import EMAIL_REPLACEMENTS, IP_REPLACEMENTS, anonymize_pii
from refinery.udfs.quality.rules import (
    RULE_SIGNALS,
    all_quality_signals,
    load_filter_thresholds,
    quality_drop_reasons,
)
from refinery.udfs.quality.text import count_sentences, split_into_words

from .conftest import SAMPLE


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    """URL -> extracted text of every HTML page in the sample WARCs."""
    settings = IngestSettings(extractor="resiliparse")
    texts = {}
    for path in sorted(SAMPLE.glob("*.warc*")):
        for doc in read_warc_documents(str(path), settings, FileOutcome(str(path))):
            texts[doc["url"].strip("<>")] = doc["text"]
    return texts


def test_a_page_whose_lines_repeat_has_a_high_duplicate_line_fraction(pages):
    # iana.org/protocols lists registries whose "(Expert: ...)" and "IETF Review" lines recur hundreds of times
    repetitive = all_quality_signals(pages["http://www.iana.org/protocols"])
    plain = all_quality_signals(pages["http://www.iana.org/domains/root"])
    assert repetitive["gopher_dup_line_frac"] > 0.3
    assert "dup_line_frac" in quality_drop_reasons(repetitive)
    assert plain["gopher_dup_line_frac"] == 0.0


def test_signals_of_a_short_real_page_equal_hand_counts(pages):
    text = pages["https://www.iana.org/dnssec"]
    assert text == ("DNSSEC Information\n\nKSK Operator Information\n\nInformation regarding our role as operator "
                    "of the Key Signing Key for the DNS Root Zone.")
    s = all_quality_signals(text)
    # 21 words and the final "." (a symbol word): 2 + 3 + 16 words, 111 letters in them
    assert s["gopher_words"] == 21
    assert s["gopher_mean_word_length"] == 111 / 21
    assert s["gopher_alpha_words_ratio"] == 21 / 22
    assert s["gopher_stop_words"] == 2  # "of", "the"
    # every 4-gram occurs once, so the top one is the first: "DNSSEC Information KSK Operator", 31 of 134 chars
    assert s["gopher_top_4_gram_char_frac"] == 31 / 134
    assert s["gopher_dup_line_frac"] == 0.0
    # C4 drops "DNSSEC Information" (2 words) and keeps two one-sentence lines
    assert (s["c4_kept_lines"], s["c4_sentences"]) == (2, 2)
    # FineWeb: 3 non-blank lines, one ends with "."; two are <= 30 chars; 4 newlines over 22 words
    assert s["fineweb_line_punct_ratio"] == 1 / 3
    assert s["fineweb_short_line_ratio"] == 2 / 3
    assert s["fineweb_newline_word_ratio"] == 4 / 22
    assert quality_drop_reasons(s) == ["top_4_gram", "gopher_short_doc", "c4_too_few_sentences"]


def test_words_follow_spacys_english_rules_on_a_real_sentence(pages):
    line = next(line for line in pages["http://www.iana.org/time-zones"].splitlines() if "2013i.tar.gz" in line)
    assert line.startswith("Time Zone Data v. 2013i (Released 2013-12-17)")
    # "v." is a special case, dates split at their hyphens, a file name stays whole, "213.7kb" loses its unit
    assert split_into_words(line) == [
        "Time", "Zone", "Data", "v.", "2013i", "(", "Released", "2013", "-", "12", "-", "17", ")",
        "tzdata2013i.tar.gz", "(", "213.7", "kb", ")",
    ]
    # a possessive splits off, a hyphen between letters is its own token, a leading dot is no prefix
    root = pages["http://www.iana.org/domains/root"]
    assert split_into_words(root[root.index("This role"):root.index(" and maintaining")]) == [
        "This", "role", "means", "assigning", "the", "operators", "of", "top", "-", "level", "domains", ",", "such",
        "as", ".uk", "and", ".com", ","]
    assert split_into_words(root[root.index("IANA's"):root.index(" Root Zone Database")]) == ["IANA", "'s"]


def test_sentences_are_counted_at_stops_but_not_at_abbreviations(pages):
    paragraph = next(line for line in pages["http://www.iana.org/time-zones"].splitlines()
                     if line.startswith("The Time Zone Database (often called tz"))
    assert count_sentences(paragraph) == 3
    assert count_sentences("Inc.>, a U.S. Insurance broker, for 5.6 mln dlrs.") == 1  # Reuters-21578, NEWID 301


def test_c4_drops_a_page_with_code_in_curly_brackets(pages):
    text = pages["https://www.schneems.com/2018/10/09/pair-with-me-rubocop-cop-that-detects-duplicate-array-allocations/"]
    signals = all_quality_signals(text)
    assert signals["c4_curly_bracket_lines"] > 0
    assert quality_drop_reasons(signals) == ["c4_curly_bracket"]


def test_c4_kept_text_loses_policy_lines_and_citation_marks(pages):
    reddit = pages["https://www.reddit.com/r/Python/comments/1bbbwk/whats_your_opinion_on_what_to_include_in_init_py/"]
    assert "use of cookies" in reddit
    assert "use of cookies" not in c4_filtered_lines(reddit)
    wikipedia = pages["https://en.wikipedia.org/wiki/T-distributed_stochastic_neighbor_embedding"]
    assert "Geoffrey Hinton.[1] It is" in wikipedia
    assert "Geoffrey Hinton. It is" in c4_filtered_lines(wikipedia)


def test_c4_line_settings_change_what_counts_as_a_sentence(pages):
    text = pages["http://www.iana.org/time-zones"]
    thresholds = load_filter_thresholds()
    thresholds["c4"]["lines"]["filter_no_terminal_punct"] = True  # C4's own setting: the title line goes too
    strict = c4_signals(text, C4LineSettings.from_thresholds(thresholds))
    assert strict["c4_kept_lines"] < c4_signals(text)["c4_kept_lines"]
    assert c4_filtered_lines(text).startswith("Time Zone Database\n")
    assert c4_filtered_lines(text, thresholds).startswith("The Time Zone Database (often called tz")


def test_a_disabled_rule_or_filter_never_appears_in_the_reasons(pages, tmp_path):
    overrides = tmp_path / "filters.yaml"
    overrides.write_text("gopher_quality:\n  enabled: false\n"
                         "gopher_repetition:\n  rules:\n    top_4_gram: {max: 0.16, enabled: false}\n")
    thresholds = load_filter_thresholds(overrides)
    default_reasons, reasons = set(), set()
    for text in pages.values():
        signals = all_quality_signals(text)
        default_reasons.update(quality_drop_reasons(signals))
        reasons.update(quality_drop_reasons(signals, thresholds))
    switched_off = {"top_4_gram", *RULE_SIGNALS["gopher_quality"]}
    assert {"top_4_gram", "gopher_short_doc"} <= default_reasons  # the sample pages do trip them by default
    assert not reasons & switched_off
    assert "top_3_gram" in reasons


def test_a_thresholds_file_overrides_only_what_it_names(tmp_path):
    overrides = tmp_path / "filters.yaml"
    overrides.write_text("gopher_quality:\n  rules:\n    gopher_short_doc: {min: 100}\n")
    thresholds, defaults = load_filter_thresholds(overrides), load_filter_thresholds()
    assert thresholds["gopher_quality"]["rules"]["gopher_short_doc"] == {"min": 100, "enabled": True}
    thresholds["gopher_quality"]["rules"]["gopher_short_doc"]["min"] = 50
    assert thresholds == defaults


def test_a_bad_threshold_is_reported_with_the_file_and_the_key(tmp_path):
    overrides = tmp_path / "filters.yaml"
    overrides.write_text("gopher_quality:\n  rules:\n    gopher_short_doc: {min: fifty}\n")
    with pytest.raises(ValueError, match=r"filters.yaml: gopher_quality.rules.gopher_short_doc.min must be a number"):
        load_filter_thresholds(overrides)
    overrides.write_text("fineweb:\n  rules:\n    fineweb_too_short: {min: 3}\n")
    with pytest.raises(ValueError, match=r"unknown rule\(s\) \['fineweb_too_short'\] in fineweb"):
        load_filter_thresholds(overrides)


def test_pii_anonymisation_replaces_real_emails_and_public_ips_only(pages):
    time_zones = pages["http://www.iana.org/time-zones"]
    text, emails, ips = anonymize_pii(time_zones)
    assert (emails, ips) == (1, 0)
    assert "tz@iana.org" not in text and f"emailed to {EMAIL_REPLACEMENTS[0]}." in text

    servers = pages["http://www.iana.org/domains/root/servers"]
    text, emails, ips = anonymize_pii(servers)
    assert "198.41.0.4" in servers and "198.41.0.4" not in text  # a.root-servers.net
    assert ips >= 13 and text.count(IP_REPLACEMENTS[0]) >= 2  # the stand-ins are used in turn
    assert "2001:503:ba3e::2:30" in text  # IPv6 is left alone, as in datatrove

    documentation = "addresses in dotted decimal notation (for example, 192.0.2.53)"  # iana.org/numbers
    assert anonymize_pii(documentation) == (documentation, 0, 0)  # 192.0.2.0/24 is not a public address
