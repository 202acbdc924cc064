"""Facts that hold one value at a time, and their time: which is current, which was replaced, since when.

A *state* is a predicate a subject holds one value of at a time: where someone lives, where they
work, whom they are married to. :data:`STATES` declares them (extend it with
:func:`register_state`): the verbs that state a value (``hold``: "live in"), start one
(``start``: "move to", "join") or end one (``end``: "move out of", "quit"), the nouns after a
possessive that name one ("my wife Hana"), the labels a value may have, and the words a question
about it uses.

Extraction turns each sentence that states a state into a *statement* (stored as the evidence of
a relation whose predicate is the state's label): its role, its modality (stated as a fact, or
planned for a date) and the time it gives. Nothing here is stored beyond that: a subject's
:func:`timeline` is worked out from its statements when it is read, so it is always the one the
stored statements give, ``as_of`` any date.

The rules of a timeline, statements in the order of the times they give (else the time they
were said):

- a statement of another value than the current one ends the current one then: a newer
  statement replaces an older one, and the older stays as a former value with the statement that
  ended it;
- an ``end`` statement ("I don't live in Paris anymore", "I quit Vestas") ends its value;
- a past statement ("I used to live in Madrid", "I lived in Berlin from 2019 to 2023") is a
  value that held before it was said, never the current one;
- a plan ("we move to Lisbon in September") starts its value on its date unless a later
  statement cancels it ("the Lisbon move fell through") or plans another; a plan without a date
  starts nothing until a statement confirms it;
- a correction ("sorry, I meant Aarhus") replaces the statement before it: the corrected value
  never held;
- questions, negations, conditionals and wishes state nothing (extraction keeps them out).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

#: Roles of a statement.
HOLD, START, END, PAST, CANCEL = "hold", "start", "end", "past", "cancel"
#: Modalities of a statement that is stored (questions, negations, wishes and conditionals are not).
ASSERTED, PLANNED = "asserted", "planned"
#: The status of a value at a time.
CURRENT, FORMER, PLANNED_STATUS, CANCELLED = "current", "former", "planned", "cancelled"


@dataclass(frozen=True)
class State:
    """A predicate that holds one value at a time for a subject.

    Attributes:
        name: the key stored on relations (``lives_in``).
        label: the relation's predicate (``lives in``), as a reader would state it.
        verbs: verb phrase (lemma, then the preposition or particle, "" for a direct object)
            to role: ``{"live in": "hold", "move to": "start", "move out of": "end"}``.
        nouns: nouns that name the value after a possessive ("my wife Hana": wife).
        values: entity labels a value may have.
        question: a pattern matching a question about the state ("where does X live").
        primary: the labels a value has when the NER gets it right: of two states a phrase
            may state ("leave"), the one whose primary labels the value has is meant.
        names: words a value's own name may have that say it is a value of this state (a
            school's "University", "College"): of two states a phrase may state ("transfer to"),
            the one the value's name says is meant before the primary labels decide.
    """

    name: str
    label: str
    verbs: dict[str, str]
    values: frozenset[str]
    question: re.Pattern[str]
    nouns: frozenset[str] = frozenset()
    primary: frozenset[str] = frozenset()
    names: re.Pattern[str] | None = None


STATES: dict[str, State] = {}


def register_state(state: State) -> State:
    """Declare a state (or replace the one of that name); extraction and search use :data:`STATES`."""
    STATES[state.name] = state
    return state


_PLACES = frozenset({"LOC", "FAC", "ORG"})  # the NER calls some cities organisations and the reverse
_EMPLOYERS = frozenset({"ORG", "LOC", "FAC", "CONCEPT"})  # company names are often missed or called places


def verbs(*, hold: str = "", start: str = "", end: str = "") -> dict[str, str]:
    """A state's verb phrases from comma-separated lists of them, by role."""
    return {phrase.strip(): role for role, phrases in ((HOLD, hold), (START, start), (END, end))
            for phrase in phrases.split(",") if phrase.strip()}  # fmt: skip


register_state(
    State(
        "lives_in",
        "lives in",
        verbs(
            hold="live in, live at, reside in, be based in, base in, be home in, be in, stay in",
            start="move to, move into, move back to, relocate to, settle in, settle down in, emigrate to, move in",
            end="move out of, move from, move away from, leave",
        ),
        _PLACES,
        re.compile(
            r"\b(live[sd]?|living|reside[sd]?|based|mov(e[sd]?|ing)|relocat\w*|settled|call\w* home|home town|hometown)\b",
            re.I,
        ),
        primary=frozenset({"LOC", "FAC"}),
    )
)
register_state(
    State(
        "works_at",
        "works at",
        verbs(
            hold="work at, work for, be employed by, be employed at, employ by, intern at, be at, lead at, lead team at, "
            "head at, teach at, lecture at",
            start="join, start at, start with, start job at, start work at, start position at, begin at, get job at, "
            "take job at, take job with, accept job at, accept job from, accept job with, get job with, land job at, find job at, "
            "start job with, begin job at, hire by, be hired by, hire at, switch to, join team at, "
            "accept position with, accept position at, accept role at, accept role with, sign with, sign on with, "
            "transfer to, "
            "be taken on at, be taken on by, be brought on at, be brought on by",
            end="quit, leave, resign from, retire from, lay off by, lay off from, be laid off from, lose job at, "
            "fire from, fire by, give notice at, hand in notice at, let go from, let go by, be let go from, "
            "be fired from",
        ),
        _EMPLOYERS,
        re.compile(r"\b(work(s|ed|ing)?|job|jobs|employ(s|er|ers|ed|ing)?|hired|teach(es|ing)?|taught)\b", re.I),
        frozenset({"employer", "company", "job", "workplace", "firm"}),
        frozenset({"ORG"}),
    )
)
register_state(
    State(
        "married_to",
        "married to",
        verbs(
            hold="be married to", start="marry, get married to, wed", end="divorce, get divorced from, separate from"
        ),
        frozenset({"PERSON"}),
        re.compile(r"\b(married|marry|marri\w*|wife|husband|spouse|divorc\w*)\b", re.I),
        frozenset({"wife", "husband", "spouse"}),
    )
)
register_state(
    State(
        "partner_of",
        "partner of",
        verbs(
            hold="date, be together with, be engaged to",
            start="start dating, get engaged to",
            end="break up with, split up with",
        ),
        frozenset({"PERSON"}),
        re.compile(
            r"\b(dating|partner|boyfriend|girlfriend|going out with|broke up|break up|back together|together with|engaged|fianc\w*"
            r"|relationship|seeing (anyone|someone|somebody)|single)\b",
            re.I,
        ),
        frozenset({"partner", "boyfriend", "girlfriend", "fiance", "fiancé", "fiancee", "fiancée"}),
    )
)
register_state(
    State(
        "studies_at",
        "studies at",
        verbs(
            hold="study at, study in, be student at, be enrolled at, be enrolled in",
            start="enrol at, enroll at, enrol in, enroll in, start course at, begin course at, start course in, "
            "do course at, take course at, transfer to, switch to",
            end="graduate from, drop out of, finish course at, complete course at, wrap up course at, finish at",
        ),
        _EMPLOYERS,
        re.compile(
            r"\b(stud(y|ies|ied|ying)|student|enrol\w*|graduat\w*|attend(s|ed|ing)?|universit(y|ies)|college|degree|course"
            r"|mba|msc|phd|master'?s)\b",
            re.I,
        ),
        frozenset({"school", "university", "college"}),
        names=re.compile(r"\b(universit\w*|college|school|academy|polytechnic|politecnico|conservatoire)\b", re.I),
    )
)
register_state(
    State(
        "phone_number",
        "phone number is",
        verbs(hold="reach at, call at"),
        frozenset({"PHONE"}),
        re.compile(r"\b(phone|mobile|cell)\b", re.I),
        frozenset({"number", "phone", "mobile", "cell"}),
    )
)

_PET_WORDS = r"(pets?|dogs?|cats?|pupp(y|ies)|pups?|kittens?|kitty|hamsters?|rabbits?|bunn(y|ies)|parrots?)"
#: Words for a pet: "my cat Pierogi", "a beagle, we called him Biscuit" (a breed is a pet too).
PET_NOUNS = frozenset(
    {"dog", "dogs", "cat", "cats", "puppy", "pup", "kitten", "kitty", "pet", "hamster", "rabbit", "bunny", "parrot",
     "budgie", "tortoise", "turtle", "pony", "horse", "ferret", "goldfish", "shiba", "beagle", "greyhound", "labrador",
     "lab", "poodle", "terrier", "spaniel", "collie", "retriever", "husky", "corgi", "dachshund", "pug", "bulldog", "tabby"}
)  # fmt: skip
register_state(
    State(
        "has_pet",
        "has pet",
        verbs(start="adopt, rescue"),
        frozenset({"PERSON", "CONCEPT", "ORG", "LOC", "FAC"}),  # a pet's name is anyone's to the NER
        # A question for a pet's name ("What is Kenji's dog called now?"), not any about a pet
        re.compile(rf"\b(name[ds]?|called)\b.*\b{_PET_WORDS}\b|\b{_PET_WORDS}\b.*\b(name[ds]?|called)\b", re.I),
        PET_NOUNS,
    )
)

STATE_LABELS = frozenset(s.label for s in STATES.values())


def status_text(status: str | None, start: datetime | None, end: datetime | None) -> str:
    """A value's status and period as a reader would write it: "current since 2025-08-25",
    "former, 2025-05-03 to 2025-08-25, replaced", "planned from 2025-09-01", "cancelled"; ""
    for no status."""

    def day(t: datetime) -> str:
        return t.date().isoformat()

    if status == CURRENT:
        return f"current since {day(start)}" if start else "current"
    if status == FORMER:
        if start and end:
            return f"former, {day(start)} to {day(end)}, replaced"
        return f"former, until {day(end)}, replaced" if end else "former, replaced"
    if status == PLANNED_STATUS:
        return f"planned from {day(start)}" if start else "planned"
    return status or ""


def state_of(predicate: str) -> tuple[str, str] | None:
    """``(state, role)`` of a relation predicate as stored before states had their own label
    ("move to" → ``("lives_in", "start")``): how an upgraded store reads its old relations."""
    for state in STATES.values():
        if predicate == state.label:
            return state.name, HOLD
        role = state.verbs.get(predicate)
        if role is not None and role != END:  # "leave" without its object's label says too little
            return state.name, role
    return None


# -- statements and timelines ------------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    """One statement of a state, as stored: who, which state, which value, when, and how.

    ``at`` is the time the statement gives (a start, an end, or since when a value holds),
    ``until`` the end it gives (a past value), ``said`` when it was said. ``target`` is the
    value's canonical entity id; ``relation_id`` the stored relation, ``chunk_id`` its evidence.
    """

    subject: int
    state: str
    target: int
    role: str
    modality: str
    said: datetime
    at: datetime | None = None
    until: datetime | None = None
    correction: bool = False
    relation_id: int = 0
    chunk_id: str = ""
    order: int = 0  # the order written, for statements said at the same time

    @property
    def time(self) -> datetime:
        """When the statement puts its change: the time it gives, else when it was said."""
        return self.at or self.said


@dataclass
class Period:
    """A value held from ``start`` until ``end`` (``None``: still), with the statements that
    stated it: the one that started it first."""

    target: int
    start: datetime | None
    end: datetime | None
    statements: list[Statement] = field(default_factory=list)
    ended_by: Statement | None = None
    end_known: bool = True  # False: it ended by the time a past statement was said, no one says when

    def holds_at(self, when: datetime) -> bool:
        return (self.start is None or self.start <= when) and (self.end is None or when < self.end)


@dataclass
class Timeline:
    """A subject's values of one state over time, oldest first, and the plans still ahead."""

    subject: int
    state: str
    periods: list[Period] = field(default_factory=list)
    pending: list[Statement] = field(default_factory=list)  # plans without a date, not confirmed
    cancelled: list[Statement] = field(default_factory=list)  # plans cancelled or replaced, and the cancels

    def at(self, when: datetime) -> Period | None:
        """The value that holds at ``when``: the latest period that does."""
        return next((p for p in reversed(self.periods) if p.holds_at(when)), None)

    def before(self, period: Period) -> Period | None:
        """The period before ``period`` (of another value)."""
        index = self.periods.index(period)
        return next((p for p in reversed(self.periods[:index]) if p.target != period.target), None)

    def status(self, target: int, when: datetime) -> tuple[str | None, datetime | None, datetime | None]:
        """``(status, valid from, valid until)`` of ``target`` at ``when``: ``current``,
        ``former`` (its latest period ended), ``planned`` (a period or plan still ahead),
        ``cancelled`` (only ever planned, and the plan called off), or ``None`` (this timeline
        does not know the value then)."""
        now = self.at(when)
        if now is not None and now.target == target:
            return CURRENT, now.start, now.end if now.end_known else None
        ahead = [
            p
            for p in self.periods
            if p.target == target and p.start is not None and p.start > when and p.statements[0].said <= when
        ]  # planned by then: a value first stated later was not yet known
        past = [p for p in self.periods if p.target == target and p.end is not None and p.end <= when]
        if past:
            last = past[-1]
            return FORMER, last.start, last.end if last.end_known else None
        if ahead or any(s.target == target and s.said <= when for s in self.pending):
            start = ahead[0].start if ahead else None
            return PLANNED_STATUS, start, None
        if any(s.target == target for s in self.cancelled):
            return CANCELLED, None, None
        return None, None, None


def timeline(statements: Iterable[Statement]) -> Timeline:
    """A subject's timeline of one state from its statements (see the module docstring)."""
    events = _corrected(sorted(statements, key=lambda s: (s.said, s.order)))
    if not events:
        raise ValueError("a timeline needs at least one statement")
    subject, state = events[0].subject, events[0].state
    plans = [s for s in events if s.modality == PLANNED]
    facts = [s for s in events if s.modality != PLANNED and s.role != CANCEL]
    cancels = [s for s in events if s.role == CANCEL]
    started: list[Statement] = []
    pending: list[Statement] = []
    dropped: list[Statement] = list(cancels)
    for plan in plans:
        later = [s for s in (*plans, *cancels) if s.said > plan.said and s is not plan]
        if any(s.role == CANCEL and s.target in (plan.target, 0) for s in later):
            dropped.append(plan)
            continue
        if any(s.modality == PLANNED and s.target != plan.target for s in later):
            dropped.append(plan)  # another plan replaced it
            continue
        if plan.at is not None and plan.at > plan.said:
            started.append(plan)
        else:
            pending.append(plan)
    line = Timeline(subject, state)
    ordered = sorted((*facts, *started), key=lambda s: (_sort_time(s), s.said, s.order))
    current: Period | None = None
    for s in ordered:
        if s.role == PAST:
            end = s.until or s.said
            if current is not None and current.target == s.target:
                current.statements.append(s)  # "I used to live in Madrid": it no longer holds
                current.end, current.ended_by = max(end, current.start or end), s
                current.end_known = s.until is not None
                current = None
            else:
                line.periods.append(Period(s.target, s.at, end, [s], end_known=s.until is not None))
            continue
        if s.role == END:
            if current is not None and s.target in (current.target, 0):
                current.end, current.ended_by = s.time, s
                current = None
            elif s.target != 0 and not any(p.target == s.target and p.end is None for p in line.periods):
                # "Karim and I separated", with no word before of the marriage: it held until then.
                line.periods.append(Period(s.target, None, s.time, [s], ended_by=s))
            continue
        if current is not None and current.target == s.target:
            current.statements.append(s)
            continue
        if current is not None:
            current.end, current.ended_by = s.time, s
        current = Period(s.target, s.time, None, [s])
        line.periods.append(current)
    line.periods.sort(key=lambda p: p.start or datetime.min.replace(tzinfo=UTC))
    line.pending = [p for p in pending if not any(q.target == p.target for q in line.periods)]
    line.cancelled = dropped
    for period in line.periods:
        confirmed = [p for p in pending if p.target == period.target]
        period.statements += confirmed
    return line


def _sort_time(s: Statement) -> datetime:
    # A past value is placed where it began, or, with no beginning given, just before it ended.
    if s.role == PAST:
        return s.at or (s.until or s.said) - timedelta(microseconds=1)
    return s.time


def _corrected(statements: list[Statement]) -> list[Statement]:
    """Apply corrections: a correction takes the place of the statement before it (of another
    value), whose value never held; its own time is that statement's."""
    out: list[Statement] = []
    for s in statements:
        if s.correction:
            previous = next((p for p in reversed(out) if p.target != s.target and p.role != CANCEL), None)
            if previous is not None:
                out.remove(previous)
                out.append(
                    Statement(
                        s.subject, s.state, s.target, previous.role, previous.modality, previous.said, previous.at,
                        previous.until, False, s.relation_id, s.chunk_id, previous.order,
                    )
                )  # fmt: skip
                continue
        out.append(s)
    return out


def timelines(statements: Iterable[Statement]) -> dict[tuple[int, str], Timeline]:
    """The timelines of many subjects and states, by ``(subject, state)``."""
    groups: dict[tuple[int, str], list[Statement]] = {}
    for s in statements:
        groups.setdefault((s.subject, s.state), []).append(s)
    return {key: timeline(group) for key, group in groups.items()}


# -- questions -----------------------------------------------------------------------------------

_PAST = re.compile(
    r"\b(before|previously|previous|used to|formerly|former|prior|originally|earlier|old|first|until|back then)\b",
    re.I,
)
_PRESENT = re.compile(r"\b(now|currently|current|these days|at the moment|still|today|presently|anymore)\b", re.I)
_WHEN = re.compile(r"\b(when|since when|what (year|month|date|day)|how long ago)\b", re.I)
_DID_HOLD = re.compile(
    r"\b(did|was|were)\b.*\b(live|work|stud(y|ied)|reside|based|employed|married|dat(e|ing))\b", re.I
)
_YES_NO = re.compile(r"\s*(did|does|do|is|are|was|were|has|have|had)\b", re.I)
_ENDS = re.compile(
    r"\b(leave|left|quit|stop|stopped|divorc\w*|break up|broke up|split up|move out|moved out|graduat\w*|resign\w*"
    r"|drop(ped)? out)\b",
    re.I,
)


@dataclass(frozen=True)
class StateQuestion:
    """What a question asks of a state: which state, and when.

    ``when`` is ``present`` (the value now, or at ``as_of``), ``past`` (the value before),
    ``change`` (when the value changed), ``date`` (the value at ``at``) or ``ended`` (the value a
    statement ended: "Which university did Tariq graduate from?").
    """

    state: str
    when: str
    at: datetime | None = None
    ends: bool = False  # a change question about an end ("when did she leave Vestas?")


def state_question(query: str, *, dates: Sequence[datetime] = ()) -> StateQuestion | None:
    """The state a question asks about and the time it asks for, or ``None``.

    ``dates`` are the dates the question names (resolved by the caller): "Where did Omar live in
    2023?" asks for the value then.
    """
    matches = {s.name: len(s.question.findall(query)) for s in STATES.values()}
    state = max(matches, key=lambda name: matches[name])  # the most words of one state; ties: the first declared
    if not matches[state]:
        return None
    if _WHEN.search(query):
        return StateQuestion(state, "change", ends=bool(_ENDS.search(query)))
    if _ENDS.search(query):
        return StateQuestion(state, "ended", ends=True)
    if dates:
        return StateQuestion(state, "date", dates[0])
    if _YES_NO.match(query):
        # "Did Noor get married in Amman?", "Is Tomasz studying at TU Delft?": what holds now says.
        return StateQuestion(state, "present")
    if _PRESENT.search(query):
        return StateQuestion(state, "present")
    if _PAST.search(query) or _DID_HOLD.search(query):
        return StateQuestion(state, "past")
    return StateQuestion(state, "present")
