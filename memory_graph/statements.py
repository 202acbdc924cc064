"""State statements in a parsed sentence: who holds, starts or ends which value of a state, when,
and whether it is stated at all (:mod:`memory_graph.facts` declares the states).

A statement comes from a verb phrase of a state ("live in", "move to", "quit"), a copula ("I'm
married to Sara", "I'm a nurse at Rigshospitalet"), or a possessive noun ("my wife Hana", "my new
number is ..."), a couple ("Jess and I got married", "we've been together since April" with the
one person the text names), an employer taking someone on or letting them go ("they took me on",
"they" being the one organisation the text names; "Brightloop let me go"), a home ("we sold the
house in Minneapolis", "home is now a flat in Zurich"), "someone" named in a sentence after
("I'm seeing someone new. Her name is Alice"), a partner one has ("I have a new boyfriend,
Ahmed"), a pet named ("we adopted a kitten, she's called Miso"), or a chat's new number with no
owner named ("New UK number: +44 ..."). A chat's sentence that leaves out its "I" ("Found a
room in Bath", "first day at Okra tomorrow!") is the speaker's. Its modality decides whether it
is kept:

- a question ("Should we move to Oslo?"), a negation ("I don't work at Vestas"), a conditional
  ("if we move to Ghent"), a wish ("I'd love to live in Rome"), what was asked of one ("my boss
  asked me to move to Berlin") or what almost happened ("I almost moved to Milan") states
  nothing; a negated change calls off a plan of it ("I'm not moving to Osaka after all");
- "will", "going to", "plan to", "an offer to", a present progressive of a change ("we are
  moving") or a date after the time it was said make a plan;
- "anymore", "no longer" with a negation end the value ("I don't live in Paris anymore"), as
  does "instead of" ("works at Bispebjerg instead of Rigshospitalet");
- a past form of a holding verb ("I lived in Berlin", "used to live") is a past value.

Dates attached to the verb give the time: "since", "from", "as of" a start, "until", "to" an
end, anything else ("last week", "in September") the time of the change.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from memory_graph.facts import ASSERTED, CANCEL, END, HOLD, PAST, PLANNED, START, State
from memory_graph.openie import governors, modality_of
from memory_graph.temporal import end_of, normalize_date
from memory_graph.vocabulary import CONCEPT, DATE, FIRST_PERSON, FIRST_PLURAL

if TYPE_CHECKING:
    from spacy.tokens import Span, Token

    from memory_graph.records import ExtractedEntity

_CORRECTION = ("actually", "sorry", "i meant", "correction", "my mistake", "i mean")
_CANCEL = ("fell through", "fall through", "fell apart", "called off", "cancelled", "canceled", "not happening",
           "didn't happen", "won't happen", "is off", "was off", "decided against", "changed our minds",
           "changed my mind", "collapsed", "didn't work out", "scrapped", "backed out", "pulled out")  # fmt: skip
# Nouns that name a change, in a cancellation ("the Berlin move", "the Lisbon thing"), by the state
# they speak of when the sentence does not say more.
_CHANGE_NOUNS = {"move": "lives_in", "relocation": "lives_in", "apartment": "lives_in", "flat": "lives_in",
                 "house": "lives_in", "lease": "lives_in", "job": "works_at", "offer": "works_at",
                 "position": "works_at", "thing": None, "plan": None, "plans": None, "deal": None}  # fmt: skip
# Homes: "our new flat in Croix-Rousse", "we bought a house in Lüneburg": where one lives.
_HOMES = frozenset(
    {"house", "flat", "apartment", "home", "place", "studio", "condo", "townhouse", "cottage", "loft", "room"}
)
# "close" is on a house bought ("we closed on the house in Rabat").
_HOME_VERBS = {"buy": START, "rent": START, "move": START, "find": START, "get": START, "sign": START,
               "close": START, "sell": END, "leave": END}  # fmt: skip
# Employers and schools taking someone on: "Kestrel brought me on", "KTH admitted me".
_TAKING_ON = {"hire": "works_at", "employ": "works_at", "bring on": "works_at", "take on": "works_at",
              "recruit": "works_at", "admit": "studies_at", "accept": "studies_at"}  # fmt: skip
# Employers letting someone go: "Brightloop let me go", "they laid me off": the job ends.
_LETTING_GO = {"let go": "works_at", "lay off": "works_at", "fire": "works_at", "sack": "works_at",
               "expel": "studies_at"}  # fmt: skip
# Someone a partner is first called ("I've been seeing someone new"), named in a sentence after
# ("Her name is Alice").
_SOMEONE = frozenset({"someone", "somebody", "guy", "girl", "woman", "man", "boy"})
_FIRST_DAY = frozenset({"first day", "day one", "first week", "first shift"})
_FRAGMENT = frozenset({"ROOT", "conj", "parataxis", "appos", "dep", "nsubj"})  # a noun with no clause of its own
_LAST_DAY = frozenset({"last day", "final day", "last shift", "final shift"})
_JOB_NOUNS = frozenset({"job", "position", "role", "work", "internship", "post", "offer", "contract"})
_COURSE_NOUNS = frozenset(
    {"course", "degree", "mba", "master", "masters", "phd", "programme", "program", "bachelor", "diploma", "msc", "mtech",
     "mres", "mphil", "bsc", "llm", "doctorate"}
)  # fmt: skip
_NAMING = frozenset({"call", "name"})  # "a guy called Julien"
# Verbs a couple does together ("Ren and I broke up", "Elias and I got married"): each starts or
# ends the other as a value of the state.
_PARTING = {"break up": ("partner_of", END), "split up": ("partner_of", END), "split": ("partner_of", END),
            "divorce": ("married_to", END), "separate": ("married_to", END), "get divorced": ("married_to", END),
            "get married": ("married_to", START), "marry": ("married_to", START), "be married": ("married_to", HOLD),
            "get engaged": ("partner_of", START), "start dating": ("partner_of", START), "date": ("partner_of", HOLD),
            "get together": ("partner_of", START), "be together": ("partner_of", HOLD)}  # fmt: skip
# "get" as a copula of a change: "Jess and I got married", "we're getting engaged".
_GET = frozenset({"get", "gets", "got", "gotten", "getting"})
SUBJECT_DEPS = frozenset({"nsubj", "nsubj:pass", "nsubjpass"})
_NO_SUBJECT_LABELS = frozenset({"DATE", "TIME", "MONEY", "PERCENT", "EMAIL", "URL", "PHONE", "CARDINAL"})
_PARTICLES = frozenset({"back", "away", "out", "down", "up", "over", "off", "on"})
_FROM_CASES = frozenset({"since", "from", "as of", "starting", "after", "beginning"})
_UNTIL_CASES = frozenset({"until", "till", "to", "through", "before"})


class Sentence(Protocol):
    """What reading statements needs of an extraction in progress (``extraction.DocExtraction``)."""

    token_entity: dict[int, int]
    speaker: str | None
    observed_at: datetime | None

    @property
    def entities(self) -> list[ExtractedEntity]: ...

    def entity_of(self, token: Token) -> list[int]: ...

    def speaker_entity(self, token: Token) -> int | None: ...

    def speaker_mention(self, at: Token | None = None) -> list[int]: ...

    def verb_lemma(self, verb: Token) -> str: ...


@dataclass(frozen=True)
class Found:
    """A state statement found in a sentence (entities by index into the extraction)."""

    source: int
    state: State
    target: int
    role: str
    modality: str
    phrase: str  # the verb phrase or noun that stated it ("move to", "wife")
    at: datetime | None
    until: datetime | None
    correction: bool


@dataclass(frozen=True)
class Dropped:
    """A state phrase that states nothing (a question, negation, conditional or wish): the raw
    relations between these entities in this sentence go too."""

    source: int
    target: int


def read_statements(doc: Sentence, sent: Span, states: Mapping[str, State]) -> list[Found | Dropped]:
    """The state statements of one sentence, and the state phrases that state nothing."""
    question = sent.text.rstrip().endswith("?")
    lowered = sent.text.lower()
    correction = any(marker in lowered for marker in _CORRECTION)
    found: list[Found | Dropped] = []
    for token in sent:
        if token.pos_ in ("VERB", "AUX", "ADJ") or token.dep_ == "ROOT" or any(c.dep_ == "cop" for c in token.children):
            found += _verb_statements(doc, token, states, question=question, correction=correction)
        if token.pos_ == "VERB" and not question:
            found += _taking_on(doc, token, states)
            if token.lemma_.lower() == "have":
                found += _having(doc, token, states)
        if token.dep_ in ("nmod:poss", "poss"):
            found += _possessive_statements(doc, token, states, question=question)
    if not question:
        found += _home_statements(doc, sent, states)
        found += _first_day(doc, sent, states)
        found += _new_number(doc, sent, states)
        found += _pets(doc, sent, states)
    if any(marker in lowered for marker in _CANCEL):
        # "We were going to move to Berlin, but it fell through": the plan states nothing.
        found = [Dropped(f.source, f.target) if isinstance(f, Found) and f.modality == PLANNED else f for f in found]
        found += _cancellations(doc, sent, states)
    return found


def _verb_statements(
    doc: Sentence, verb: Token, states: Mapping[str, State], *, question: bool, correction: bool
) -> Iterator[Found | Dropped]:
    holding = frozenset(phrase for state in states.values() for phrase, role in state.verbs.items() if role == HOLD)
    phrases = list(_phrases(doc, verb, holding))
    if not phrases:
        return
    subjects: list[int] | None = None  # read once a phrase has a value: "we" makes a mention of the speaker
    modality, role_change, progressive = modality_of(verb, question=question)
    stated: set[int] = set()
    # "started an MTech at COEP": the course says studies; the bare "start at" says nothing more.
    courses = {t.i for phrase, t, _ in phrases if " course " in f" {phrase} "}
    for phrase, target_token, cased in phrases:
        if target_token.i in courses and " course " not in f" {phrase} ":
            continue
        if phrase in _PARTING and cased == "" and target_token.dep_ in SUBJECT_DEPS:
            yield from _parting(doc, phrase, target_token, states, modality)
            continue
        if phrase == "be in" and not _settled(verb):
            continue  # "I'm in Paris for the weekend": a visit; "we've been in Tallinn since May": a home
        if phrase == "stay in" and not _staying(verb, target_token):
            continue  # "we stayed in Kyoto for a week": a visit; "staying in Tokyo" (not moving): a home
        stating = [state for state in states.values() if phrase in state.verbs]
        targets = doc.entity_of(target_token)
        if not targets and target_token.lemma_.lower() in _SOMEONE:
            targets = _named_after(doc, target_token)  # "I'm seeing someone new. Her name is Alice."
        for target in targets:
            if phrase == f"be {cased}" and target in stated:
                continue  # "I'm a student at KTH": "be student at" said it, not the bare "be at"
            label = doc.entities[target].label
            if label == CONCEPT and phrase.endswith("course in"):
                continue  # "an MTech in AI": the subject studied, not a place
            entity = doc.entities[target]
            candidates = [
                s
                for s in stating
                if _value(entity, s) or _employer(entity, s, phrase) or _lowercase_place(entity, s, target_token)
            ]
            named = [s for s in candidates if s.names is not None and s.names.search(doc.entities[target].text)]
            # a school's name says studies ("transferred to the University of Barcelona"), then the labels
            primary = next((s for s in candidates if label in s.primary), candidates[0] if candidates else None)
            state = named[0] if named else primary
            if state is None:
                continue
            if subjects is None:
                subjects = _subjects(doc, verb)
            for source in subjects:
                if modality not in (ASSERTED, PLANNED):
                    yield Dropped(source, target)
                    if modality == "negated" and state.verbs[phrase] == START:
                        # "I'm not moving to Osaka after all": a plan to, if there was one, is off.
                        yield Found(source, state, target, CANCEL, ASSERTED, phrase, None, None, False)
                    continue
                stated.add(target)
                role = _role(state.verbs[phrase], role_change, cased)
                this_modality = PLANNED if progressive and role in (START, END) else modality
                # A change in the present tense with a date is ahead: "we move to Lisbon in September".
                ahead = role == START and verb.tag_ in ("VB", "VBP", "VBZ")
                at, until = _dates(doc, verb, future=this_modality == PLANNED or ahead)
                said = doc.observed_at
                if this_modality == ASSERTED and role == START and at and said and at > said + timedelta(days=1):
                    this_modality = PLANNED  # "We move to Lisbon in September", said in June
                yield Found(source, state, target, role, this_modality, phrase, at, until, correction)


def _settled(verb: Token) -> bool:
    """Whether "be in <place>" says where one lives: a perfect ("we've been in Tallinn"), or
    "still", "now", "since" with it."""
    words = {c.lower_ for c in verb.children} | {g.lower_ for c in verb.children for g in c.children}
    perfect = any(c.dep_ == "aux" and c.lemma_.lower() == "have" for c in verb.children)
    return perfect or bool(words & {"still", "now", "since", "settled"})


def _staying(verb: Token, place: Token) -> bool:
    """Whether "stay in <place>" says where one goes on living ("Staying in Tokyo", "I'm staying
    in blr for now"), not a visit: not a past stay ("we stayed in Kyoto"), not for a time ("for
    the weekend"; "for now" is a home's), not in a hotel ("staying in a hotel in Paris")."""
    if verb.tag_ == "VBD" or place.head.i != verb.i:
        return False
    return not any(
        c.dep_.startswith("obl") and _case(c) == "for" and c.lower_ not in ("now", "good") for c in verb.children
    )


def _parting(
    doc: Sentence, phrase: str, subject: Token, states: Mapping[str, State], modality: str
) -> Iterator[Found | Dropped]:
    """ "Ren and I broke up", "Elias and I got married": each ends (starts) the other as the value."""
    name, role = _PARTING[phrase]
    state = states.get(name)
    verb = subject.head
    people: list[int] = []
    we = False
    for c in verb.children:
        if c.dep_ in SUBJECT_DEPS:
            we = we or c.lower_ in FIRST_PLURAL
            for member in _members(c):
                found = doc.entity_of(member) or [s for s in [doc.speaker_entity(member)] if s is not None]
                people += [i for i in found if doc.entities[i].label == "PERSON"]
    people = list(dict.fromkeys(people))
    if we and len(people) == 1 and (other := _partner_named(doc, verb.sent, people[0])) is not None:
        people.append(other)  # "Her name is Alice and we've been together since September"
    if state is None or len(people) != 2:
        return
    first, second = people
    if verb.dep_.startswith("aux") and verb.head.i != verb.i:
        verb = verb.head  # "Alice and I got engaged last night": the subject hangs on "got"
    if modality == ASSERTED and any(c.dep_.startswith("aux") and c.tag_ == "VBG" for c in verb.children):
        modality = PLANNED  # "Karim and I are getting married in August"
    at, until = _dates(doc, verb, future=modality == PLANNED)
    for became in (c for c in verb.children if c.dep_ == "xcomp" and at is None and until is None):
        at, until = _dates(doc, became, future=modality == PLANNED)  # "got married in May": on "married"
    for source, target in ((first, second), (second, first)):
        if modality in (ASSERTED, PLANNED):
            yield Found(source, state, target, role, modality, phrase, at, until, False)
        else:
            yield Dropped(source, target)


def _value(entity: ExtractedEntity, state: State) -> bool:
    """Whether an entity may be a value of ``state``: its label is one of the state's, and a
    concept is a proper name ("Vestas"), not a common noun ("the office", "home")."""
    if entity.label not in state.values:
        return False
    return entity.label != CONCEPT or entity.text[:1].isupper()


def _employer(entity: ExtractedEntity, state: State, phrase: str) -> bool:
    """Whether a name the NER calls a person is an employer after all: the place of a job ("a
    job with Cais Arquitetos", "started at Maíz Azul"), not someone worked with or for."""
    if entity.label != "PERSON" or entity.pronoun or state.name != "works_at":
        return False
    words = phrase.split()
    return bool(set(words) & _JOB_NOUNS) or (words[-1] == "at" and words[0] != "be")


def _lowercase_place(entity: ExtractedEntity, state: State, token: Token) -> bool:
    """Whether a lower-case word is a place's name typed in a hurry ("settled in wroclaw", "staying
    in blr"): one word the pipeline has no vector for (not a common word: "moved to town"), with
    no article."""
    if state.name != "lives_in" or entity.label != CONCEPT or " " in entity.text or not token.text.islower():
        return False
    return token.is_oov and not any(c.dep_ == "det" for c in token.children)


def _role(role: str, change: str | None, cased: str) -> str:
    if cased == "instead of":
        return END  # "works at Bispebjerg instead of Rigshospitalet"
    if change == END:
        return END  # "I don't live in Paris anymore"
    if role == HOLD and change == PAST:
        return PAST  # "I lived in Berlin", "I used to live in Madrid"
    return role


def _phrases(doc: Sentence, verb: Token, holding: frozenset[str] = frozenset()) -> Iterator[tuple[str, Token, str]]:
    """``(phrase, argument, case)`` for each argument of ``verb`` that may be a state's value:
    "live in" + Lyon, "join" + Acme, "start job at" + Novo, "be married to" + Sara. ``holding``:
    the phrases that hold a value, which an argument of the verb's object may also take ("teach
    maths at Ottobrunn")."""
    lemma = doc.verb_lemma(verb) if verb.pos_ in ("VERB", "AUX") else (verb.lemma_.lower() or verb.lower_)
    if (lemma == "go" and verb.dep_ == "xcomp" and verb.head.lemma_.lower() == "let") or (
        lemma == "let" and any(c.dep_ == "xcomp" and c.lemma_.lower() == "go" for c in verb.children)
    ):
        lemma = "let go"  # "I got let go from Vantage", "I was let go from Vantage"
    progressive = verb.tag_ == "VBG" and any(c.dep_ == "aux" and c.lemma_.lower() == "be" for c in verb.children)
    if lemma == "see" and progressive and any(c.dep_ in ("obj", "dobj") and c.lemma_.lower() in _SOMEONE
                                              for c in verb.children):  # fmt: skip
        lemma = "date"  # "I've been seeing someone new" (not "I'm seeing Dr Patel about my knee")
    particles = [
        c.lower_
        for c in verb.children
        if c.dep_ in ("compound:prt", "prt") or (c.dep_ == "advmod" and c.lower_ in _PARTICLES)
    ]
    head = " ".join([lemma, *particles])
    copula = next((c for c in verb.children if c.dep_ == "cop"), None)
    passive = any(c.dep_ in ("aux:pass", "auxpass") for c in verb.children)
    auxiliary = copula or next((c for c in verb.children if c.dep_ in ("aux:pass", "auxpass")), None)
    coupled = f"{_aux_lemma(auxiliary)} {head}" if auxiliary is not None else head
    if auxiliary is not None and _aux_lemma(auxiliary) == "get" and f"get {verb.lower_}" in _PARTING:
        coupled = f"get {verb.lower_}"  # "Alice and I got engaged" (the lemma of "engaged" is "engage")
    became = next((c for c in verb.children if c.dep_ == "xcomp" and c.tag_ in ("VBN", "JJ")), None)
    if auxiliary is None and lemma == "get" and became is not None:
        coupled = f"get {became.lower_}"  # "Jess and I got married last week": "married" hangs on "got"
    if head in _PARTING or coupled in _PARTING:
        # The parse may hang the subject on the auxiliary: "Alice and I got engaged".
        governing = [*verb.children, *(auxiliary.children if auxiliary is not None else ())]
        subjects = [c for c in governing if c.dep_ in SUBJECT_DEPS]
        members = [m for s in subjects for m in _members(s)]
        if len(members) > 1 or any(s.lower_ in FIRST_PLURAL for s in subjects):
            yield (coupled if coupled in _PARTING else head), subjects[0], ""
    if copula is not None and verb.i in doc.token_entity and (case := _case(verb)):
        yield f"be {case}", verb, case  # "We've been in Tallinn since the spring": the place is the head
    for child in verb.children:
        if child.dep_ == "advmod" and child.lower_ in ("there", "here"):
            place = _place_before(doc, verb)  # "the plan is to move there in March": the place named before
            if place is not None:
                for case in ("to", "in", "at"):
                    yield f"{head} {case}", place, case
        if child.dep_ in ("obj", "dobj"):
            yield head, child, ""
            noun = child.lemma_.lower()
            kind = "job" if noun in _JOB_NOUNS else "course" if noun in _COURSE_NOUNS else None
            for mod in child.children:
                if kind and mod.dep_ == "nmod" and (case := _case(mod)):
                    yield f"{head} {kind} {case}", mod, case  # "started a new job at Novo", "an MBA at Alliance"
                elif mod.dep_ == "nmod" and (case := _case(mod)) and f"{head} {case}" in holding:
                    yield f"{head} {case}", mod, case  # "I teach maths at Ottobrunn" (not "moved my desk to Oslo")
                if mod.dep_ == "acl" and mod.lemma_.lower() in _NAMING:
                    for named in mod.children:
                        if named.dep_ in ("xcomp", "obj", "obl", "dobj", "oprd"):
                            yield head, named, ""  # "dating a guy called Julien"
        elif child.dep_.startswith("obl") or child.dep_ in ("nmod", "agent", "nmod:tmod"):
            case = _case(child)
            if case == "instead of":
                # The value being replaced: stated by the same phrase as the value that replaces it.
                for other in verb.children:
                    if other is not child and other.dep_.startswith("obl") and (other_case := _case(other)):
                        yield f"{head} {other_case}", child, case
                        if copula is not None:
                            yield f"{copula.lemma_.lower()} {head} {other_case}", child, case
                continue
            if not case:
                continue
            yield f"{head} {case}", child, case
            for obj in verb.children:
                if obj.dep_ not in ("obj", "dobj"):
                    continue
                noun = obj.lemma_.lower()
                kind = "job" if noun in _JOB_NOUNS else "course" if noun in _COURSE_NOUNS else None
                # "got a job at Spotify", "gave notice at Accenture": the parse hangs the
                # object's preposition on the verb.
                yield f"{head} {noun} {case}", child, case
                if kind and kind != noun:
                    yield f"{head} {kind} {case}", child, case
            for mod in child.children:
                # "works as a nurse at Karolinska", "moving from Copenhagen to Zurich": the
                # parse hangs the value on the argument before it.
                # "live in a condo in St. Paul": a common noun's place is the value.
                if mod.dep_ == "nmod" and (mod_case := _case(mod)) and (mod_case != case or child.pos_ == "NOUN"):
                    yield f"{head} {mod_case}", mod, mod_case
            if passive:
                yield f"be {verb.lower_} {case}", child, case
                if particles:
                    yield f"be {verb.lower_} {' '.join(particles)} {case}", child, case  # "be taken on at"
            if copula is not None:
                cop = copula.lemma_.lower()
                yield f"{cop} {head} {case}", child, case  # "be married to", "get married to", "be student at"
                common = verb.i not in doc.token_entity or verb.text[:1].islower()
                if (verb.pos_ == "NOUN" and common) or verb.pos_ == "ADV":
                    # "I'm a nurse at Rigshospitalet", "I'm a product designer at Quarry Health",
                    # "I'm no longer at Copperleaf" ("longer" heads the clause)
                    yield f"{cop} {case}", child, case


def _aux_lemma(auxiliary: Token) -> str:
    return "get" if auxiliary.lower_ in _GET else auxiliary.lemma_.lower()


def _members(subject: Token) -> list[Token]:
    """A subject and those coordinated with it: "Ren and I", "my fiancé Karim and I"."""
    out = [subject]
    for child in subject.children:
        if child.dep_ == "conj":
            out.append(child)
        elif child.dep_ == "appos":
            out += [child, *(g for g in child.children if g.dep_ == "conj")]
    return out


def _named_after(doc: Sentence, someone: Token) -> list[int]:
    """The person "someone" is named as in the next sentences: "I'm seeing someone new. Her
    name is Alice", "... She's called Alice"."""
    sentences = list(someone.doc.sents)
    index = next(i for i, s in enumerate(sentences) if s.start <= someone.i < s.end)
    for sent in sentences[index + 1 : index + 3]:
        for token in sent:
            found = doc.token_entity.get(token.i)
            if found is None or doc.entities[found].label != "PERSON" or doc.entities[found].pronoun:
                continue
            named = _is_named(token)
            called = token.head.lemma_.lower() in _NAMING and token.head.i != token.i
            if named or called:
                return [found]
    return []


def _is_named(token: Token) -> bool:
    """Whether ``token`` is what a "name" is: "Her name is Clara", "her name's Clara" (which the
    parse may read as a possessive)."""
    return any(c.dep_ in (*SUBJECT_DEPS, "nmod:poss") and c.lemma_.lower() == "name" for c in token.children)


def _partner_named(doc: Sentence, sent: Span, speaker: int) -> int | None:
    """Whom "we" is with in "we've been together since April": the one person the sentence names
    besides the speaker, else the one the text names before it."""
    for start, end in ((sent.start_char, sent.end_char), (0, sent.start_char)):
        people = {
            e.key: i
            for i, e in enumerate(doc.entities)
            if e.label == "PERSON" and not e.pronoun and e.key != doc.entities[speaker].key and start <= e.start < end
        }
        if people:
            return next(iter(people.values())) if len(people) == 1 else None
    return None


def _home_statements(doc: Sentence, sent: Span, states: Mapping[str, State]) -> Iterator[Found]:
    """ "Our new flat in Croix-Rousse in Lyon", "we bought a house in Lüneburg and moved in",
    "home is now a flat in Zurich": a home in a place is a place one lives in (a possessed home,
    or "home is": one holds it; one bought, rented, found or moved into: one starts to; one sold
    or left: it ends)."""
    state = states.get("lives_in")
    if state is None:
        return
    question = sent.text.rstrip().endswith("?")
    for home in sent:
        if home.lemma_.lower() not in _HOMES or home.pos_ != "NOUN":
            continue
        owner = next((c for c in home.children if c.dep_ in ("nmod:poss", "poss")), None)
        verb = home.head if home.dep_ in ("obj", "dobj", "obl", "nsubj") else None
        while verb is not None and verb.dep_ == "appos":
            verb = verb.head
        described = verb is not None and home.dep_ == "nsubj" and any(c.dep_ == "cop" for c in verb.children)
        # "home is now a flat in Zurich", "our new place is in Leeds": the place is the predicate's
        where = verb if described and verb is not None else home
        places = _places(doc, where, home if described else None)
        bought = home.dep_ in ("obj", "dobj") or (
            home.dep_ == "obl" and verb is not None and verb.lemma_.lower() in _HOME_VERBS
        )
        if not places and verb is not None and verb.pos_ == "VERB" and bought:
            # "we bought a house in Harrogate", "we closed on the house in Rabat": the parse hangs
            # the place on the verb.
            places = [
                i for c in verb.children if c.dep_.startswith("obl") and _case(c) == "in" for i in _places(doc, c, None)
            ]
        if not places:
            continue
        role = _HOME_VERBS.get(verb.lemma_.lower()) if verb is not None and verb.pos_ == "VERB" else None
        if role == END and home.dep_ not in ("obj", "dobj"):
            continue  # "we sold the house in Leeds" ends it; "I left my keys at the house in Leeds" does not
        owners = _owners(doc, owner) if owner is not None else []
        if not owners and verb is not None and role is not None:
            owners = _subjects(doc, verb)
        if (
            not owners
            and described
            and home.lemma_.lower() == "home"
            and not any(c.dep_ == "det" for c in home.children)
        ):
            owners = doc.speaker_mention(at=home)  # "Home is Lisbon now": the speaker's
        if not owners:
            continue
        modality = ASSERTED
        clause = verb if verb is not None and (verb.pos_ == "VERB" or described) else None
        if clause is not None:
            modality, _, _ = modality_of(clause, question=question)
            if modality not in (ASSERTED, PLANNED):
                continue
        for source in owners:
            for place in places[-1:]:  # the widest place named last: "in Croix-Rousse in Lyon"
                yield Found(source, state, place, role or HOLD, modality, "home in", None, None, False)


def _places(doc: Sentence, token: Token, leave_out: Token | None) -> list[int]:
    """The places (LOC, FAC) named in ``token``'s phrase, but for ``leave_out``'s, in order."""
    skip = {t.i for t in leave_out.subtree} if leave_out is not None else set()
    return [
        i
        for t in token.subtree
        if t.i not in skip and (i := doc.token_entity.get(t.i)) is not None and doc.entities[i].label in ("LOC", "FAC")
    ]


def _owners(doc: Sentence, owner: Token) -> list[int]:
    """The entities a possessive stands for: its own, or the speaker for "our"."""
    found = doc.entity_of(owner)
    if not found and owner.lower_ in FIRST_PLURAL and (speaker := doc.speaker_entity(owner)) is not None:
        found = [speaker]
    return found


def _taking_on(doc: Sentence, verb: Token, states: Mapping[str, State]) -> Iterator[Found]:
    """ "Kestrel Mobility brought me on", "Hollis & Vane hired me", "KTH admitted me": the
    object works (or studies) at the subject; "Brightloop let me go", "they laid me off": it no
    longer does. "They" is the one organisation the text names ("They took me on! Harrowgate
    Clinic offered me the role")."""
    lemma = verb.lemma_.lower()
    particles = [c.lower_ for c in verb.children if c.dep_ in ("compound:prt", "prt")]
    particles += [c.lower_ for c in verb.children if c.dep_ == "case" and c.lower_ in ("on",)]
    particles += [
        g.lower_
        for c in verb.children
        for g in c.children
        if g.dep_ == "case" and g.lower_ == "on" and g.i == verb.i + 2
    ]
    particles += [c.lemma_.lower() for c in verb.children if c.dep_ == "xcomp" and lemma == "let" and c.lemma_ == "go"]
    key = " ".join([lemma, *dict.fromkeys(particles)])
    role = END if key in _LETTING_GO else START
    name = _LETTING_GO.get(key) or _TAKING_ON.get(key) or (_TAKING_ON.get(lemma) if key != "let" else None)
    state = states.get(name or "")
    if state is None or any(c.dep_ in ("aux:pass", "auxpass") for c in verb.children):
        return
    employers: list[int] = []
    for c in verb.children:
        if c.dep_ == "nsubj":
            employers += [i for i in doc.entity_of(c) if _value(doc.entities[i], state)]
            if not employers and c.lower_ == "they":
                employers += _the_organisation(doc, state)
    people = [
        i
        for c in verb.children
        if c.dep_ in ("obj", "dobj", "iobj")
        for i in doc.entity_of(c)
        if doc.entities[i].label == "PERSON"
    ]
    modality, _, _ = modality_of(verb, question=False)
    if modality not in (ASSERTED, PLANNED):
        return
    at, _ = _dates(doc, verb, future=modality == PLANNED)
    for person in people:
        for employer in employers:
            yield Found(person, state, employer, role, modality, key, at, None, False)


def _having(doc: Sentence, verb: Token, states: Mapping[str, State]) -> Iterator[Found]:
    """ "I have a new boyfriend, Ahmed", "I have a girlfriend called Sara": the subject holds the
    value the state's noun is named as (a new one starts). Pets are :func:`_pets`' to read."""
    for noun in (c for c in verb.children if c.dep_ in ("obj", "dobj")):
        lemma = noun.lemma_.lower()
        for state in states.values():
            if lemma not in state.nouns or state.name == "has_pet":
                continue
            values = [i for i in _names_of(doc, noun) if _value(doc.entities[i], state)]
            if not values:
                continue
            modality, change, _ = modality_of(verb, question=False)
            if modality not in (ASSERTED, PLANNED):
                continue
            role = change or (START if any(c.lower_ == "new" for c in noun.children) else HOLD)  # "had": past
            for source in _subjects(doc, verb):
                for value in values:
                    yield Found(source, state, value, role, modality, f"have {lemma}", None, None, False)


def _names_of(doc: Sentence, noun: Token) -> list[int]:
    """The entities a noun is named as beside it: "a new boyfriend, Ahmed", "a kitten called Miso"."""
    named: list[Token] = []
    for c in noun.children:
        if c.dep_ in ("appos", "flat", "nmod:desc"):
            named.append(c)
        elif c.dep_ == "acl" and c.lemma_.lower() in _NAMING:
            named += [g for g in c.children if g.dep_ in ("xcomp", "obj", "oprd", "obl")]
    return [i for t in named for i in doc.entity_of(t)]


def _the_organisation(doc: Sentence, state: State) -> list[int]:
    """The one organisation (ORG) the text names, as a value of ``state``; none if it names more."""
    named = {e.key: i for i, e in enumerate(doc.entities) if e.label == "ORG" and _value(e, state)}
    return list(named.values()) if len(named) == 1 else []


_PET_STARTS = frozenset({"adopt", "get", "rescue", "bring", "take", "buy"})


def _pets(doc: Sentence, sent: Span, states: Mapping[str, State]) -> Iterator[Found]:
    """ "We adopted a kitten called Miso", "a beagle, we called him Biscuit", "we brought home a
    puppy and named her Azuki", "my shiba Kuri": a pet of the owner's (the possessive, the verb's
    subject, else a chat's speaker) is named; one adopted, got or brought home is a new one."""
    state = states.get("has_pet")
    if state is None:
        return
    said: dict[tuple[str, str], Found] = {}  # one statement a pet: "a rescue shiba puppy" is one
    for noun in sent:
        if noun.pos_ != "NOUN" or (noun.lower_ not in state.nouns and noun.lemma_.lower() not in state.nouns):
            continue
        names = _names_of(doc, noun)
        if noun.dep_ in ("compound", "nmod:desc", "appos") and noun.head.pos_ == "PROPN":
            names += doc.entity_of(noun.head)  # "my shiba Kuri": the name heads the noun
        names += _named_later(doc, sent, noun)
        names = [i for i in dict.fromkeys(names) if _value(doc.entities[i], state) and not doc.entities[i].pronoun]
        if not names:
            continue
        verb = noun.head if noun.dep_ in ("obj", "dobj", "obl", "nsubj:pass") and noun.head.pos_ == "VERB" else None
        owner = next((c for c in noun.children if c.dep_ in ("nmod:poss", "poss")), None)
        if owner is not None:
            holders = _owners(doc, owner)
        elif verb is not None:
            holders = _subjects(doc, verb)
        else:
            holders = doc.speaker_mention(at=noun) if doc.speaker else []
        modality, change, _ = modality_of(verb, question=False) if verb is not None else (ASSERTED, None, False)
        if modality not in (ASSERTED, PLANNED) or not holders:
            continue
        new = any(c.lower_ == "new" for c in noun.children)
        starts = verb is not None and verb.lemma_.lower() in _PET_STARTS
        role = START if starts or new else PAST if change == PAST else HOLD
        for holder in holders:
            for name in names:
                key = (doc.entities[holder].key, doc.entities[name].key)
                if key not in said or role == START:
                    said[key] = Found(holder, state, name, role, modality, noun.lemma_.lower(), None, None, False)
    yield from said.values()


def _named_later(doc: Sentence, sent: Span, noun: Token) -> list[int]:
    """The name a pet is given after it is first called a dog or a cat: "..., we called him
    Biscuit", "and named her Azuki", "she's called Miso", "her name is Miso" (in the same sentence
    after the noun, or the next one)."""
    sentences = list(noun.doc.sents)
    index = next(i for i, s in enumerate(sentences) if s.start <= noun.i < s.end)
    found: list[int] = []
    for later in sentences[index : index + 2]:
        for token in later:
            if token.i <= noun.i or token.lemma_.lower() not in _NAMING or token.pos_ != "VERB":
                continue
            # "called him Biscuit", "named her Azuki" (the parse may make "her" the name's possessive)
            if any(t.lower_ in ("him", "her", "it", "he", "she") for t in token.subtree if t.i != token.i):
                found += [i for c in token.children if c.dep_ in ("xcomp", "oprd", "obj", "dobj", "vocative")
                          for i in doc.entity_of(c) if not doc.entities[i].pronoun]  # fmt: skip
        for token in later:
            if token.i > noun.i and _is_named(token):
                found += doc.entity_of(token)  # "her name is Miso"
    return found


def _new_number(doc: Sentence, sent: Span, states: Mapping[str, State]) -> Iterator[Found]:
    """ "New UK number btw: +44 7700 900461", "Austrian number now: +43 660 555 2190": a chat's
    number with no owner named is the speaker's. A number someone else owns ("the plumber's
    number", "the number of the clinic") or one with no word saying it is a phone's or a new one
    ("the number is 42") is not."""
    state = states.get("phone_number")
    if state is None or not doc.speaker:
        return
    for noun in sent:
        if noun.lemma_.lower() != "number" or noun.pos_ not in ("NOUN", "PROPN"):
            continue
        if any(c.dep_ in ("nmod:poss", "poss", "nmod", "det") for c in noun.children):
            continue  # an owner's ("my" is read as a possessive), or "the"/"a" number of something
        words = {c.lower_ for c in noun.children if c.dep_ in ("amod", "compound")}
        if not words & {"new", "phone", "mobile", "cell"} and not any(
            c.dep_ in ("amod", "compound") and c.text[:1].isupper() for c in noun.children
        ):
            continue  # "New", "UK", "Austrian", "phone": a phone number of one's own
        value = next(
            (i for i, e in enumerate(doc.entities)
             if e.label == "PHONE" and noun.idx < e.start < sent.end_char),
            None,
        )  # fmt: skip
        if value is None:
            continue
        for source in doc.speaker_mention(at=noun):
            yield Found(source, state, value, HOLD, ASSERTED, "number", None, None, False)
        return


def _first_day(doc: Sentence, sent: Span, states: Mapping[str, State]) -> Iterator[Found]:
    """ "Today was day one at Hollis & Vane", "my first week at Kestrel": a job started there;
    "my last day at Accenture is Friday": it ends then (on the date the sentence gives, the next
    one when the sentence is in the present tense)."""
    state = states.get("works_at")
    text = sent.text.lower()
    first = any(marker in text for marker in _FIRST_DAY)
    if state is None or not (first or any(marker in text for marker in _LAST_DAY)):
        return
    speaker = next((found for t in sent if (found := doc.speaker_entity(t)) is not None), None)
    if speaker is None and doc.speaker:
        # "..., but first day at Okra Logistics tomorrow!": a chat's day with no owner is the speaker's
        days = [t for t in sent if t.lower_ in ("day", "week", "shift", "one") and t.dep_ in _FRAGMENT]
        if days and not any(c.dep_ in ("nmod:poss", "poss") for t in days for c in t.children):
            speaker = next(iter(doc.speaker_mention(at=days[0])), None)
    if speaker is None:
        return
    at = None
    if not first:
        ahead = sent.root.tag_ in ("VBZ", "VBP") or any(c.tag_ in ("VBZ", "VBP") for c in sent.root.children)
        for entity in doc.entities:
            inside = sent.start_char <= entity.start < sent.end_char
            if entity.label == DATE and inside and entity.text.lower() not in _LAST_DAY:
                value = normalize_date(entity.text, doc.observed_at, future=ahead)
                at = _as_time(value.start) if value is not None else None
                break
    for token in sent:
        index = doc.token_entity.get(token.head.i) if token.lower_ == "at" and token.dep_ == "case" else None
        if index is not None and _value(doc.entities[index], state):
            if first:
                yield Found(speaker, state, index, START, ASSERTED, "first day at", None, None, False)
            else:
                yield Found(speaker, state, index, END, ASSERTED, "last day at", at, None, False)


def _place_before(doc: Sentence, token: Token) -> Token | None:
    """The last place or organisation named before ``token`` in the text: what "there" stands for."""
    for before in reversed(token.doc[: token.i]):
        index = doc.token_entity.get(before.i)
        if index is not None and doc.entities[index].label in ("LOC", "ORG", "FAC"):
            return before
    return None


def _case(token: Token) -> str:
    words = []
    for child in token.children:
        if child.dep_ in ("case", "mark") and child.i < token.i:
            words.append(child.lower_)
            words += [g.lower_ for g in child.children if g.dep_ == "fixed"]
    return " ".join(words)


def _holders(doc: Sentence, token: Token) -> list[int]:
    """The entities a subject (or a controlling object) stands for; "we" and "me" are the speaker."""
    found = [i for i in doc.entity_of(token) if doc.entities[i].label not in _NO_SUBJECT_LABELS]
    if not found and token.lower_ in FIRST_PLURAL and (speaker := doc.speaker_entity(token)) is not None:
        found = [speaker]
    return found


def _subjects(doc: Sentence, verb: Token) -> list[int]:
    """The entities holding the state: the verb's subject, or its governing clause's ("I accepted
    an offer to move", "Alice wants to visit Paris"); "we" is the speaker."""
    previous = verb
    for clause in governors(verb):
        controller = next((c for c in clause.children if c.dep_ in ("obj", "dobj", "iobj")), None)
        if previous.dep_ == "xcomp" and clause.i != verb.i and controller is not None:
            return _holders(doc, controller)  # "Northwind is letting me stay in Vancouver": "me" stays
        previous = clause
        for child in clause.children:
            if child.dep_ in SUBJECT_DEPS:
                if child.lemma_.lower() in _HOMES:
                    return []  # "Home is now a flat in Zurich": the home lives nowhere (see _home_statements)
                return _holders(doc, child)
    if verb.tag_ in ("VBG", "VBN") and verb.dep_ in ("csubj", "ROOT", "advcl", "parataxis") and doc.speaker:
        # "Leaving Grünwerk after six years was weird", "Still enrolled at KTH": the speaker's.
        first = verb.doc[verb.sent.start]
        speaker = doc.speaker_entity(first) if first.lower_ in FIRST_PERSON | FIRST_PLURAL else None
        return [speaker] if speaker is not None else doc.speaker_mention(at=verb)
    root = verb
    while root.dep_ == "conj" and root.head.i != root.i:
        root = root.head
    opening = all(t.pos_ in ("ADV", "INTJ", "PUNCT", "CCONJ") for t in verb.doc[verb.sent.start : root.i])
    if root.tag_ == "VBD" and root.dep_ == "ROOT" and opening and doc.speaker:
        # A chat drops its "I": "Found a room in Bath and moved in", "Just started at Novo".
        return doc.speaker_mention(at=root)
    return []


def _dates(doc: Sentence, verb: Token, *, future: bool) -> tuple[datetime | None, datetime | None]:
    """``(at, until)``: the times the dates attached to the verb give (see the module docstring)."""
    at = until = None
    for child in verb.children:
        index = doc.token_entity.get(child.i)
        if index is None or doc.entities[index].label != DATE:
            continue
        entity = doc.entities[index]
        value = normalize_date(entity.text, doc.observed_at, future=future)
        if value is None:
            continue
        case = _case(child)
        if case in _UNTIL_CASES:
            until = _as_time(end_of(value))
        else:
            at = _as_time(value.start)
    return at, until


def _as_time(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _possessive_statements(
    doc: Sentence, owner: Token, states: Mapping[str, State], *, question: bool
) -> Iterator[Found | Dropped]:
    """ "my wife Hana", "Hana is my wife", "my new number is +45 ...", "my employer is Novo"."""
    noun = owner.head
    if question or not (doc.entity_of(owner) or owner.lower_ in FIRST_PLURAL):
        return
    found: list[int] | None = None

    def owners_() -> list[int]:  # "our" makes a mention of the speaker: only once a value is found
        nonlocal found
        found = _owners(doc, owner) if found is None else found
        return found

    if noun.i in doc.token_entity and doc.entities[doc.token_entity[noun.i]].label != CONCEPT:
        # "My boyfriend Davide and I": the possessor hangs on the name, the noun naming the state on it.
        for desc in noun.children:
            for state in states.values():
                if desc.dep_ in ("compound", "nmod:desc", "appos") and desc.lemma_.lower() in state.nouns:
                    value = doc.token_entity[noun.i]
                    if _value(doc.entities[value], state):
                        yield from (Found(o, state, value, HOLD, ASSERTED, desc.lemma_.lower(), None, None, False)
                                    for o in owners_())  # fmt: skip
        return
    for state in states.values():
        if noun.lemma_.lower() not in state.nouns and noun.lower_ not in state.nouns:
            continue
        values: list[int] = []
        for child in noun.children:
            if child.dep_ in ("appos", "flat", "compound", "nmod:desc") and child.i != owner.i:
                values += doc.entity_of(child)
        if noun.dep_ in ("nsubj", "nsubj:pass") and noun.head.i in doc.token_entity:
            values.append(doc.token_entity[noun.head.i])  # "my new number is +45 ...": the copula's head
        if any(c.dep_ == "cop" for c in noun.children):
            values += [e for c in noun.children if c.dep_ == "nsubj" for e in doc.entity_of(c)]  # "Hana is my wife"
        if noun.dep_ in ("compound", "nmod:desc") and noun.head.i in doc.token_entity:
            values.append(doc.token_entity[noun.head.i])  # "my wife Hana" (UD: Hana is the head)
        fits = any(doc.entities[v].label in state.values for v in values)  # "My husband Tom is a teacher"
        if not fits and noun.i + 1 < len(noun.doc) and noun.doc[noun.i + 1].pos_ == "PROPN":
            following = doc.token_entity.get(noun.i + 1)  # the surface order holds where the parse does not
            values += [following] if following is not None else []
        if noun.lemma_.lower() in ("day", "week") and any(c.lower_ == "first" for c in noun.children):
            # "my first day at Pixelmoor": the start of a job there.
            for mod in noun.children:
                if mod.dep_ == "nmod" and _case(mod) == "at":
                    for value in doc.entity_of(mod):
                        if _value(doc.entities[value], states["works_at"]) if "works_at" in states else False:
                            yield from (Found(o, states["works_at"], value, START, ASSERTED, "first day at", None, None, False)
                                        for o in owners_())  # fmt: skip
            return
        modality, change, _ = modality_of(noun.head if noun.dep_ == "nsubj" else noun, question=False)
        for value in dict.fromkeys(values):
            if doc.entities[value].label not in state.values:
                continue
            for source in owners_():
                if modality not in (ASSERTED, PLANNED):
                    yield Dropped(source, value)
                else:
                    role = END if change == END else PAST if "former" in {c.lower_ for c in noun.children} else HOLD
                    yield Found(source, state, value, role, modality, noun.lemma_.lower(), None, None, False)


def _cancellations(doc: Sentence, sent: Span, states: Mapping[str, State]) -> list[Found]:
    """ "The Berlin move fell through", "the Lisbon plan is off": a plan of the speaker's, for the
    value the sentence names, is cancelled ("move" speaks of where one lives, "job" or "offer"
    of where one works)."""
    lemmas = [t.lemma_.lower() for t in sent]
    kinds = [_CHANGE_NOUNS[w] for w in lemmas if w in _CHANGE_NOUNS] + ["lives_in" if "relocate" in lemmas else None]
    if not any(w in _CHANGE_NOUNS for w in lemmas) and "relocate" not in lemmas:
        return []
    named = dict.fromkeys(i for t in sent if (i := doc.token_entity.get(t.i)) is not None)
    name = next((k for k in kinds if k), None)
    if name is None:  # "the Berlin thing collapsed": the value's label says which state
        labels = {doc.entities[i].label for i in named}
        name = "lives_in" if labels & {"LOC", "FAC"} else "works_at" if "ORG" in labels else None
    state = states.get(name or "")
    if state is None:
        return []
    values = [value for value in named if doc.entities[value].label in state.values]
    if not values:
        return []
    speaker = next((found for t in sent if (found := doc.speaker_entity(t)) is not None), None)
    if speaker is None:
        return []
    return [Found(speaker, state, value, CANCEL, ASSERTED, "cancel", None, None, False) for value in values]
