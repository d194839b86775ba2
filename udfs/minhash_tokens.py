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
UNIT_SUFFIX = 'اكواب|mbar|мбар|тбكم|جرام|غرام|cm²|cm³|dm²|dm³|kmh|km²|km³|mm²|mm³|mph|дм²|дм³|км²|км³|мм²|мм³|см²|см³|سم²|سم³|كم²|كم³|كوب|ملغ|مم²|مم³|cm|dm|ft|gb|ha|in|kb|kg|km|lb|mb|mg|mm|m²|m³|nm|oz|tb|yd|µg|µm|гб|дм|кб|кг|км|м²|м³|мб|мг|мм|нм|см|جم|سم|كغ|كم|م²|م³|مم|g|m|t|г|м|م'
# split off before a word ("£0" -> "£ 0")
CURRENCY_PREFIX = '£|¥|฿|₠|₡|₢|₣|₤|₥|₦|₧|₨|₩|₪|₫|€|₭|₮|₯|₰|₱|₲|₳|₴|₵|₶|₷|₸|₹|₺|₻|₼|₽|₾|₿|﷼'
# split off at either end of a word ("‘word" -> "‘ word"): spaCy quotes that simplify_text keeps
QUOTE = '‘|‚|〈|〉|⟦|⟧|『|』|〔|〕'
