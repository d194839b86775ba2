"""Text splits shared by the quality signals: datatrove's English word tokenizer (spaCy's rules, ported) and sentences.

datatrove tokenizes English with `spacy.blank("en")` (+ its sentencizer). spaCy is a heavy dependency that is not
ours, so this module ports the parts that decide token boundaries: whitespace chunks, special cases (contractions,
abbreviations, emoticons), prefix/suffix/infix rules, the URL match and the special-case matcher. The character
classes and rule lists are spaCy 3.8's (MIT licence, spacy/lang/char_classes.py, punctuation.py,
tokenizer_exceptions.py, en/); tests/test_quality_parity.py compares the decisions with datatrove's.
"""

from __future__ import annotations

import re
import unicodedata

STOP_WORDS = frozenset(["the", "be", "to", "of", "and", "that", "have", "with"])  # datatrove gopher_quality_filter

# datatrove.utils.text.PUNCTUATION: a word made only of these is a "symbol word" for Gopher.
PUNCTUATION_SET = frozenset(
    "!/—”:％１〈&(、━\\【#%「」，】；+^]~“《„';’{|∶´[=-`*．（–？！：$～«〉,><》)?）。…@_.\"}►»"
    + "".join(map(chr, [*range(0, 9), *range(11, 32), *range(127, 160)]))
)


def _code_points(spec: str) -> list[int]:
    points: list[int] = []
    for part in spec.split():
        low, _, high = part.partition("-")
        points.extend(range(int(low, 16), int(high or low, 16) + 1))
    return points


# spaCy's sentencizer stops (Sentencizer.default_punct_chars); datatrove's TERMINAL_PUNCTUATION adds _MORE_TERMINAL.
_SENTENCE_STOPS = "".join(map(chr, _code_points(
    "21 2E 3F 589 61F 6D4 700-702 7F9 964-965 104A-104B 1362 1367-1368 166E 1735-1736 1803 1809 1944-1945 "
    "1AA8-1AAB 1B5A-1B5B 1B5E-1B5F 1C3B-1C3C 1C7E-1C7F 203C-203D 2047-2049 2E2E 2E3C 3002 A4FF A60E-A60F A6F3 "
    "A6F7 A876-A877 A8CE-A8CF A92F A9C8-A9C9 AA5D-AA5F AAF0-AAF1 ABEB FE52 FE56-FE57 FF01 FF0E FF1F FF61 "
    "10A56-10A57 11047-11048 110BE-110C1 11141-11143 111C5-111C6 111CD 111DE-111DF 11238-11239 1123B-1123C 112A9 "
    "1144B-1144C 115C2-115C3 115C9-115D7 11641-11642 1173C-1173E 11A42-11A43 11A9B-11A9C 11C41-11C42 16A6E-16A6F "
    "16AF5 16B37-16B38 16B44 1BC9F 1DA88")))
_MORE_TERMINAL = "".join(map(chr, _code_points(
    "61D-61E 837 839 83D-83E 17D4-17D6 17D9-17DA 1B7D-1B7E 2E53-2E54 10F55-10F59 10F86-10F89 11944 11946 "
    "11EF7-11EF8 11F43-11F44 16E98")))
SENTENCE_PUNCT = frozenset(_SENTENCE_STOPS)
TERMINAL_PUNCTUATION = tuple(_SENTENCE_STOPS + _MORE_TERMINAL)

# --- character classes (spacy/lang/char_classes.py) --------------------------------------------------------------
_UNCASED = _code_points(  # scripts without case count as both upper and lower
    "591-5F4 620-64A 66E-6D5 6E5-6FF 750-77F 8A0-8BD 900-9FF B80-CFF D80-DFF 1100-137F 2E80-2FDF 2FF0-30FF "
    "31C0-31EF 3200-4DBF 4E00-9FFF AC00-D7AF F900-FAFF FB1D-FBB1 FBD3-FD3D FD50-FDC7 FDF0-FDFB FE30-FE4F FE70-FEFC "
    "1EE00-1EEBB 1F200-1F2FF 20000-2A6DF 2A700-2EBEF 2F800-2FA1F")
_LATIN = _code_points("41-5A 61-7A C0-24F 1E00-1EFF 2C60-2C7B 2C7E-2C7F A722-A76F A771-A7B9 A7FA FF21-FF3A FF41-FF5A")
_PHONETIC = _code_points("250-2AF 1D00-1D25 1D6B-1D77 1D79-1D9A AB30-AB5A AB60-AB64")  # all "lower" in spaCy
_OTHER_LOWER = "ёа-яәөүҗңһα-ωάέίόώήύіїєґѓѕјљњќѐѝ"
_OTHER_UPPER = "ЁА-ЯӘӨҮҖҢҺΑ-ΩΆΈΊΌΏΉΎІЇЄҐЃЅЈЉЊЌЀЍ"
_ICONS = _code_points(  # unicode "So" as of spaCy's list (newer emoji are not in it)
    "A6 A9 AE B0 482 58D-58E 60E-60F 6DE 6E9 6FD-6FE 7F6 9FA B70 BF3-BF8 BFA C7F D4F D79 F01-F03 F13 F15-F17 "
    "F1A-F1F F34 F36 F38 FBE-FC5 FC7-FCC FCE-FCF FD5-FD8 109E-109F 1390-1399 1940 19DE-19FF 1B61-1B6A 1B74-1B7C "
    "2100-2101 2103-2106 2108-2109 2114 2116-2117 211E-2123 2125 2127 2129 212E 213A-213B 214A 214C-214D 214F "
    "218A-218B 2195-2199 219C-219F 21A1-21A2 21A4-21A5 21A7-21AD 21AF-21CD 21D0-21D1 21D3 21D5-21F3 2300-2307 "
    "230C-231F 2322-2328 232B-237B 237D-239A 23B4-23DB 23E2-2426 2440-244A 249C-24E9 2500-25B6 25B8-25C0 25C2-25F7 "
    "2600-266E 2670-2767 2794-27BF 2800-28FF 2B00-2B2F 2B45-2B46 2B4D-2B73 2B76-2B95 2B98-2BC8 2BCA-2BFE 2CE5-2CEA "
    "2E80-2E99 2E9B-2EF3 2F00-2FD5 2FF0-2FFB 3004 3012-3013 3020 3036-3037 303E-303F 3190-3191 3196-319F 31C0-31E3 "
    "3200-321E 322A-3247 3250 3260-327F 328A-32B0 32C0-32FE 3300-33FF 4DC0-4DFF A490-A4C6 A828-A82B A836-A837 A839 "
    "AA77-AA79 FDFD FFE4 FFE8 FFED-FFEE FFFC-FFFD 10137-1013F 10179-10189 1018C-1018E 10190-1019B 101A0 101D0-101FC "
    "10877-10878 10AC8 1173F 16B3C-16B3F 16B45 1BC9C 1D000-1D0F5 1D100-1D126 1D129-1D164 1D16A-1D16C 1D183-1D184 "
    "1D18C-1D1A9 1D1AE-1D1E8 1D200-1D241 1D245 1D300-1D356 1D800-1D9FF 1DA37-1DA3A 1DA6D-1DA74 1DA76-1DA83 "
    "1DA85-1DA86 1ECAC 1F000-1F02B 1F030-1F093 1F0A0-1F0AE 1F0B1-1F0BF 1F0C1-1F0CF 1F0D1-1F0F5 1F110-1F16B "
    "1F170-1F1AC 1F1E6-1F202 1F210-1F23B 1F240-1F248 1F250-1F251 1F260-1F265 1F300-1F3FA 1F400-1F6D4 1F6E0-1F6EC "
    "1F6F0-1F6F9 1F700-1F773 1F780-1F7D8 1F800-1F80B 1F810-1F847 1F850-1F859 1F860-1F887 1F890-1F8AD 1F900-1F90B "
    "1F910-1F93E 1F940-1F970 1F973-1F976 1F97A 1F97C-1F9A2 1F9B0-1F9B9 1F9C0-1F9C2 1F9D0-1F9FF 1FA60-1FA6D")


def _expand(spec: str) -> set[int]:
    return {c for a, b in re.findall(r"(.)(?:-(.))?", spec) for c in range(ord(a), ord(b or a) + 1)}


def _regex_class(points) -> str:
    points, parts, i = sorted(set(points)), [], 0
    while i < len(points):
        j = i
        while j + 1 < len(points) and points[j + 1] == points[j] + 1:
            j += 1
        parts.append(f"\\U{points[i]:08X}" + (f"-\\U{points[j]:08X}" if j > i else ""))
        i = j + 1
    return "".join(parts)


_LOWER = {c for c in _LATIN if chr(c).islower()} | set(_PHONETIC) | _expand(_OTHER_LOWER)
_UPPER = {c for c in _LATIN if chr(c).isupper()} | _expand(_OTHER_UPPER)
# spaCy's ALPHA also takes the Latin letters that are neither case (ƻ, ǅ, ǈ, ǋ, ǲ)
ALPHA = _regex_class(_LOWER | _UPPER | set(_UNCASED) | {0x1BB, 0x1C5, 0x1C8, 0x1CB, 0x1F2})
ALPHA_LOWER = _regex_class(_LOWER | set(_UNCASED))
ALPHA_UPPER = _regex_class(_UPPER | set(_UNCASED))
ICONS = _regex_class(_ICONS)
# These lists are spaCy's source strings: several are spliced into character classes as written, "|" included.
_PUNCT = r"… …… , : ; \! \? ¿ ؟ ¡ \( \) \[ \] \{ \} < > _ # \* & 。 ？ ！ ， 、 ； ： ～ · । ، ۔ ؛ ٪"
_QUOTES = r'\' " ” “ ` ‘ ´ ’ ‚ , „ » « 「 」 『 』 （ ） 〔 〕 【 】 《 》 〈 〉 〈 〉  ⟦ ⟧'
_CURRENCY = r"\$ £ € ¥ ฿ US\$ C\$ A\$ ₽ ﷼ ₴ ₠ ₡ ₢ ₣ ₤ ₥ ₦ ₧ ₨ ₩ ₪ ₫ € ₭ ₮ ₯ ₰ ₱ ₲ ₳ ₴ ₵ ₶ ₷ ₸ ₹ ₺ ₻ ₼ ₽ ₾ ₿"
_UNITS = (
    "km km² km³ m m² m³ dm dm² dm³ cm cm² cm³ mm mm² mm³ ha µm nm yd in ft kg g mg µg t lb oz m/s km/h kmh mph hPa Pa "
    "mbar mb MB kb KB gb GB tb TB T G M K % км км² км³ м м² м³ дм дм² дм³ см см² см³ мм мм² мм³ нм кг г мг м/с км/ч "
    "кПа Па мбар Кб КБ кб Мб МБ мб Гб ГБ гб Тб ТБ тб"  # no space: spaCy's list runs "тб" and "كم" together
    "كم كم² كم³ م م² م³ سم سم² سم³ مم مم² مم³ كم غرام جرام جم كغ ملغ كوب اكواب"
)
_HYPHENS = "- – — -- --- —— ~"
_QUOTE_CLASS = _QUOTES.replace(" ", "")
_ELLIPSES = [r"\.\.+", "…"]
_ICON_RULE = [f"[{ICONS}]"]

_PREFIXES = ["§", "%", "=", "—", "–", r"\+(?![0-9])", *_PUNCT.split(), *_ELLIPSES, *_QUOTES.split(),
             *_CURRENCY.split(), *_ICON_RULE]
_SUFFIXES = [
    *_PUNCT.split(), *_ELLIPSES, *_QUOTES.split(), *_ICON_RULE, "'s", "'S", "’s", "’S", "—", "–",
    r"(?<=[0-9])\+", r"(?<=°[FfCcKk])\.", rf"(?<=[0-9])(?:{_CURRENCY.replace(' ', '|')})",
    rf"(?<=[0-9])(?:{_UNITS.replace(' ', '|')})",
    rf"(?<=[0-9{ALPHA_LOWER}%²\-\+{_PUNCT.replace(' ', '|')}(?:{_QUOTE_CLASS})])\.",
    rf"(?<=[{ALPHA_UPPER}][{ALPHA_UPPER}])\.",
]
_INFIXES = [  # English infixes (spacy/lang/en/punctuation.py)
    *_ELLIPSES, *_ICON_RULE, r"(?<=[0-9])[+\-\*^](?=[0-9-])",
    rf"(?<=[{ALPHA_LOWER}{_QUOTE_CLASS}])\.(?=[{ALPHA_UPPER}{_QUOTE_CLASS}])",
    rf"(?<=[{ALPHA}]),(?=[{ALPHA}])",
    rf"(?<=[{ALPHA}0-9])(?:{_HYPHENS.replace(' ', '|')})(?=[{ALPHA}])",
    rf"(?<=[{ALPHA}0-9])[:<>=/](?=[{ALPHA}])",
]
# Affixes are matched at an index into the chunk instead of on ever shorter copies of it: peeling a run of 8,000
# "=" one prefix at a time used to copy and rescan the rest each time (quadratic). Every prefix and suffix rule is a
# few characters long except the ellipsis (r"\.\.+"), so a suffix is searched for in a short window at the end.
_prefix_search = re.compile("|".join("^" + p for p in _PREFIXES)).search
_prefix_at = re.compile("|".join(f"(?:{p})" for p in _PREFIXES)).match
_suffix_search = re.compile("|".join(p + "$" for p in _SUFFIXES)).search
_SUFFIX_WINDOW = 8  # longer than any suffix rule but the ellipsis ("اكواب" is 5)
_LOOKBEHIND = 2  # the longest lookbehind in the suffix rules
_infix_finditer = re.compile("|".join(_INFIXES)).finditer
_url_match = re.compile(  # spacy/lang/tokenizer_exceptions.py URL_PATTERN
    # spaCy's user-info part "\S+(?::\S*)?@" is written "\S+@" here: the same strings, and we only ask whether it
    # matches; spaCy's form backtracks over every ":" (quadratic on "a:a:a:...").
    r"^(?:(?:[\w\+\-\.]{2,})://)?(?:\S+@)?(?:(?!(?:10|127)(?:\.\d{1,3}){3})"
    r"(?!(?:169\.254|192\.168)(?:\.\d{1,3}){2})(?!172\.(?:1[6-9]|2\d|3[0-1])(?:\.\d{1,3}){2})"
    r"(?:[1-9]\d?|1\d\d|2[01]\d|22[0-3])(?:\.(?:1?\d{1,2}|2[0-4]\d|25[0-5])){2}(?:\.(?:[1-9]\d?|1\d\d|2[0-4]\d|25[0-4]))"
    r"|(?:(?:[A-Za-z0-9\u00a1-\uffff][A-Za-z0-9\u00a1-\uffff_-]{0,62})?[A-Za-z0-9\u00a1-\uffff]\.)+"
    rf"(?:[{ALPHA_LOWER}]{{2,63}}))(?::\d{{2,5}})?(?:[/?#]\S*)?$"
).match

# --- special cases (spacy/lang/tokenizer_exceptions.py and spacy/lang/en/tokenizer_exceptions.py) ----------------
_EMOTICONS = (
    r"""(*_*) (-8 (-: (-; (-_-) (._.) (: (; (= (>_<) (^_^) (o: (¬_¬) (ಠ_ಠ) (╯°□°）╯︵┻━┻ )-: ): -_- -__- ._."""
    r""" 0.0 0.o 0_0 0_o 8) 8-) 8-D 8D :'( :') :'-( :'-) :( :(( :((( :() :) :)) :))) :* :-( :-(( :-((( :-)"""
    r""" :-)) :-))) :-* :-/ :-0 :-3 :-> :-D :-O :-P :-X :-] :-o :-p :-x :-| :-} :/ :0 :1 :3 :> :D :O :P :X :]"""
    r""" :o :o) :p :x :| :} ;) ;-) ;-D ;D ;_; <.< </3 <3 <33 <333 =( =) =/ =3 =D =[ =] =| >.< >.> >:( >:o"""
    r""" ><(((*> @_@ O.O O.o O_O O_o V.V V_V XD XDD [-: [: [= ]= ^_^ ^__^ ^___^ o.0 o.O o.o o_0 o_O o_o v.v"""
    r""" v_v xD xDD ¯\(ツ)/¯ ಠ_ಠ ಠ︵ಠ"""
)
_ABBREVIATIONS = (
    "'d a.m. Adm. Bros. co. Co. Corp. D.C. Dr. e.g. E.g. E.G. Gen. Gov. i.e. I.e. I.E. Inc. Jr. Ltd. Md. Messrs. Mo. "
    "Mont. Mr. Mrs. Ms. p.m. Ph.D. Prof. Rep. Rev. Sen. St. vs. v.s. Mt. Ak. Ala. Apr. Ariz. Ark. Aug. Calif. Colo. "
    "Conn. Dec. Del. Feb. Fla. Ga. Ia. Id. Ill. Ind. Jan. Jul. Jun. Kan. Kans. Ky. La. Mar. Mass. Mich. Minn. Miss. "
    "N.C. N.D. N.H. N.J. N.M. N.Y. Neb. Nebr. Nev. Nov. Oct. Okla. Ore. Pa. S.C. Sep. Sept. Tenn. Va. Wash. Wis. "
    "'S 's \u2018S \u2018s and/or w/o 're 'Cause 'cause 'cos 'Cos 'coz 'Coz 'cuz 'Cuz 'bout ma'am Ma'am o'clock "
    "O'clock lovin' Lovin' lovin Lovin havin' Havin' havin Havin doin' Doin' doin Doin goin' Goin' goin Goin "
    "' \\\") <space> '' C++ " + " ".join(c + "." for c in "abcdefghijklmnopqrstuvwxyzäöü")
)
_EXCLUDED = {"Ill", "ill", "Its", "its", "Hell", "hell", "Shell", "shell", "Shed", "shed", "were", "Were", "Well",
             "well", "Whore", "whore"}


def _english_special_cases() -> dict[str, tuple[str, ...]]:
    exc: dict[str, tuple[str, ...]] = {}

    def add(*parts: str) -> None:
        exc["".join(parts)] = parts

    for orth in [*_EMOTICONS.split(), *_ABBREVIATIONS.split(), " ", "\t", "\\t", "\n", "\\n", "\u2014", "\u00a0"]:
        add(orth)
    for unit in "cfkCFK":
        add("°", unit, ".")
    for orth in ("i", "I"):
        add(orth, "'m"), add(orth, "m"), add(orth, "'m", "a"), add(orth, "m", "a")
    cased = [(w, w.title()) for w in ("i", "you", "he", "she", "it", "we", "they")]
    wh = [(w, w.title()) for w in ("who", "what", "when", "where", "why", "how", "there", "that", "this", "these",
                                   "those")]
    for word, title in cased + wh:
        for orth in (word, title):
            for tail in (("'ll",), ("ll",), ("'ll", "'ve"), ("ll", "ve"), ("'d",), ("d",), ("'d", "'ve"), ("d", "ve")):
                add(orth, *tail)
            if word in ("i", "you", "we", "they"):
                add(orth, "'ve"), add(orth, "ve")
            if word in ("you", "we", "they", "who", "what", "when", "where", "why", "how", "there", "these", "those"):
                add(orth, "'re"), add(orth, "re")
            if word in ("who", "what", "when", "where", "why", "how", "there", "these", "those"):
                add(orth, "'ve"), add(orth, "ve")
            if word in ("he", "she", "it", "who", "what", "when", "where", "why", "how", "there", "that", "this"):
                add(orth, "'s"), add(orth, "s")
    for verb in ("ca", "could", "do", "does", "did", "had", "may", "might", "must", "need", "ought", "sha", "should",
                 "wo", "would"):
        for orth in (verb, verb.title()):
            add(orth, "n't"), add(orth, "nt"), add(orth, "n't", "'ve"), add(orth, "nt", "ve")
    for verb in ("could", "might", "must", "should", "would"):
        for orth in (verb, verb.title()):
            add(orth, "'ve"), add(orth, "ve")
    for verb in ("ai", "are", "is", "was", "were", "have", "has", "dare"):
        for orth in (verb, verb.title()):
            add(orth, "n't"), add(orth, "nt")
    for word in ("doin", "goin", "nothin", "nuthin", "ol", "somethin"):
        for orth in (word, word.title()):
            add(orth), add(orth + "'")
    for word in ("em", "ll", "nuff"):
        add(word), add("'" + word)
    for hour in range(1, 13):
        for period in ("a.m.", "am", "p.m.", "pm"):
            add(str(hour), period)
    for parts in (("y'", "all"), ("y", "all"), ("how", "'d", "'y"), ("How", "'d", "'y"), ("not", "'ve"), ("not", "ve"),
                  ("Not", "'ve"), ("Not", "ve"), ("can", "not"), ("Can", "not"), ("gon", "na"), ("Gon", "na"),
                  ("got", "ta"), ("Got", "ta"), ("let", "'s"), ("Let", "'s"), ("c'm", "on"), ("C'm", "on")):
        add(*parts)
    for orth in _EXCLUDED:
        exc.pop(orth, None)
    # spacy.util.update_exc: every case with a straight apostrophe also exists with a curly one
    exc.update({k.replace("'", "’"): tuple(p.replace("'", "’") for p in v) for k, v in exc.items() if "'" in k})
    return exc


SPECIAL_CASES = _english_special_cases()
_SPECIAL_MAX = max(map(len, SPECIAL_CASES))


# --- the tokenizer (spacy/tokenizer.pyx, Tokenizer._tokenize_affixes for one whitespace-free chunk) --------------
def _suffix_len(chunk: str, start: int, end: int) -> int:
    """Length of the suffix rule that _suffix_search finds in chunk[start:end], looking at its last few characters."""
    window = max(start, end - _SUFFIX_WINDOW)
    context = max(start, window - _LOOKBEHIND)  # lookbehinds see what they would see in chunk[start:end]
    match = _suffix_search(chunk[context:end], window - context)
    if not match:
        return 0
    first = context + match.start()
    if first == window > start and not chunk[window:end].strip("."):
        while first > start and chunk[first - 1] == ".":  # an ellipsis longer than the window
            first -= 1
    return end - first


def _split_chunk(chunk: str, specials: dict[str, tuple[str, ...]]) -> list[str]:
    if chunk in specials:
        return list(specials[chunk])
    longest = _SPECIAL_MAX if specials is SPECIAL_CASES else max(map(len, specials), default=0)

    def special(first: int, last: int) -> bool:  # chunk[first:last] is a special case (hashing only short ones)
        return first < last and last - first <= longest and chunk[first:last] in specials

    prefixes: list[str] = []
    suffixes: list[str] = []
    start, end, last_size = 0, len(chunk), -1
    while start < end and end - start != last_size:
        if special(start, end):
            break
        last_size = end - start
        match = _prefix_at(chunk, start, end)
        pre_len = match.end() - start if match else 0
        if pre_len and special(start + pre_len, end):
            prefixes.append(chunk[start:start + pre_len])
            start += pre_len
            break
        suf_len = _suffix_len(chunk, start + pre_len, end)
        if suf_len and special(start, end - suf_len):
            suffixes.append(chunk[end - suf_len:end])
            end -= suf_len
            break
        if pre_len:
            prefixes.append(chunk[start:start + pre_len])
            start += pre_len
        if suf_len and (pre_len == 0 or pre_len + suf_len <= last_size):
            suffixes.append(chunk[end - suf_len:end])
            end -= suf_len
    string = chunk[start:end]
    tokens = prefixes
    if string in specials:
        tokens.extend(specials[string])
    elif string and _url_match(string):
        tokens.append(string)
    elif string:
        start = 0
        for match in _infix_finditer(string):
            infix_start, infix_end = match.span()
            if infix_start == 0:
                continue
            if infix_start != start:
                tokens.append(string[start:infix_start])
            if infix_start != infix_end:
                tokens.append(string[infix_start:infix_end])
            start = infix_end
        if string[start:]:
            tokens.append(string[start:])
    tokens.extend(reversed(suffixes))
    return tokens


def _special_patterns() -> dict[tuple[str, ...], str]:
    # spaCy's special-case matcher: a special case that the affix rules would cut apart ("(:" -> "(", ":") is
    # re-joined when its pieces appear in a row. One-token patterns change nothing and are left out.
    patterns = {}
    for key in SPECIAL_CASES:
        if key.isspace():
            continue
        if _prefix_search(key) or _suffix_search(key) or next(_infix_finditer(key), None):
            pieces = tuple(_split_chunk(key, {}))
            if len(pieces) > 1:
                patterns[pieces] = key
    return patterns


_PATTERNS = _special_patterns()
_PATTERN_LENGTHS = sorted({len(p) for p in _PATTERNS}, reverse=True)
_PATTERN_FIRSTS = frozenset(p[0] for p in _PATTERNS)


def _rejoin_special_cases(tokens: list[str]) -> list[str]:
    # only tokens that open some pattern can start a match: look at those alone
    starts = [i for i, token in enumerate(tokens) if token in _PATTERN_FIRSTS]
    matches = [(start, start + size) for size in _PATTERN_LENGTHS for start in starts
               if start + size <= len(tokens) and tuple(tokens[start:start + size]) in _PATTERNS]
    if not matches:
        return tokens
    # longest first, then leftmost; a match is dropped when its first or last token is taken (spaCy's filter)
    taken: set[int] = set()
    kept = []
    for start, end in matches:
        if start not in taken and end - 1 not in taken:
            kept.append((start, end))
        taken.update(range(start, end))
    out, position = [], 0
    for start, end in sorted(kept):
        out.extend(tokens[position:start])
        out.extend(SPECIAL_CASES["".join(tokens[start:end])])
        position = end
    out.extend(tokens[position:])
    return out


_CACHE_LIMIT = 200_000
_chunk_cache: dict[str, tuple[str, ...]] = {}


def chunk_tokens(chunk: str) -> tuple[str, ...]:
    """Tokens of one whitespace-free chunk, memoised: web text repeats its chunks, like spaCy's own cache."""
    tokens = _chunk_cache.get(chunk)
    if tokens is None:
        if len(_chunk_cache) >= _CACHE_LIMIT:
            _chunk_cache.clear()
        if chunk.isalpha() and chunk not in SPECIAL_CASES:
            # no affix rule matches a run of letters (they all need a digit, a symbol or punctuation)
            tokens = _chunk_cache[chunk] = (chunk,)
            return tokens
        pieces = _split_chunk(chunk, SPECIAL_CASES)
        tokens = _chunk_cache[chunk] = tuple(_rejoin_special_cases(pieces) if len(pieces) > 1 else pieces)
    return tokens


def split_into_words(text: str) -> list[str]:
    """datatrove's split_into_words(text, "eng"): spaCy English tokens without the whitespace tokens."""
    words: list[str] = []
    extend, get = words.extend, _chunk_cache.get
    for chunk in text.split():
        tokens = get(chunk)
        extend(tokens if tokens is not None else chunk_tokens(chunk))
    return words


_CHUNK_OR_SPACE = re.compile(r"\S+|\s+")


def count_sentences(text: str) -> int:
    """Sentences that spaCy's sentencizer finds, as datatrove's split_into_sentences(text, "eng") counts them."""
    count, after_stop = 1, False
    for piece in _CHUNK_OR_SPACE.findall(text):
        if piece.isspace():
            # spaCy folds one plain space into the token before it; any other whitespace run is a token
            tokens: tuple[str, ...] = () if piece == " " else (piece,)
        else:
            tokens = _chunk_cache.get(piece) or chunk_tokens(piece)
        for token in tokens:
            if token in SENTENCE_PUNCT:
                after_stop = True
            elif after_stop and not _is_punct(token):
                count += 1
                after_stop = False
    return count


def _is_punct(token: str) -> bool:
    return all(unicodedata.category(char).startswith("P") for char in token)
