"""spaCy 3.8 English tokenizer rules that still apply to datatrove-simplified text (lower case, no punctuation).

Generated from `spacy.blank("en").tokenizer.rules` and spacy.lang.char_classes UNITS / CURRENCY, keeping only
entries that can occur after simplify_text; tests/test_minhash_units.py checks parity with datatrove on Reuters.
"""

_SPLITS = """
aint=ai_nt arent=are_nt cannot=can_not cant=ca_nt cantve=ca_nt_ve couldnt=could_nt couldntve=could_nt_ve
couldve=could_ve darent=dare_nt didnt=did_nt didntve=did_nt_ve doesnt=does_nt doesntve=does_nt_ve dont=do_nt
dontve=do_nt_ve gonna=gon_na gotta=got_ta hadnt=had_nt hadntve=had_nt_ve hasnt=has_nt havent=have_nt hed=he_d
hedve=he_d_ve hellve=he_ll_ve hes=he_s howd=how_d howdve=how_d_ve howll=how_ll howllve=how_ll_ve howre=how_re
hows=how_s howve=how_ve id=i_d idve=i_d_ve illve=i_ll_ve im=i_m ima=i_m_a isnt=is_nt itd=it_d itdve=it_d_ve
itll=it_ll itllve=it_ll_ve ive=i_ve maynt=may_nt mayntve=may_nt_ve mightnt=might_nt mightntve=might_nt_ve
mightve=might_ve mustnt=must_nt mustntve=must_nt_ve mustve=must_ve neednt=need_nt needntve=need_nt_ve
notve=not_ve oughtnt=ought_nt oughtntve=ought_nt_ve shant=sha_nt shantve=sha_nt_ve shedve=she_d_ve
shellve=she_ll_ve shes=she_s shouldnt=should_nt shouldntve=should_nt_ve shouldve=should_ve thatd=that_d
thatdve=that_d_ve thatll=that_ll thatllve=that_ll_ve thats=that_s thered=there_d theredve=there_d_ve
therell=there_ll therellve=there_ll_ve therere=there_re theres=there_s thereve=there_ve thesed=these_d
thesedve=these_d_ve thesell=these_ll thesellve=these_ll_ve thesere=these_re theseve=these_ve theyd=they_d
theydve=they_d_ve theyll=they_ll theyllve=they_ll_ve theyre=they_re theyve=they_ve thisd=this_d
thisdve=this_d_ve thisll=this_ll thisllve=this_ll_ve thiss=this_s thosed=those_d thosedve=those_d_ve
thosell=those_ll thosellve=those_ll_ve thosere=those_re thoseve=those_ve wasnt=was_nt wed=we_d wedve=we_d_ve
wellve=we_ll_ve werent=were_nt weve=we_ve whatd=what_d whatdve=what_d_ve whatll=what_ll whatllve=what_ll_ve
whatre=what_re whats=what_s whatve=what_ve whend=when_d whendve=when_d_ve whenll=when_ll whenllve=when_ll_ve
whenre=when_re whens=when_s whenve=when_ve whered=where_d wheredve=where_d_ve wherell=where_ll
wherellve=where_ll_ve wherere=where_re wheres=where_s whereve=where_ve whod=who_d whodve=who_d_ve wholl=who_ll
whollve=who_ll_ve whos=who_s whove=who_ve whyd=why_d whydve=why_d_ve whyll=why_ll whyllve=why_ll_ve
whyre=why_re whys=why_s whyve=why_ve wont=wo_nt wontve=wo_nt_ve wouldnt=would_nt wouldntve=would_nt_ve
wouldve=would_ve yall=y_all youd=you_d youdve=you_d_ve youll=you_ll youllve=you_ll_ve youre=you_re
youve=you_ve
"""
# word -> its spaCy tokens joined by one space ("cannot" -> "can not")
SPACY_SPLITS: dict[str, str] = dict(
    (entry.split("=")[0], entry.split("=")[1].replace("_", " ")) for entry in _SPLITS.split()
)
# split off after a digit ("0km" -> "0 km"); longest first so "kmh" wins over "km"
UNIT_SUFFIX = (
    "اكواب|mbar|мбар|тбكم|جرام|غرام|cm²|cm³|dm²|dm³|kmh|km²|km³|mm²|mm³|mph|дм²|дм³|км²|км³|мм²|"
    "мм³|см²|см³|سم²|سم³|كم²|كم³|كوب|ملغ|مم²|مم³|cm|dm|ft|gb|ha|in|kb|kg|km|lb|mb|mg|mm|m²|m³|"
    "nm|oz|tb|yd|µg|µm|гб|дм|кб|кг|км|м²|м³|мб|мг|мм|нм|см|جم|سم|كغ|كم|م²|م³|مم|g|m|t|г|м|م"
)
# split off before a word ("£0" -> "£ 0")
CURRENCY_PREFIX = (
    "£|¥|฿|₠|₡|₢|₣|₤|₥|₦|₧|₨|₩|₪|₫|€|₭|₮|₯|₰|₱|₲|₳|₴|₵|₶|₷|₸|₹|₺|₻|₼|₽|₾|₿|﷼"
)
# split off at either end of a word ("‘word" -> "‘ word"): spaCy quotes that simplify_text keeps
QUOTE = '‘|‚|〈|〉|⟦|⟧|『|』|〔|〕'
# always its own token, wherever it stands ("n°0" -> "n ° 0"): spaCy LIST_ICONS, Unicode symbols (So)
ICON_CLASS = (
    r"\u00A6\u00A9\u00AE\u00B0\u0482\u058D\u058E\u060E\u060F\u06DE\u06E9\u06FD\u06FE\u07F6\u09FA\u0B70"
    r"\u0BF3-\u0BF8\u0BFA\u0C7F\u0D4F\u0D79\u0F01-\u0F03\u0F13\u0F15-\u0F17\u0F1A-\u0F1F\u0F34\u0F36\u0F38"
    r"\u0FBE-\u0FC5\u0FC7-\u0FCC\u0FCE\u0FCF\u0FD5-\u0FD8\u109E\u109F\u1390-\u1399\u1940\u19DE-\u19FF"
    r"\u1B61-\u1B6A\u1B74-\u1B7C\u2100\u2101\u2103-\u2106\u2108\u2109\u2114\u2116\u2117\u211E-\u2123\u2125"
    r"\u2127\u2129\u212E\u213A\u213B\u214A\u214C\u214D\u214F\u218A\u218B\u2195-\u2199\u219C-\u219F\u21A1"
    r"\u21A2\u21A4\u21A5\u21A7-\u21AD\u21AF-\u21CD\u21D0\u21D1\u21D3\u21D5-\u21F3\u2300-\u2307\u230C-"
    r"\u231F\u2322-\u2328\u232B-\u237B\u237D-\u239A\u23B4-\u23DB\u23E2-\u2426\u2440-\u244A\u249C-\u24E9"
    r"\u2500-\u25B6\u25B8-\u25C0\u25C2-\u25F7\u2600-\u266E\u2670-\u2767\u2794-\u27BF\u2800-\u28FF\u2B00-"
    r"\u2B2F\u2B45\u2B46\u2B4D-\u2B73\u2B76-\u2B95\u2B98-\u2BC8\u2BCA-\u2BFE\u2CE5-\u2CEA\u2E80-\u2E99"
    r"\u2E9B-\u2EF3\u2F00-\u2FD5\u2FF0-\u2FFB\u3004\u3012\u3013\u3020\u3036\u3037\u303E\u303F\u3190\u3191"
    r"\u3196-\u319F\u31C0-\u31E3\u3200-\u321E\u322A-\u3247\u3250\u3260-\u327F\u328A-\u32B0\u32C0-\u32FE"
    r"\u3300-\u33FF\u4DC0-\u4DFF\uA490-\uA4C6\uA828-\uA82B\uA836\uA837\uA839\uAA77-\uAA79\uFDFD\uFFE4"
    r"\uFFE8\uFFED\uFFEE\uFFFC\uFFFD\U00010137-\U0001013F\U00010179-\U00010189\U0001018C-\U0001018E"
    r"\U00010190-\U0001019B\U000101A0\U000101D0-\U000101FC\U00010877\U00010878\U00010AC8\U0001173F"
    r"\U00016B3C-\U00016B3F\U00016B45\U0001BC9C\U0001D000-\U0001D0F5\U0001D100-\U0001D126\U0001D129-"
    r"\U0001D164\U0001D16A-\U0001D16C\U0001D183\U0001D184\U0001D18C-\U0001D1A9\U0001D1AE-\U0001D1E8"
    r"\U0001D200-\U0001D241\U0001D245\U0001D300-\U0001D356\U0001D800-\U0001D9FF\U0001DA37-\U0001DA3A"
    r"\U0001DA6D-\U0001DA74\U0001DA76-\U0001DA83\U0001DA85\U0001DA86\U0001ECAC\U0001F000-\U0001F02B"
    r"\U0001F030-\U0001F093\U0001F0A0-\U0001F0AE\U0001F0B1-\U0001F0BF\U0001F0C1-\U0001F0CF\U0001F0D1-"
    r"\U0001F0F5\U0001F110-\U0001F16B\U0001F170-\U0001F1AC\U0001F1E6-\U0001F202\U0001F210-\U0001F23B"
    r"\U0001F240-\U0001F248\U0001F250\U0001F251\U0001F260-\U0001F265\U0001F300-\U0001F3FA\U0001F400-"
    r"\U0001F6D4\U0001F6E0-\U0001F6EC\U0001F6F0-\U0001F6F9\U0001F700-\U0001F773\U0001F780-\U0001F7D8"
    r"\U0001F800-\U0001F80B\U0001F810-\U0001F847\U0001F850-\U0001F859\U0001F860-\U0001F887\U0001F890-"
    r"\U0001F8AD\U0001F900-\U0001F90B\U0001F910-\U0001F93E\U0001F940-\U0001F970\U0001F973-\U0001F976"
    r"\U0001F97A\U0001F97C-\U0001F9A2\U0001F9B0-\U0001F9B9\U0001F9C0-\U0001F9C2\U0001F9D0-\U0001F9FF"
    r"\U0001FA60-\U0001FA6D"
)
