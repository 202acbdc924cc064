"""Entities and relations from text with a spaCy pipeline (no LLM).

Entities are the pipeline's named entities (statistical NER plus the rule entities of
:mod:`memory_graph.rules`), salient noun phrases labelled ``CONCEPT``, when a ``speaker`` is
given, the speaker behind first-person pronouns, the person behind "he" or "she" and the
organisation or place behind "it" where the text (or the turn before it) plainly names one.
Relations come from the clauses a sentence states (:mod:`memory_graph.openie`: verbs,
copulas, appositions, noun modifiers) and from possessives, between the entities of their
subject and arguments, each with its words as written and the spans of its ends; states
(:mod:`memory_graph.statements`) take the place of the raw relations between the same two
entities. Named entities in one sentence with no stated relation between them get a weak
``mentioned with`` edge (:data:`~memory_graph.vocabulary.COOCCURRENCE`).

The clauses are read off a Universal Dependencies parse (the shipped pipeline is trained on UD
English-EWT); :func:`load_pipeline` refuses a parser with another label scheme.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memory_graph.errors import ExtractionError
from memory_graph.facts import ASSERTED, PLANNED, STATES, State
from memory_graph.markup import blocks
from memory_graph.openie import Clause, Phrase, case_of, case_words, clause_head, clauses, modality_of
from memory_graph.records import ExtractedEntity, ExtractedRelation, Extraction
from memory_graph.statements import Found, read_statements
from memory_graph.temporal import normalize_date
from memory_graph.vocabulary import (
    CONCEPT,
    COOCCURRENCE,
    FIRST_PERSON,
    FIRST_PLURAL,
    NAMED_LABELS,
    SKIP_LABELS,
    THIRD_PERSON,
    normalize_key,
    normalize_label,
)

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc, Span, Token

#: Stored on every relation row, so re-ingest can find edges made by an older extractor.
# v2: relations through "he"/"she"; v3: states; v4: clauses (memory_graph.openie), surface forms
EXTRACTOR_VERSION = "memory_graph.relations.v4"

# The capitalised last word of an organisation's name ("Northwind Labs", "Kent County Cricket
# Club", "Catasys, Inc."), and the first word of "University of ...": the NER calls some such
# names places, and a place's name does not end so.
_ORG_LAST = """
    inc incorporated corp corporation co company ltd limited llc plc gmbh holdings partners ventures
    enterprises industries labs lab laboratories technologies systems software solutions therapeutics
    pharmaceuticals biosciences health media studios pictures records press publishing airlines airways
    motors bank insurance consulting network university college academy institute foundation association
    society agency council committee commission ministry department federation club party orchestra fc
"""
ORG_LAST_WORDS = frozenset(_ORG_LAST.split())
# Legal forms of companies ("Nordbyg ApS", "Telefónica S.A.", "Siemens AG"): a name ending so is
# an organisation's whatever the NER called it (a person's or a place's name never ends so).
_LEGAL_FORMS = (
    "inc ltd llc plc gmbh ag aps a/s as ab oy oyj asa sa s.a s.l sl spa s.p.a srl bv b.v nv n.v sas sarl kk pty lp llp"
)
LEGAL_FORMS = frozenset(_LEGAL_FORMS.split())
# and nouns that end the names of institutions the NER takes for places ("Bispebjerg Hospital").
_ORG_LAST_INSTITUTIONS = "hospital clinic school railways airline police"
ORG_LAST_WORDS = ORG_LAST_WORDS | LEGAL_FORMS | frozenset(_ORG_LAST_INSTITUTIONS.split())
ORG_FIRST_WORDS = frozenset({"university", "bank", "ministry", "department", "institute", "college", "academy"})

ANTECEDENT_SENTENCES = 3  # sentences looked back for the person a pronoun stands for
GUESSED = 0.75  # a relation through a pronoun's antecedent: its pattern's confidence times this
SUBJECTS = {"nsubj", "nsubj:pass", "nsubjpass", "csubj"}
# Heads of noun phrases that carry no meaning on their own.
WEAK_NOUNS = {
    "thing", "things", "lot", "lots", "way", "time", "times", "one", "ones", "stuff", "bit", "kind",
    "sort", "part", "something", "anything", "everything", "nothing", "someone", "anyone",
    "everyone", "people", "day", "week", "month", "year", "today", "yesterday", "tomorrow", "%",
    # words of conversation, not things talked about: "Big news!", "Congratulations!", "any plans?"
    "news", "congratulations", "congrats", "thanks", "plan", "hour", "minute", "moment", "while",
}  # fmt: skip
NP_MODIFIERS = {"compound", "amod", "flat", "nummod", "compound:prt", "nmod:npmod", "npadvmod"}

# A common noun that describes a name: "the CEO Bob", "my sister Carol" (nmod:desc since UD 2.15).
DESCRIPTORS = ("compound", "appos", "nmod:desc")
# Relations not read off a clause (memory_graph.openie gives those their confidence).
CONFIDENCE = {"state": 0.9, "poss": 0.7, "cooccur": 0.3}
# Values, not things: never a relation's subject, and its end only as a verb's argument
# ("joined Acme in 1941", "paid $40").
VALUES = frozenset({"DATE", "TIME", "MONEY", "PERCENT", "CARDINAL", "QUANTITY", "ORDINAL"})
# Prepositions that say the relation does not hold with what follows.
CONTRASTS = frozenset({"instead of", "rather than", "unlike", "except", "except for", "without", "apart from"})
# Verbs of a state, not an event: a date says how long it held, not when something happened.
STATIVE = frozenset({"be", "have", "live", "work", "know", "own", "like", "love", "hate", "prefer", "belong",
                     "contain", "need", "want", "mean", "seem", "remain", "stay", "study", "serve"})  # fmt: skip
RECURRING = frozenset({"every", "each", "weekly", "monthly", "daily", "yearly", "annually"})


def bundled_model_path(name: str) -> Path | None:
    """The directory of a pipeline shipped in this repository's ``models/``, if there is one."""
    for root in (Path(__file__).resolve().parent / "_models", Path(__file__).resolve().parents[1] / "models"):
        if (root / name / "config.cfg").is_file():
            return root / name
    return None


def load_pipeline(name: str) -> Language:
    """Load a spaCy pipeline by package name or path; shipped pipelines in ``models/`` by name.

    Raises:
        ExtractionError: the pipeline is not installed, cannot be loaded, or lacks what
            extraction needs (named entities and a dependency parse).
    """
    import spacy

    path = bundled_model_path(name) if not Path(name).expanduser().exists() else Path(name).expanduser()
    target: str | Path = path if path is not None else name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # version notes of third-party pipelines; we check below
            nlp = spacy.load(target)
    except OSError as exc:
        raise ExtractionError(
            f"spaCy pipeline {name!r} is not installed or not a pipeline directory; "
            "set MEMORY_GRAPH_SPACY_MODEL to an installed pipeline name or a path "
            "(default: en_memory_graph, shipped in models/)"
        ) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise ExtractionError(
            f"spaCy pipeline {name!r} cannot be loaded by spaCy {spacy.about.__version__} ({exc}); "
            "install a pipeline built for this spaCy version or set MEMORY_GRAPH_SPACY_MODEL"
        ) from exc
    if nlp.lang != "en":
        raise ExtractionError(f"spaCy pipeline {name!r} is for language {nlp.lang!r}; memory_graph needs English")
    if "ner" not in nlp.pipe_names or "parser" not in nlp.pipe_names:
        raise ExtractionError(
            f"spaCy pipeline {name!r} has components {nlp.pipe_names}; extraction needs 'ner' and 'parser'"
        )
    labels = set(getattr(nlp.get_pipe("parser"), "labels", ()))
    if labels and not labels & {"obl", "nsubj:pass", "obl:tmod"}:
        raise ExtractionError(
            f"spaCy pipeline {name!r} parses with another dependency scheme than Universal Dependencies "
            "(relations are read off a UD parse); use en_memory_graph or another UD-trained pipeline"
        )
    if not any(pipe == "entity_ruler" or pipe.endswith("_rules") for pipe in nlp.pipe_names):
        from memory_graph.rules import add_entity_ruler

        add_entity_ruler(nlp)
    return nlp


class Extractor:
    """Runs the spaCy pipeline and turns its analysis into entities and relations.

    Safe to share between threads: calls into the pipeline are serialised.

    Example:
        >>> extractor = Extractor.load("en_memory_graph")  # doctest: +SKIP
        >>> extractor.extract("Alice joined Acme in Berlin.").relations  # doctest: +SKIP
    """

    version = EXTRACTOR_VERSION

    def __init__(self, nlp: Language, *, max_cooccurring: int = 6, states: Mapping[str, State] | None = None) -> None:
        self.nlp = nlp
        self.max_cooccurring = max_cooccurring
        self.states = STATES if states is None else states
        self._lock = threading.Lock()
        self._verbs = _known_verbs(nlp)

    @classmethod
    def load(cls, name: str) -> Extractor:
        return cls(load_pipeline(name))

    def extract(self, text: str, *, speaker: str | None = None, observed_at: datetime | None = None) -> Extraction:
        """Extract entities and relations from one text.

        Args:
            text: the text.
            speaker: who said it; "I", "me", "my" then stand for this person.
            observed_at: when it was said or written; relative dates ("yesterday") resolve against it.
        """
        return self.extract_many([text], speakers=[speaker], observed=[observed_at])[0]

    def extract_many(
        self,
        texts: Sequence[str],
        *,
        speakers: Sequence[str | None] | None = None,
        observed: Sequence[datetime | None] | None = None,
        batch_size: int = 64,
    ) -> list[Extraction]:
        """Extract from many texts through ``nlp.pipe`` (the batch path)."""
        speakers = list(speakers) if speakers is not None else [None] * len(texts)
        observed = list(observed) if observed is not None else [None] * len(texts)
        docs = self.parse_many(texts, batch_size=batch_size)
        return [
            self.from_doc(doc, speaker=speaker, observed_at=when)
            for doc, speaker, when in zip(docs, speakers, observed, strict=True)
        ]

    def parse_many(self, texts: Sequence[str], *, batch_size: int = 64) -> list[Doc]:
        """The pipeline's full analysis of each of ``texts``, through ``nlp.pipe``. Each text's
        blocks (:func:`memory_graph.markup.blocks`: headings, list items, paragraphs) are parsed
        apart, so no sentence runs across them, and joined into one document of the text."""
        from spacy.tokens import Doc

        pieces = [blocks(text) for text in texts]
        with self._lock:
            parsed = iter(self.nlp.pipe([p for text in pieces for p in text], batch_size=batch_size))
            docs = [[next(parsed) for _ in text] for text in pieces]
        return [part[0] if len(part) == 1 else Doc.from_docs(part, ensure_whitespace=False) for part in docs]

    def parse(self, text: str) -> Doc:
        """The pipeline's full analysis of ``text`` (as :meth:`parse_many`)."""
        return self.parse_many([text])[0]

    def tokenize(self, text: str) -> Doc:
        """``text`` tokenised by the pipeline, with its rule entities (dates, times, money …) but
        no statistical component: what linking a query needs, at a fraction of :meth:`parse`'s cost."""
        with self._lock:
            doc = self.nlp.make_doc(text)
            for name in self.nlp.pipe_names:
                if name == "entity_ruler" or name.endswith("_rules"):
                    doc = self.nlp.get_pipe(name)(doc)
        return doc

    def noun_lemma(self, token: Token) -> str:
        """The lowercase lemma ``token`` gets as a noun ("shops" → "shop"), as concept keys
        are built, from the pipeline's rule lemmatizer (else the lowercase form)."""
        lemmatizer: Any = self.nlp.get_pipe("lemmatizer") if "lemmatizer" in self.nlp.pipe_names else None
        if lemmatizer is None or getattr(lemmatizer, "mode", None) != "rule" or token.is_stop:
            return token.lower_
        pos = token.pos_
        token.pos_ = "NOUN"
        try:
            lemmas: list[str] = lemmatizer.rule_lemmatize(token) or [token.lower_]
            return lemmas[0].lower()
        finally:
            token.pos_ = pos

    def from_doc(
        self,
        doc: Doc,
        *,
        speaker: str | None = None,
        observed_at: datetime | None = None,
        antecedents: Sequence[ExtractedEntity] = (),
    ) -> Extraction:
        """Turn an analysed ``Doc`` into an :class:`Extraction`. ``antecedents`` are the entities
        named just before the text (the previous turn of a conversation): a pronoun at its start
        may stand for one ("Did you see Anjali?" - "Yes, she took me punting"). A naive
        ``observed_at`` is taken as UTC, as the manager stores it."""
        if observed_at is not None and observed_at.tzinfo is None:
            observed_at = observed_at.replace(tzinfo=UTC)
        return DocExtraction(
            doc, speaker, observed_at, self.max_cooccurring, self._verbs, antecedents, self.states
        ).run()


def _names_an_organisation(span: Span) -> bool:
    """Whether a name ends (or starts, "University of ...") with a word that makes it an organisation's."""
    if len(span) < 2:
        return False
    last, first = span[-1], span[0]
    if last.text[:1].isupper() and last.lower_.rstrip(".") in ORG_LAST_WORDS:
        return True
    return len(span) > 2 and first.text[:1].isupper() and first.lower_ in ORG_FIRST_WORDS and span[1].lower_ == "of"


def _surface(clause: Clause, case: set[int]) -> str:
    """The relation as the sentence words it for one argument: its words with that argument's
    preposition, not another's ("works at" for "at Bispebjerg", "works" for "as of January")."""
    doc = clause.relation.doc
    words = [i for i in clause.relation.positions if doc[i].dep_ not in ("case", "fixed")]
    words += sorted(case)  # after the verb group, also for a phrase before it ("As of January, ...")
    return " ".join([clause.implied, *(doc[i].text for i in words)]).strip()


def _governor(token: Token) -> Token:
    """The word a name's token depends on, past the name itself and words describing it."""
    while token.dep_ in (*DESCRIPTORS, "flat") and token.head is not token:
        token = token.head
    return token.head


def _is_subject(token: Token) -> bool:
    """Whether ``token`` is a clause's subject, or a name describing one ("my brother Marcus")."""
    return token.dep_ in SUBJECTS or (token.dep_ in (*DESCRIPTORS, "flat") and token.head.dep_ in SUBJECTS)


def _known_verbs(nlp: Language) -> frozenset[str]:
    """The verbs (base forms) of the rule lemmatizer's tables; empty for another lemmatizer."""
    lookups = getattr(nlp.get_pipe("lemmatizer"), "lookups", None) if "lemmatizer" in nlp.pipe_names else None
    if lookups is None or not lookups.has_table("lemma_index"):
        return frozenset()
    return frozenset(lookups.get_table("lemma_index").get("verb", []))


class DocExtraction:
    """One document's extraction; keeps the token → entity map the patterns need."""

    def __init__(
        self,
        doc: Doc,
        speaker: str | None,
        observed_at: datetime | None,
        max_cooccurring: int,
        verbs: frozenset[str],
        antecedents: Sequence[ExtractedEntity] = (),
        states: Mapping[str, State] = STATES,
    ) -> None:
        self.states = states
        self.doc = doc
        self.verbs = verbs
        self.speaker = speaker.strip() if speaker and speaker.strip() else None
        self.observed_at = observed_at
        self.max_cooccurring = max_cooccurring
        self.result = Extraction(extractor_version=EXTRACTOR_VERSION)
        self.token_entity: dict[int, int] = {}
        self.seen: set[tuple[int, str, int]] = set()
        self.antecedents = [e for e in antecedents if e.name != self.speaker]  # the speaker is no "she"

    def run(self) -> Extraction:
        self._named_entities()
        self._speaker_mentions()
        self._pronoun_mentions()
        self._concepts()
        self._it_mentions()
        for sent in self.doc.sents:
            self._relations(sent)
            self._state_statements(sent)
        return self.result

    @property
    def entities(self) -> list[ExtractedEntity]:
        return self.result.entities

    def verb_lemma(self, verb: Token) -> str:
        return self._verb_lemma(verb)

    def entity_of(self, token: Token) -> list[int]:
        return self._entity_of(token)

    def speaker_entity(self, token: Token) -> int | None:
        """The speaker's entity for a first-person token ("I", "we"): a mention of it already
        made anywhere in the text, else one made at ``token``; ``None`` without a speaker."""
        if self.speaker is None:
            return None
        index = self.token_entity.get(token.i)
        if (
            index is not None
            and self.result.entities[index].pronoun
            and self.result.entities[index].name == self.speaker
        ):
            return index
        if token.lower_ not in FIRST_PERSON | FIRST_PLURAL:
            return None
        if index is None:
            return self._add_entity(self.doc[token.i : token.i + 1], "PERSON", name=self.speaker, pronoun=True)
        return None

    def speaker_mention(self, at: Token | None = None) -> list[int]:
        """The speaker's entity where the text has a mention of it already ("I", "my"), else one
        made at ``at`` (the verb of a sentence whose "I" a chat left out: "Found a flat in Bath"),
        else none."""
        found = [i for i, e in enumerate(self.result.entities) if e.pronoun and e.name == self.speaker][:1]
        if found or at is None or self.speaker is None:
            return found
        own = self.token_entity.get(at.i)
        index = self._add_entity(self.doc[at.i : at.i + 1], "PERSON", name=self.speaker, pronoun=True)
        if own is None:  # a mention of the speaker, not the word's own entity
            del self.token_entity[at.i]
        else:
            self.token_entity[at.i] = own
        return [index]

    def _pair_key(self, a: int, b: int) -> frozenset[str]:
        return frozenset((self.result.entities[a].key, self.result.entities[b].key))

    def _state_statements(self, sent: Span) -> None:
        """States stated in the sentence (:mod:`memory_graph.statements`) become relations named
        by the state's label; they take the place of the raw relations between the same two
        entities in the sentence, as do the state phrases that state nothing (a question, a
        negation, a wish)."""
        found = read_statements(self, sent, self.states)
        if not found:
            return
        keys = self._pair_key
        pairs = {keys(f.source, f.target) for f in found}
        self.result.relations = [
            r
            for r in self.result.relations
            if r.state is not None or r.sent_start != sent.start_char or keys(r.source, r.target) not in pairs
        ]
        for f in found:
            if not isinstance(f, Found) or f.source == f.target:
                continue
            if self.result.entities[f.source].key == self.result.entities[f.target].key:
                continue
            key = (f.source, f"{f.state.label}:{f.role}:{f.modality}", f.target)
            if key in self.seen:
                continue
            self.seen.add(key)
            self.result.relations.append(
                ExtractedRelation(
                    source=f.source,
                    predicate=f.state.label,
                    target=f.target,
                    pattern="state",
                    confidence=CONFIDENCE["state"] * (GUESSED if self._guessed(f.source, f.target) else 1.0),
                    sentence=sent.text,
                    sent_start=sent.start_char,
                    sent_end=sent.end_char,
                    state=f.state.name,
                    role=f.role,
                    modality=f.modality,
                    valid_from=f.at,
                    valid_until=f.until,
                    correction=f.correction,
                )
            )

    def _verb_lemma(self, verb: Token) -> str:
        """The verb's lowercase lemma. A base form (Penn ``VB``, ``VBP``) is its own lemma: UD
        English-EWT's morphology gives "we need" a Number and a Person, the rule lemmatizer then
        takes it for an inflected form and strips it ("need" -> "nee", "discuss" -> "discus").
        Such a guess, no verb of its tables, gives way to the form when the form is one."""
        lemma = verb.lemma_.lower() or verb.lower_
        if verb.tag_ in ("VB", "VBP") and lemma not in self.verbs and verb.lower_ in self.verbs:
            return verb.lower_
        return lemma

    # -- entities -------------------------------------------------------------------------

    def _add_entity(
        self,
        span: Span,
        label: str,
        *,
        key: str | None = None,
        name: str | None = None,
        pronoun: bool = False,
        attributes: dict[str, str] | None = None,
    ) -> int:
        sent = span.sent
        index = len(self.result.entities)
        self.result.entities.append(
            ExtractedEntity(
                text=span.text,
                label=label,
                key=key or normalize_key(name or span.text),
                name=name or span.text,
                start=span.start_char,
                end=span.end_char,
                sent_start=sent.start_char,
                sent_end=sent.end_char,
                pronoun=pronoun,
                attributes=attributes or {},
            )
        )
        for token in span:
            self.token_entity[token.i] = index
        return index

    def _named_entities(self) -> None:
        for ent in self.doc.ents:
            label = normalize_label(ent.label_)
            if label in SKIP_LABELS or not normalize_key(ent.text):
                continue
            # Trim what the NER sometimes includes: a leading article or markup ("# Omar", "- Bob"),
            # a trailing possessive or full stop ("Acme." before a line break).
            span = ent
            while len(span) > 1 and (span[0].lower_ in ("the", "a", "an") or span[0].is_punct or span[0].is_space):
                span = span[1:]
            while len(span) > 1 and (
                span[-1].tag_ == "POS" or span[-1].text in ("'s", "’s") or span[-1].is_punct or span[-1].is_space
            ):
                span = span[:-1]
            if (label == "LOC" and _names_an_organisation(span)) or (
                label == "PERSON" and len(span) > 1 and span[-1].lower_.rstrip(".") in LEGAL_FORMS
            ):
                label = "ORG"
            if (
                label == "DATE"
                and (value := normalize_date(span.text, self.observed_at, future=_ahead(span))) is not None
            ):
                # "last May" said in June 2025 and "May 2025" are one entity: 2025-05.
                attributes = {"date": value.key, "granularity": value.granularity}
                self._add_entity(span, label, key=value.key, name=value.key, attributes=attributes)
            else:
                self._add_entity(span, label)

    def _speaker_mentions(self) -> None:
        if self.speaker is None:
            return
        for token in self.doc:
            if token.lower_ in FIRST_PERSON and token.i not in self.token_entity and token.pos_ in ("PRON", "DET", ""):
                self._add_entity(self.doc[token.i : token.i + 1], "PERSON", name=self.speaker, pronoun=True)

    def _pronoun_mentions(self) -> None:
        """ "He" or "she" where the person it stands for is plain: "Scott Derrickson is a director.
        He lives in Los Angeles" -> "He" is Scott Derrickson, so the relation is his. Looking
        back from the pronoun, the nearest of the last :data:`ANTECEDENT_SENTENCES` sentences
        that names a person decides (before the first sentence, the ``antecedents`` given: the
        turn before in a conversation). The pronoun stands for the one person it names or, where
        it names several, for its subject when the pronoun is a subject too ("Marcus proposed to
        Leah. He …"). Otherwise the pronoun is left alone: no gender is known, so "Leah" and
        "Marcus" are both candidates for "she". The speaker is never the antecedent, nor the
        pronoun's own verb's other argument ("Tom hugged her")."""
        sentences = self._sentences()
        where = {token.i: n for n, sent in enumerate(sentences) for token in sent}
        people = {e.key: e for e in self.antecedents if e.label == "PERSON"}
        for token in self.doc:
            if (
                token.lower_ not in THIRD_PERSON
                or token.i in self.token_entity
                or token.pos_ not in ("PRON", "DET", "")
            ):
                continue
            here = where[token.i]
            for n in range(here, max(here - ANTECEDENT_SENTENCES, -2), -1):
                found, subjects = self._people_before(sentences[n], token) if n >= 0 else (people, set())
                if found:
                    break
            else:
                continue
            if len(found) == 1:
                antecedent = next(iter(found.values()))
            elif len(subjects) == 1 and _is_subject(token):
                antecedent = found[next(iter(subjects))]
            else:
                continue
            span = self.doc[token.i : token.i + 1]
            self._add_entity(span, "PERSON", key=antecedent.key, name=antecedent.name, pronoun=True)

    def _sentences(self) -> list[Span]:
        """The document's sentences that hold words (not the blank lines between blocks)."""
        return [sent for sent in self.doc.sents if not all(token.is_space for token in sent)]

    def _it_mentions(self) -> None:
        """ "It" or "they" as a subject, right after a sentence whose subject is the name of an
        organisation, place or thing: "Vestas opened a factory in Aarhus. It employs 300
        people." - "It" is Vestas. Nothing else is guessed ("I bought a car. It is red." names
        no antecedent for "it" as subject of the sentence before)."""
        sentences = self._sentences()
        for n in range(1, len(sentences)):
            antecedent = self._named_subject(sentences[n - 1])
            if antecedent is None:
                continue
            for token in sentences[n]:
                if token.i in self.token_entity or token.dep_ not in SUBJECTS or token.pos_ != "PRON":
                    continue
                plural = antecedent.label == "ORG"  # "Vestas ... They ..."
                if token.lower_ == "it" or (token.lower_ == "they" and plural):
                    span = self.doc[token.i : token.i + 1]
                    self._add_entity(span, antecedent.label, key=antecedent.key, name=antecedent.name, pronoun=True)
                break  # only the first subject of the sentence

    def _named_subject(self, sent: Span) -> ExtractedEntity | None:
        subject = next((c for c in sent.root.children if c.dep_ in SUBJECTS), None)
        if subject is None or subject.i not in self.token_entity:
            return None
        entity = self.result.entities[self.token_entity[subject.i]]
        if entity.pronoun or entity.label in VALUES or entity.label == "PERSON":
            return None
        if entity.label == CONCEPT and subject.pos_ != "PROPN":
            return None  # "The car broke down. It ..." is plain too, but a concept is no name to link
        return entity

    def _people_before(self, sent: Span, token: Token) -> tuple[dict[str, ExtractedEntity], set[str]]:
        """The people ``sent`` names before ``token`` (not the speaker, nor an argument of the
        verb ``token`` depends on), by key, and the keys of those that are a subject."""
        found: dict[str, ExtractedEntity] = {}
        subjects: set[str] = set()
        for named in sent:
            if named.i >= token.i:
                break
            index = self.token_entity.get(named.i)
            entity = self.result.entities[index] if index is not None else None
            if entity is None or entity.label != "PERSON" or entity.name == self.speaker:
                continue
            if _governor(named) == token.head and not token.lower_.endswith("self"):
                continue  # "Tom hugged her": her is not Tom (only "herself" would be)
            found.setdefault(entity.key, entity)
            if _is_subject(named):
                subjects.add(entity.key)
        return found, subjects

    def _concepts(self) -> None:
        for token in self.doc:
            if token.i in self.token_entity or token.pos_ not in ("NOUN", "PROPN"):
                continue
            if token.dep_ in ("compound", "flat", "fixed") and token.head.pos_ in ("NOUN", "PROPN"):
                continue  # part of a larger phrase, handled at its head
            if (
                token.lower_ in WEAK_NOUNS
                or token.lemma_.lower() in WEAK_NOUNS
                or token.is_stop
                or (not token.is_alpha and not token.text.isalnum())
            ):
                continue
            if token.like_num or token.like_url or token.like_email or len(token.text) < 2:
                continue
            left = token.i
            for child in sorted(token.lefts, key=lambda t: -t.i):
                if child.i == left - 1 and child.dep_ in NP_MODIFIERS and child.i not in self.token_entity:
                    if child.is_stop or not (child.is_alpha or child.text.isalnum()):
                        break
                    left = child.i
                else:
                    break
            right = token.i + 1
            for child in token.rights:
                if child.i == right and child.dep_ in ("flat", "compound") and child.i not in self.token_entity:
                    right = child.i + 1
            span = self.doc[left:right]
            if all(t.pos_ == "PROPN" and t.is_title for t in span) and _names_an_organisation(span):
                self._add_entity(span, "ORG")  # a name the NER missed: "Mirabel Therapeutics"
                continue
            # Key on the lemma ("coffee shops" and "coffee shop" are one concept).
            lemma = " ".join([t.lower_ for t in span[:-1]] + [span[-1].lemma_.lower() or span[-1].lower_])
            self._add_entity(span, CONCEPT, key=normalize_key(lemma))

    # -- relations ------------------------------------------------------------------------

    def _entity_of(self, token: Token) -> list[int]:
        """Entities a dependency argument stands for: its own, or those of its conjuncts."""
        found = []
        for candidate in [token, *[c for c in token.children if c.dep_ == "conj"]]:
            index = self.token_entity.get(candidate.i)
            if index is None:
                # "the city of Paris", "the CEO Bob": take a flat/appos/compound name under it.
                for child in candidate.children:
                    if child.dep_ in ("flat", "appos", "compound", "nmod") and child.i in self.token_entity:
                        index = self.token_entity[child.i]
                        break
            if index is not None and index not in found:
                found.append(index)
        return found

    def _add_relation(
        self,
        sources: list[int],
        predicate: str,
        targets: list[int],
        pattern: str,
        sent: Span,
        *,
        confidence: float | None = None,
        surface: str = "",
        spans: tuple[Phrase | None, Phrase | None] = (None, None),
    ) -> None:
        predicate = " ".join(predicate.lower().split())
        if not predicate:
            return
        base = CONFIDENCE[pattern] if confidence is None else confidence
        source_span = (spans[0].start_char, spans[0].end_char) if spans[0] is not None and spans[0].positions else None
        target_span = (spans[1].start_char, spans[1].end_char) if spans[1] is not None and spans[1].positions else None
        for source in sources:
            for target in targets:
                if source == target or self.result.entities[source].key == self.result.entities[target].key:
                    continue
                if (source, predicate, target) in self.seen:
                    continue
                self.seen.add((source, predicate, target))
                self.result.relations.append(
                    ExtractedRelation(
                        source=source,
                        predicate=predicate,
                        target=target,
                        pattern=pattern,
                        confidence=base * (GUESSED if self._guessed(source, target) else 1.0),
                        sentence=sent.text,
                        sent_start=sent.start_char,
                        sent_end=sent.end_char,
                        surface=" ".join(surface.split()) or predicate,
                        source_span=source_span,
                        target_span=target_span,
                    )
                )

    def _guessed(self, *indices: int) -> bool:
        """Whether an entity of ``indices`` is a third-person pronoun's antecedent: a guess."""
        return any((e := self.result.entities[i]).pronoun and e.text.lower() not in FIRST_PERSON for i in indices)

    def _relations(self, sent: Span) -> None:
        """Relations from the clauses the sentence states (:mod:`memory_graph.openie`), between
        the entities their subject and arguments stand for; a question, a negation, a supposition
        or a plan states none. Named entities with no relation between them co-occur."""
        linked: set[frozenset[int]] = set()
        before = len(self.result.relations)
        for clause in clauses(sent):
            if clause.stated:  # a plan or an end is a state statement's business (memory_graph.statements)
                self._clause_relations(clause, sent)
            else:
                # What the sentence asks, denies, plans or supposes states nothing, but it is about
                # its subject and arguments all the same: they are mentioned together (a signal
                # for the search that no view of the facts shows).
                for source in self._entity_of(clause.subject.root):
                    for argument in clause.arguments:
                        for target in self._entity_of(argument.root):
                            pair = frozenset((source, target))
                            if len(pair) == 2 and pair not in linked:
                                linked.add(pair)
                                self._add_relation([source], COOCCURRENCE, [target], "cooccur", sent)
        question = sent.text.rstrip().endswith("?")
        for token in sent:
            if (
                token.dep_ in ("nmod:poss", "poss")
                and modality_of(clause_head(token), question=question)[0] == ASSERTED
            ):
                self._possessive(token, sent)
        for rel in self.result.relations[before:]:
            linked.add(frozenset((rel.source, rel.target)))
        self._cooccurrence(sent, linked)

    def _clause_relations(self, clause: Clause, sent: Span) -> None:
        if clause.kind == "poss":
            return  # _possessive names the relation after the possessed noun ("sister")
        sources = [s for s in self._entity_of(clause.subject.root) if self.result.entities[s].label not in VALUES]
        if clause.kind == "nmod":
            sources = [s for s in sources if self._named(s)]  # only names are placed: "Acme in Berlin"
        if not sources:
            return
        pattern = "passive" if clause.passive else clause.kind
        base = self._base_predicate(clause)
        for argument in clause.arguments:
            root = argument.root
            if root.dep_ == "ccomp":
                continue  # "says that ...": a proposition, read as its own clause
            case = case_words(root)
            preposition = " ".join(t.lower_ for t in case)
            if preposition in CONTRASTS:
                continue  # "works at Bispebjerg instead of Rigshospitalet": not at Rigshospitalet
            if clause.kind == "nmod" and preposition in ("", "of"):
                continue  # "the capital of France": a part, not a statement
            predicate = f"{base} {preposition}".strip()
            if not predicate:
                continue
            targets = [t for t in self._entity_of(root) if self._may_end(t, clause, root)]
            if clause.kind == "nmod":
                targets = [t for t in targets if self._named(t)]
            own = {t.i for t in case}
            surface = _surface(clause, own)
            target = Phrase(argument.doc, tuple(i for i in argument.positions if i not in own), argument.head)
            self._add_relation(
                sources,
                predicate,
                targets,
                pattern,
                sent,
                confidence=clause.confidence,
                surface=surface,
                spans=(clause.subject, target),
            )
            if clause.kind in ("verb", "copula", "appos"):
                self._modifier_relations(sources, predicate, root, clause, target, surface, pattern, sent)

    def _modifier_relations(
        self,
        sources: list[int],
        predicate: str,
        root: Token,
        clause: Clause,
        argument: Phrase,
        surface: str,
        pattern: str,
        sent: Span,
    ) -> None:
        """ "Bob is the CEO of Acme", "started a new job at Umbrella": Bob -be ceo of-> Acme,
        -start job at-> Umbrella, when the argument is a common noun with a named modifier. The
        surface form takes the words up to the name: "is the CEO of"."""
        if root.pos_ not in ("NOUN", "PROPN"):
            return
        if root.i in self.token_entity and self.result.entities[self.token_entity[root.i]].label != CONCEPT:
            return  # "joined Acme of Berlin", "on Thursday of ...": the name or time is the argument
        # The noun with the words of its name: "Prime Minister", "board member".
        name_words = [
            c.lower_ for c in root.lefts if c.dep_ in ("compound", "flat") or (c.dep_ == "amod" and c.tag_ == "NNP")
        ]
        noun = " ".join([*name_words, root.lemma_.lower() or root.lower_])
        doc = root.doc
        for child in root.children:
            if child.dep_ != "nmod" or child.i not in argument.positions:
                continue
            preposition = case_of(child)
            if not preposition or preposition in CONTRASTS:
                continue
            targets = [t for t in self._entity_of(child) if self._named(t)]
            left = min(t.i for t in child.subtree)
            words = " ".join(doc[i].text for i in argument.positions if i < left)
            named = Phrase(doc, tuple(i for i in argument.positions if i >= left and doc[i].dep_ != "case"), child.i)
            self._add_relation(
                sources,
                f"{predicate} {noun} {preposition}",
                targets,
                pattern,
                sent,
                confidence=clause.confidence,
                surface=f"{surface} {words} {preposition}",
                spans=(clause.subject, named),
            )

    def _base_predicate(self, clause: Clause) -> str:
        """The relation's normalised name, before an argument's preposition: the verb's lemma with
        its particles ("set up"); a passive keeps its participle ("was born" -> "be born"); a
        copula or apposition is "be"; a noun's modifier has only its preposition."""
        doc = clause.relation.doc
        if clause.kind == "nmod":
            return ""
        if clause.kind in ("copula", "appos"):
            return "be"
        words = []
        for i in clause.relation.positions:
            token = doc[i]
            if token.dep_ in ("aux", "aux:pass", "neg", "advmod", "mark", "case", "fixed"):
                continue  # "wants to visit": "want visit"; prepositions are their argument's
            if i == clause.predicate and clause.passive:
                words += ["be", token.lower_]
            elif token.pos_ in ("VERB", "AUX") and token.dep_ not in ("compound:prt", "prt"):
                words.append(self._verb_lemma(token))
            else:
                words.append(token.lower_)
        return " ".join(words)

    def _named(self, index: int) -> bool:
        return self.result.entities[index].label not in VALUES | {CONCEPT}

    def _may_end(self, target: int, clause: Clause, argument: Token) -> bool:
        """A date (or time) ends a relation only as the time of an event a verb states ("joined
        Acme in 1941"), not as a recurring one ("every first Thursday") nor through a noun."""
        entity = self.result.entities[target]
        if entity.label not in VALUES:
            return True
        if clause.kind != "verb" or not argument.dep_.startswith(("obl", "nmod:tmod")):
            return False
        if self._verb_lemma(argument.doc[clause.predicate]) in STATIVE or any(
            t.lower_ in RECURRING for t in argument.subtree
        ):
            return False  # a state's time is its statement's business (memory_graph.statements)
        if clause.progressive:
            return False  # "is visiting on Friday": an arrangement
        if entity.label == "DATE" and self.observed_at is not None:
            value = normalize_date(entity.text, self.observed_at)
            if value is not None and value.start > self.observed_at.date():
                return False  # a date still to come: a plan, not an event
        return True

    def _possessive(self, owner: Token, sent: Span) -> None:
        """ "Alice's brother Tom", "her friend Bob", "my sister Carol": a relation named after the
        possessed noun; "Alice's car": Alice -have-> car (as written: "has")."""
        owners = self._entity_of(owner)
        owned = owner.head
        doc = owner.doc
        source = Phrase(doc, tuple(t.i for t in owner.subtree if t.dep_ != "case"), owner.i)

        def add(predicate: str, targets: list[int], surface: str) -> None:
            spans = [self.result.entities[t] for t in targets[:1]]
            target = (
                Phrase(doc, tuple(t.i for t in doc.char_span(spans[0].start, spans[0].end) or ()), owned.i)
                if spans
                else None
            )
            self._add_relation(owners, predicate, targets, "poss", sent, surface=surface, spans=(source, target))

        role = next(
            (c for c in owned.children if c.dep_ in DESCRIPTORS and c.pos_ == "NOUN" and c.i not in self.token_entity),
            None,
        )
        if owned.i in self.token_entity and owned.pos_ == "PROPN" and role is not None:
            # UD attaches the possessor to the name: Wendy <-nmod:poss- Xavier -compound-> brother
            name = role.lemma_.lower() or role.lower_
            add(name, [self.token_entity[owned.i]], role.text)
            return
        named = [e for c in owned.children if c.dep_ in ("appos", "flat", "compound") for e in self._entity_of(c)]
        if not named and owned.dep_ in DESCRIPTORS and owned.head.i in self.token_entity:
            # UD 2.15+ "my sister Carol": sister -nmod:desc-> Carol (older: compound / appos)
            named = [self.token_entity[owned.head.i]]
        if not named and owned.pos_ == "NOUN" and owned.i + 1 < len(owned.doc):
            # The surface order holds when the parse does not: "my sister Carol works ..."
            following = owned.doc[owned.i + 1]
            entity = self.token_entity.get(following.i)
            if entity is not None and following.pos_ == "PROPN" and self.result.entities[entity].label != CONCEPT:
                named = [entity]
        owned_is_named = (
            owned.i in self.token_entity and self.result.entities[self.token_entity[owned.i]].label != CONCEPT
        )
        if named and owned.pos_ == "NOUN" and not owned_is_named:
            add(owned.lemma_.lower() or owned.lower_, named, owned.text)
        else:
            add("have", self._entity_of(owned), "has")

    def _cooccurrence(self, sent: Span, linked: set[frozenset[int]]) -> None:
        # One index per distinct named entity; pronouns standing for the speaker are left out
        # (the speaker would co-occur with everything they say).
        by_key: dict[tuple[str, str], int] = {}
        for t in sent:
            index = self.token_entity.get(t.i)
            if index is None:
                continue
            entity = self.result.entities[index]
            if entity.label in NAMED_LABELS and not entity.pronoun:
                by_key.setdefault((entity.label, entity.key), index)
        named = sorted(by_key.values())
        if len(named) < 2 or len(named) > self.max_cooccurring:
            return
        for i, source in enumerate(named):
            for target in named[i + 1 :]:
                if frozenset((source, target)) not in linked:
                    self._add_relation([source], COOCCURRENCE, [target], "cooccur", sent)


def _ahead(span: Span) -> bool:
    """Whether the clause a date belongs to speaks of what is still to come ("we move to Lisbon in
    September", "I'm flying out on Friday", "I will start in March"), so that a bare month or
    weekday is the next one, as the statement of the same clause reads it (``statements._dates``)."""
    verb = span.root.head
    while verb.pos_ not in ("VERB", "AUX") and verb.head.i != verb.i:
        verb = verb.head
    if verb.pos_ not in ("VERB", "AUX"):
        return False
    modality, role, progressive = modality_of(verb, question=False)
    if modality == PLANNED or progressive:
        return True
    return (
        modality == ASSERTED
        and role is None
        and verb.tag_ in ("VB", "VBP", "VBZ")
        and verb.lemma_.lower() not in STATIVE
    )
