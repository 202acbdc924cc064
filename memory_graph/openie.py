"""Open information extraction: the clauses a sentence states, as ``(subject; relation; arguments)``
read off its Universal Dependencies parse, in the words of the sentence.

A clause comes from

- a verb with its subject, objects and prepositional arguments ("Tom joined Acme in 1941",
  passives kept passive: "Walcott was brought on one knee"), the subject found through
  coordination ("... and became a justice"), control ("wants to visit"), and relative clauses
  ("a footballer who plays for ..." - the footballer, or what the copula says the footballer is);
- a copula ("X is an Australian footballer", "X is in Paris");
- an apposition ("Bob, the CEO of Acme," - Bob is the CEO of Acme), a possessive ("Acme's
  founder" - Acme has a founder) and a noun's prepositional modifier ("the office in Lyon"), which
  the sentence implies rather than states, with the relation word it implies and less confidence.

Every phrase keeps the token positions it was read from, so a caller can give character offsets
into the text and map phrases onto entities. Each clause says whether it is stated as a fact: a
question, a negation, a conditional, a modal or a wish is not (:func:`modality_of`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from memory_graph.facts import ASSERTED, END, PAST, PLANNED

if TYPE_CHECKING:
    from spacy.tokens import Doc, Span, Token


SUBJECTS = frozenset({"nsubj", "nsubj:pass", "nsubjpass", "csubj", "csubj:pass"})
PASSIVE_SUBJECTS = frozenset({"nsubj:pass", "nsubjpass", "csubj:pass"})
# A verb's arguments: objects, prepositional and bare-noun modifiers, clausal complements.
ARGUMENTS = frozenset(
    {"obj", "dobj", "iobj", "dative", "obl", "obl:unmarked", "obl:tmod", "obl:npmod", "obl:agent", "nmod:tmod",
     "nmod:npmod", "ccomp"}
)  # fmt: skip
OBJECTS = frozenset({"obj", "dobj", "iobj", "dative"})
# Parts of a phrase's subtree that are phrases or clauses of their own, not part of it.
DETACHED = frozenset(
    {"acl:relcl", "advcl:relcl", "relcl", "parataxis", "appos", "dep", "discourse", "vocative", "reparandum", "list"}
)
NEGATIONS = frozenset({"not", "n't", "never", "no"})
_RELATIVE = frozenset({"who", "which", "that", "whom", "whose"})
_CONDITIONAL = frozenset({"if", "unless", "whether"})
_MODAL_MAYBE = frozenset({"would", "could", "might", "may", "should", "must", "'d", "ca", "can"})
_MODAL_FUTURE = frozenset({"will", "'ll", "shall", "wo"})
_PLAN_HEADS = frozenset(
    {"plan", "intend", "decide", "arrange", "agree", "schedule", "prepare", "offer", "go", "set", "expect"}
)
# Heads of what is wished, weighed or asked of someone, not done ("my boss asked me to move to Berlin").
_WISH_HEADS = frozenset(
    {"want", "hope", "wish", "like", "love", "consider", "think", "dream", "need", "try", "tempt", "talk",
     "ask", "urge", "beg", "encourage", "push", "invite", "pressure"}
)  # fmt: skip
_STILL_NOT = frozenset({"anymore", "longer"})  # "not ... anymore", "no longer"
_ALMOST = frozenset({"almost", "nearly"})
DISCOURSE_PHRASES = frozenset(
    {"for instance", "for example", "in fact", "in addition", "of course", "in particular", "in general",
     "at least", "at first", "in turn", "in short", "by contrast", "in contrast", "on average", "in total",
     "at last", "in effect", "in practice", "in theory", "after all", "by far", "at all", "in part"}
)  # fmt: skip
_TIME = """day week month year morning afternoon evening night weekend hour minute season spring summer autumn fall
    winter monday tuesday wednesday thursday friday saturday sunday january february march april may june july
    august september october november december"""
TIME_NOUNS = frozenset(_TIME.split())
_NOMINAL = frozenset({"NOUN", "PROPN", "PRON", "NUM", "ADJ", "X", "SYM", "DET"})

# How far each kind of clause is to be trusted: stated with a verb or copula, implied by an
# apposition, possessive or noun modifier. Confidence orders a benchmark's tuples and a graph's edges.
CONFIDENCE = {"verb": 0.9, "copula": 0.85, "appos": 0.7, "poss": 0.5, "nmod": 0.45}
INHERITED = 0.9  # the subject is another clause's (coordination, control, an adverbial clause)


@dataclass(frozen=True)
class Phrase:
    """Words of a sentence, by token position (ascending), and the word they depend on."""

    doc: Doc
    positions: tuple[int, ...]
    head: int

    @property
    def text(self) -> str:
        return " ".join(self.doc[i].text for i in self.positions)

    @property
    def start_char(self) -> int:
        return int(self.doc[self.positions[0]].idx) if self.positions else 0

    @property
    def end_char(self) -> int:
        if not self.positions:
            return 0
        last = self.doc[self.positions[-1]]
        return int(last.idx) + len(last.text)

    @property
    def root(self) -> Token:
        return self.doc[self.head]


@dataclass(frozen=True)
class Clause:
    """``subject relation arguments``: one thing a sentence says (or asks, denies, supposes).

    ``relation`` holds the relation's words as written ("was born in", "served as"); ``implied``
    is a word the sentence does not say but means ("is" of an apposition, "has" of a
    possessive). ``predicate`` is the relation's head word (the verb, or the copula's nominal).
    """

    subject: Phrase
    relation: Phrase
    arguments: tuple[Phrase, ...]
    kind: str
    predicate: int
    confidence: float
    modality: str
    implied: str = ""
    negated: bool = False
    passive: bool = False
    progressive: bool = False  # "is visiting": with a date, an arrangement rather than an event

    @property
    def relation_text(self) -> str:
        return " ".join(w for w in (self.implied, self.relation.text) if w)

    @property
    def stated(self) -> bool:
        """Whether the sentence states this as a fact that holds: not a question, negation,
        supposition, plan ("will join") or end ("no longer works at")."""
        return self.modality == ASSERTED and not self.negated


def clauses(sent: Span) -> list[Clause]:
    """The clauses of one parsed sentence, in the order of their predicates."""
    question = sent.text.rstrip().endswith("?")
    found: list[Clause] = []
    for token in sent:
        if _copula(token) is not None:
            found += _copular_clauses(token, question=question)
        elif _is_verb(token):
            found += _verb_clauses(token, question=question)
        if token.dep_ == "appos" and token.head.i != token.i:
            found += _apposition(token, question=question)
        if token.dep_ in ("nmod:poss", "poss") and token.pos_ == "PROPN":
            found += _possessive(token, question=question)
        if token.dep_ == "nmod" and token.head.pos_ in ("NOUN", "PROPN") and case_words(token):
            found += _noun_modifier(token, question=question)
    return found


def modality_of(verb: Token, *, question: bool) -> tuple[str, str | None, bool]:
    """``(modality, role change, progressive)``: whether the clause of ``verb`` states a fact,
    plans one or states nothing ("question", "negated", "hypothetical"), whether it ends a value
    (``end``: "no longer", "not ... anymore") or speaks of the past (``past``), and whether it is
    a present progressive (a plan, for a change: "we are moving")."""
    if question:
        return "question", None, False
    chain = list(governors(verb))
    children = [c for clause in chain for c in clause.children]
    words = {c.lower_ for c in children} | {verb.lower_}  # "I'm no longer at Vestas": "longer" heads it
    words |= {g.lower_ for c in children if c.dep_ == "advmod" for g in c.children}  # "no" of "no longer"
    if any(c.dep_ == "mark" and c.lower_ in _CONDITIONAL for c in children):
        return "hypothetical", None, False
    if any(
        c.dep_ == "advcl" and any(m.dep_ == "mark" and m.lower_ in _CONDITIONAL for m in c.children) for c in children
    ):
        return "hypothetical", None, False  # the consequence of a condition: "If we move, Lena joins Barco"
    negated = any(c.lower_ in NEGATIONS and c.dep_ in ("neg", "advmod", "det") for c in children)
    if words & _STILL_NOT and (negated or "no" in words):
        return ASSERTED, END, False
    if negated:
        return "negated", None, False
    auxes = [c.lower_ for c in children if c.dep_ in ("aux", "aux:pass")]
    if any(a in _MODAL_MAYBE for a in auxes) or words & {"maybe", "perhaps"}:
        return "hypothetical", None, False
    if any(c.dep_ == "advmod" and c.lower_ in _ALMOST for c in verb.children):
        return "hypothetical", None, False  # "I almost moved to Milan": it did not happen
    heads = [clause.lemma_.lower() for clause in chain[1:]]
    if verb.dep_ == "acl":
        heads.append(verb.head.lemma_.lower())
    if any(h in _WISH_HEADS for h in heads):
        return "hypothetical", None, False
    if any(a in _MODAL_FUTURE for a in auxes) or any(h in _PLAN_HEADS for h in heads):
        return PLANNED, None, False
    infinitive = any(c.dep_ == "mark" and c.lower_ == "to" for c in verb.children)
    if infinitive and verb.dep_ in ("advcl", "xcomp", "ccomp") and verb.head.i != verb.i:
        # "moving to Zurich to work for Google": the purpose shares its clause's modality.
        governing = modality_of(verb.head, question=False)
        if governing[0] != ASSERTED or governing[2]:
            return PLANNED if governing[0] == ASSERTED else governing[0], None, False
    if "used" in {clause.lower_ for clause in chain[1:]} or "used" in auxes:
        return ASSERTED, PAST, False
    own = [c for c in verb.children if c.dep_ in ("aux", "aux:pass", "cop")]
    past_aux = any(c.tag_ == "VBD" for c in own)
    perfect = any(c.lemma_.lower() == "have" for c in own)
    progressive = verb.tag_ == "VBG" and any(c.lemma_.lower() == "be" for c in own) and not past_aux
    if progressive and not words & {"now", "currently", "still"}:
        return ASSERTED, None, True
    if (verb.tag_ == "VBD" or past_aux) and not perfect:
        return ASSERTED, PAST, False
    return ASSERTED, None, False


def governors(verb: Token) -> Iterator[Token]:
    """The verb, then the clauses it is an infinitive or conjunct of, up to the first with a subject."""
    token = verb
    for _ in range(4):
        yield token
        if token.dep_ in ("xcomp", "conj", "advcl", "ccomp") and token.head.i != token.i:
            token = token.head
        elif token.dep_ == "acl" and token.head.head.i != token.head.i:
            token = token.head.head  # "I accepted an offer to move": the offer's verb
        else:
            return


def case_of(token: Token) -> str:
    """The preposition of a prepositional phrase ("in", "instead of"), lowercase; "" when none."""
    return " ".join(t.lower_ for t in case_words(token))


# -- verbs ----------------------------------------------------------------------------------------


def _is_verb(token: Token) -> bool:
    if token.pos_ == "VERB":
        return token.dep_ not in ("amod", "compound", "aux", "aux:pass", "case", "mark", "fixed", "flat")
    # "There is a cafe": "is" heads its clause.
    return token.pos_ == "AUX" and token.dep_ in ("ROOT", "conj", "ccomp", "advcl", "acl:relcl", "parataxis")


def _verb_clauses(verb: Token, *, question: bool) -> list[Clause]:
    subject, inherited = _subject(verb)
    if subject is None:
        return []
    if _merged_into_head(verb):
        return []  # read with the verb it completes
    arguments = _arguments_of(verb)
    relation = _relation_words(verb)
    xcomp = _merged_xcomp(verb)
    if xcomp is not None:
        # "Alice wants to visit Paris": one relation, "wants to visit".
        relation += _relation_words(xcomp, marks=True)
        arguments += _arguments_of(xcomp)
    arguments += [t for a in arguments for t in _lifted(a) if t not in arguments]
    relation, arguments = _preposition_into_relation(verb, relation, arguments)
    if not arguments:
        return []
    skip = set(relation) | set(subject.positions) | {a.i for a in arguments}
    kind = "verb"
    confidence = CONFIDENCE[kind] * (INHERITED if inherited else 1.0)
    mode, change, progressive = modality_of(verb, question=question)
    return [
        Clause(
            subject=subject,
            relation=_phrase(verb.doc, relation, verb.i),
            arguments=tuple(_subtree(a, skip=skip - {a.i}) for a in sorted(arguments, key=_argument_order(verb))),
            kind=kind,
            predicate=verb.i,
            confidence=confidence,
            modality=change if change == END else mode,
            negated=_negated(verb),
            passive=any(c.dep_ in PASSIVE_SUBJECTS or c.dep_ == "aux:pass" for c in verb.children),
            progressive=progressive,
        )
    ]


def _arguments_of(verb: Token) -> list[Token]:
    return [c for c in verb.children if (c.dep_ in ARGUMENTS or _nominal_complement(c)) and not _discourse_phrase(c)]


def _discourse_phrase(token: Token) -> bool:
    """ "for instance", "in fact", "of course": a phrase about the telling, not an argument."""
    return f"{case_of(token)} {token.lower_}".strip() in DISCOURSE_PHRASES


def _lifted(argument: Token) -> list[Token]:
    """Phrases a parser hangs under a time phrase that belong to the verb: in "meets on the
    first Thursday of every month at Café Nord", "at Café Nord" is where the club meets."""
    if not _temporal(argument):
        return []
    return [
        t
        for t in argument.subtree
        if t.dep_ == "nmod" and t.i != argument.i and case_of(t) not in ("", "of") and not _temporal(t)
    ]


def _temporal(token: Token) -> bool:
    return token.ent_type_ in ("DATE", "TIME") or token.lemma_.lower() in TIME_NOUNS


def _merged_xcomp(verb: Token) -> Token | None:
    """The infinitive a verb with no object of its own is read with ("wants to visit")."""
    xcomp = next((c for c in verb.children if c.dep_ == "xcomp" and _is_verb(c)), None)
    if xcomp is None or _copula(xcomp) is not None or any(c.dep_ in SUBJECTS for c in xcomp.children):
        return None
    if any(a.dep_ in OBJECTS for a in _arguments_of(verb)):
        return None
    return xcomp


def _merged_into_head(verb: Token) -> bool:
    if verb.dep_ != "xcomp" or verb.head.i == verb.i:
        return False
    merged = _merged_xcomp(verb.head)
    return merged is not None and merged.i == verb.i


def _nominal_complement(token: Token) -> bool:
    """ "became a justice", "seems happy": a predicate nominal or adjective of a verb (UD xcomp)."""
    return token.dep_ == "xcomp" and token.pos_ in _NOMINAL and _copula(token) is None


def _relation_words(verb: Token, *, marks: bool = False) -> list[int]:
    """The verb with its auxiliaries, negation, particles and the adverbs inside the verb group
    ("was first mentioned", "has not been", "set up")."""
    words = [verb.i]
    for child in verb.children:
        grouped = child.dep_ in ("aux", "aux:pass", "neg", "compound:prt", "prt")
        negation = child.dep_ == "advmod" and child.lower_ in NEGATIONS
        infinitive = marks and child.dep_ == "mark" and child.lower_ == "to"
        if grouped or negation or infinitive:
            words.append(child.i)
    first = min(words)
    for child in verb.children:
        # An adverb between the auxiliary and the verb belongs to the verb group: "is also known".
        if child.dep_ == "advmod" and first < child.i < verb.i and child.i not in words and not child.children:
            words.append(child.i)
    return sorted(words)


def _preposition_into_relation(
    verb: Token, relation: list[int], arguments: list[Token]
) -> tuple[list[int], list[Token]]:
    """With no object, the first argument's preposition is part of the relation ("served as",
    "was born in", "were addressed by"); a clausal complement's "that" too ("indicated that")."""
    if any(a.dep_ in OBJECTS for a in arguments):
        return relation, arguments
    after = sorted((a for a in arguments if a.i > verb.i), key=lambda a: a.i)
    if not after:
        return relation, arguments
    first = after[0]
    if first.dep_ == "ccomp":
        marks = [c.i for c in first.children if c.dep_ == "mark" and c.i < first.i and c.lower_ == "that"]
        return sorted(relation + marks), arguments
    case = case_words(first)
    if case and case[0].i == _left_edge(first) and case[-1].i < first.i:
        return sorted(relation + [t.i for t in case]), arguments
    return relation, arguments


def _argument_order(verb: Token) -> Callable[[Token], tuple[int, int]]:
    """Arguments after the verb in sentence order, then those before it ("In 1941, ...")."""

    def key(token: Token) -> tuple[int, int]:
        return (0 if token.i > verb.i else 1, token.i)

    return key


# -- copulas, appositions, possessives, noun modifiers ---------------------------------------------


def _copula(token: Token) -> Token | None:
    return next((c for c in token.children if c.dep_ == "cop"), None)


def _copular_clauses(nominal: Token, *, question: bool) -> list[Clause]:
    copula = _copula(nominal)
    assert copula is not None
    subject, inherited = _subject(nominal)
    if subject is None:
        return []
    relation = [copula.i] + [
        c.i
        for c in nominal.children
        if c.dep_ in ("aux", "neg") or (c.dep_ == "advmod" and (c.lower_ in NEGATIONS or copula.i < c.i < nominal.i))
    ]
    mode, change, _ = modality_of(nominal, question=question)
    clauses = []
    for predicate in [nominal, *_conjoined_predicates(nominal)]:
        words = list(relation)
        case = case_words(predicate)
        if case and case[0].i == _left_edge(predicate, skip=set(relation) | set(subject.positions)):
            words += [t.i for t in case]  # "is in Paris", "is of Danish descent"
        skip = set(words) | set(subject.positions)
        argument = _subtree(predicate, skip=skip, without=("conj", "cc", "advcl", "mark", "csubj"))
        if not argument.positions:
            continue
        clauses.append(
            Clause(
                subject=subject,
                relation=_phrase(nominal.doc, words, copula.i),
                arguments=(argument,),
                kind="copula",
                predicate=predicate.i,
                confidence=CONFIDENCE["copula"] * (INHERITED if inherited or predicate.i != nominal.i else 1.0),
                modality=change if change == END else mode,
                negated=_negated(nominal),
            )
        )
    return clauses


def _conjoined_predicates(nominal: Token) -> Iterator[Token]:
    """ "X is a writer and a painter": the painter too (a conjunct with no copula or subject of its own)."""
    for conj in nominal.children:
        own_subject = any(c.dep_ in SUBJECTS for c in conj.children)
        if conj.dep_ == "conj" and conj.pos_ in _NOMINAL and _copula(conj) is None and not own_subject:
            yield conj


def _apposition(appos: Token, *, question: bool) -> list[Clause]:
    """ "Bob, the CEO of Acme,": Bob is the CEO of Acme."""
    head = appos.head
    if head.pos_ not in ("PROPN", "NOUN") or appos.pos_ not in ("PROPN", "NOUN", "NUM"):
        return []
    subject = _subtree(head, without=("acl", "conj", "cc"))
    return [_implied(subject, "is", _subtree(appos, without=("conj", "cc")), "appos", appos, question=question)]


def _possessive(owner: Token, *, question: bool) -> list[Clause]:
    """ "Acme's founder": Acme has a founder."""
    owned = owner.head
    if owned.pos_ not in ("NOUN", "PROPN"):
        return []
    subject = _subtree(owner, without=("case",))
    thing = _subtree(owned, skip=set(_subtree(owner).positions), without=("acl", "conj", "cc", "nmod"))
    return [_implied(subject, "has", thing, "poss", owned, question=question)]


def _noun_modifier(modifier: Token, *, question: bool) -> list[Clause]:
    """ "the office in Lyon": the office is in Lyon."""
    noun = modifier.head
    if noun.dep_ in ("nmod:poss", "poss") or modifier.pos_ not in ("PROPN", "NOUN", "NUM"):
        return []
    if case_of(modifier) in ("of", "'s"):
        return []  # "the capital of France": a part or a property, not a statement
    case = case_words(modifier)
    subject = _subtree(noun, skip=set(_subtree(modifier).positions), without=("conj", "cc", "acl", "nmod"))
    relation = _phrase(noun.doc, [t.i for t in case], case[0].i)
    argument = _subtree(modifier, skip=set(relation.positions))
    mode, _, _ = modality_of(clause_head(noun), question=question)
    return [
        Clause(
            subject=subject,
            relation=relation,
            arguments=(argument,),
            kind="nmod",
            predicate=modifier.i,
            confidence=CONFIDENCE["nmod"],
            modality=mode,
            implied="is",
        )
    ]


def _implied(subject: Phrase, word: str, argument: Phrase, kind: str, token: Token, *, question: bool) -> Clause:
    mode, _, _ = modality_of(clause_head(token), question=question)
    return Clause(
        subject=subject,
        relation=_phrase(token.doc, [], token.i),
        arguments=(argument,),
        kind=kind,
        predicate=token.i,
        confidence=CONFIDENCE[kind],
        modality=mode,
        implied=word,
    )


def clause_head(token: Token) -> Token:
    """The verb or predicate of the clause a word is part of (its modality is the word's)."""
    while token.head.i != token.i and not (_is_verb(token) or _copula(token) is not None):
        token = token.head
    return token


# -- subjects ---------------------------------------------------------------------------------------


def _subject(predicate: Token) -> tuple[Phrase | None, bool]:
    """``(subject, inherited)``: the predicate's own subject, else one it shares (coordination,
    control, an adverbial or participial clause); a relative pronoun stands for the noun it
    follows, and the noun of "X is a footballer who plays ..." for X."""
    seen = 0
    token = predicate
    inherited = False
    while seen < 5:
        seen += 1
        own = next((c for c in token.children if c.dep_ in SUBJECTS), None)
        if own is not None:
            if own.lower_ in _RELATIVE and token.dep_ in ("acl:relcl", "relcl"):
                return _antecedent(token.head), True
            return _subtree(own, without=("acl:relcl", "relcl", "appos")), inherited
        if token.dep_ in ("acl:relcl", "relcl", "acl") and token.head.i != token.i:
            return _antecedent(token.head), True  # "the man seen at ...", "the shop that we opened"
        if token.dep_ == "xcomp" and token.head.i != token.i:
            objects = [c for c in token.head.children if c.dep_ in OBJECTS]
            if objects:  # "asked Tom to leave": Tom leaves
                return _subtree(objects[0], without=("acl:relcl", "relcl", "appos")), True
        if token.dep_ in ("conj", "xcomp", "advcl") and token.head.i != token.i:
            token = token.head
            inherited = True
            continue
        return None, inherited
    return None, inherited


def _antecedent(noun: Token) -> Phrase:
    """The noun a relative clause follows; for a predicate nominal, its copula's subject."""
    copula = _copula(noun)
    if copula is not None:
        subject, _ = _subject(noun)
        if subject is not None:
            return subject
    return _subtree(noun, without=("acl:relcl", "relcl", "acl", "appos", "conj", "cc"))


# -- phrases ----------------------------------------------------------------------------------------


def _subtree(token: Token, *, skip: Iterable[int] = (), without: Iterable[str] = ()) -> Phrase:
    """``token``'s subtree less detached parts (relative clauses, appositions, ...), the deps in
    ``without`` under ``token`` itself, the positions in ``skip``, and punctuation at its edges."""
    dropped = set(skip)
    excluded = DETACHED | set(without)
    stack = [token]
    kept: list[int] = []
    while stack:
        current = stack.pop()
        if current.i in dropped:
            continue
        kept.append(current.i)
        for child in current.children:
            if child.dep_ in DETACHED or (current.i == token.i and child.dep_ in excluded):
                continue
            stack.append(child)
    positions = sorted(kept)
    doc = token.doc
    while positions and (doc[positions[0]].is_punct or doc[positions[0]].dep_ == "cc"):
        positions.pop(0)
    while positions and doc[positions[-1]].is_punct and doc[positions[-1]].text not in ("''", '"', ")", "'"):
        positions.pop()
    return Phrase(doc, tuple(positions), token.i)


def _phrase(doc: Doc, positions: Iterable[int], head: int) -> Phrase:
    return Phrase(doc, tuple(sorted(set(positions))), head)


def case_words(token: Token) -> list[Token]:
    """The preposition before a noun, with the words fixed to it ("instead of", "because of")."""
    words: list[Token] = []
    for child in token.children:
        if child.dep_ == "case" and child.i < token.i:
            words.append(child)
            words += [f for f in child.children if f.dep_ == "fixed"]
    return sorted(words, key=lambda t: t.i)


def _left_edge(token: Token, *, skip: set[int] | None = None) -> int:
    skip = skip or set()
    return min((t.i for t in token.subtree if t.i not in skip and not t.is_punct), default=token.i)


def _negated(predicate: Token) -> bool:
    return any(c.dep_ in ("neg", "advmod") and c.lower_ in NEGATIONS for c in predicate.children)
