"""FineWeb's own quality signals (datatrove 0.10 FineWebQualityFilter) and its PII anonymisation (PIIFormatter)."""

from __future__ import annotations

import ipaddress
import re

from refinery.udfs.quality.gopher import find_duplicates
from refinery.udfs.quality.text import TERMINAL_PUNCTUATION, split_into_words


def fineweb_signals(text: str, words: list[str] | None = None, short_line_length: int = 30) -> dict[str, float]:
    """Line punctuation, short lines, duplicated line characters and newlines per word, over the non-blank lines."""
    lines = [line for line in text.split("\n") if line.strip()]
    n_lines = len(lines)
    if not n_lines:  # datatrove drops these as "empty" before measuring anything
        return {"fineweb_lines": 0, "fineweb_line_punct_ratio": 0.0, "fineweb_short_line_ratio": 0.0,
                "fineweb_char_dup_ratio": 0.0, "fineweb_newline_word_ratio": 0.0}
    words = split_into_words(text) if words is None else words
    return {
        "fineweb_lines": n_lines,
        # lines are not stripped: "ends with a full stop and a space" does not count, as in datatrove
        "fineweb_line_punct_ratio": sum(line.endswith(TERMINAL_PUNCTUATION) for line in lines) / n_lines,
        "fineweb_short_line_ratio": sum(len(line) <= short_line_length for line in lines) / n_lines,
        "fineweb_char_dup_ratio": find_duplicates(lines)[1] / (len(text) - text.count("\n")),
        "fineweb_newline_word_ratio": text.count("\n") / len(words),
    }


# PIIFormatter's patterns and replacements (datatrove/pipeline/formatters/pii.py). Its e-mail pattern,
#   \b[L]+(?:\.[L]+)*@(?:DOMAIN)  with L the local-part characters below,
# is applied by _email_spans, which finds the same matches in linear time: a regex search retries the local part from
# every position of a long run like "a-a-a-...@" (quadratic), while every start in one run ends at the same "@".
_LOCAL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+/=?^_`{|}~-")
_EMAIL_DOMAIN = re.compile(
    r"(?:(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?|\[(?:(?:25[0-5]|2[0-4][0-9]|["
    r"01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?|[A-Za-z0-9-]*[A-Za-z0-9]:)])"
)
_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)")
EMAIL_REPLACEMENTS = ("email@example.com", "firstname.lastname@example.org")
# datatrove's list: random addresses that did not answer pings when it was made
IP_REPLACEMENTS = ("22.214.171.124", "126.96.36.199", "188.8.131.52", "184.108.40.206", "220.127.116.11",
                   "18.104.22.168")


def anonymize_pii(text: str) -> tuple[str, int, int]:
    """(text, emails replaced, IPs replaced): emails and public IPv4 addresses swapped for fixed stand-ins.

    Replacements cycle through datatrove's lists from the start of each document; datatrove's cycle runs on across
    the documents of a worker, so the stand-in picked for a given address may differ, the positions do not.
    """
    emails = ips = 0

    def email() -> str:
        nonlocal emails
        emails += 1
        return EMAIL_REPLACEMENTS[(emails - 1) % len(EMAIL_REPLACEMENTS)]

    def ip(match: re.Match) -> str:
        nonlocal ips
        if not _is_public_ip(match.group(0)):
            return match.group(0)
        ips += 1
        return IP_REPLACEMENTS[(ips - 1) % len(IP_REPLACEMENTS)]

    if "@" in text:
        text = _replace_spans(text, _email_spans(text), email)
    if "." in text:
        text = _IPV4.sub(ip, text)
    return text, emails, ips


def _is_public_ip(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_global
    except ValueError:  # "01.2.3.4": the pattern allows leading zeros, ipaddress does not
        return False


def _email_spans(text: str):
    """(start, end) of each e-mail address, the matches PIIFormatter's pattern finds, left to right."""
    resume = 0  # a match may not start inside the previous one
    at = text.find("@")
    while at != -1:
        run = at  # the local part lies in the run of local characters and dots that ends at this "@"
        while run > resume and (text[run - 1] in _LOCAL or text[run - 1] == "."):
            run -= 1
        start = _local_start(text, run, at)
        domain = _EMAIL_DOMAIN.match(text, at + 1) if start is not None else None
        if domain:
            yield start, domain.end()
            resume = domain.end()
            at = text.find("@", resume)
        else:
            at = text.find("@", at + 1)


def _local_start(text: str, run: int, at: int) -> int | None:
    """The leftmost start of a local part ending at `at`: no dot first, last or doubled, a word boundary (\\b)."""
    if run == at or text[at - 1] == ".":
        return None
    doubled = text.rfind("..", run, at)
    for start in range(run if doubled == -1 else doubled + 2, at):
        if text[start] != "." and _is_word(text[start]) != (start > 0 and _is_word(text[start - 1])):
            return start
    return None


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"  # what \w matches in a str pattern


def _replace_spans(text: str, spans, replacement) -> str:
    pieces, position = [], 0
    for start, end in spans:
        pieces += (text[position:start], replacement())
        position = end
    return "".join(pieces) + text[position:] if pieces else text
