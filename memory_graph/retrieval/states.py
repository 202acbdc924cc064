"""States at query time: a question about a value that changes is answered by the statement of
the value it asks for, and every hit's states say whether they are current or former.

A question about the present ("Where does Omar live now?", "Where does he work?") puts the
statements of the current value first, above the statements of the values it replaced; a
question about the past ("before", "used to", "Where did she live?") the statements of the value
before; "when" questions the statement of the change; a question naming a date (or a search
``as_of`` one) the statements of the value that held then.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime

from memory_graph.facts import (
    CANCELLED,
    CURRENT,
    END,
    FORMER,
    PLANNED,
    PLANNED_STATUS,
    STATES,
    Period,
    Statement,
    StateQuestion,
    Timeline,
    timelines,
)
from memory_graph.records import RelationRef
from memory_graph.retrieval.fusion import Candidate
from memory_graph.store import EntityRow, GraphStore
from memory_graph.vocabulary import CONCEPT, FIRST_PERSON

#: Labels of the entities a question about a state may be about.
SUBJECT_LABELS = frozenset({"PERSON", "ORG", "CONCEPT"})
_ASKER = FIRST_PERSON | {"you", "your", "user", "we", "our"}


def answering_statements(
    question: StateQuestion,
    linked: Sequence[EntityRow],
    *,
    graph: GraphStore,
    namespace: str,
    when: datetime,
    query_words: set[str],
) -> list[Statement]:
    """The statements that answer ``question``, best first: of the subject the question names
    (the first linked entity with statements of the state; else, for a question about "me" or
    naming nobody, the namespace's subject with the most)."""
    subjects = [e.id for e in linked if e.label in SUBJECT_LABELS]
    statements = graph.state_statements(namespace, subjects=subjects, states=[question.state]) if subjects else []
    by_subject: dict[int, list[Statement]] = {}
    for s in statements:
        by_subject.setdefault(s.subject, []).append(s)
    subject = next((e for e in subjects if e in by_subject), None)
    if subject is None:
        if subjects and not (query_words & _ASKER):
            return []
        everyone = graph.state_statements(namespace, states=[question.state])
        counts = Counter(s.subject for s in everyone)
        if not counts:
            return []
        subject = counts.most_common(1)[0][0]
        by_subject = {subject: [s for s in everyone if s.subject == subject]}
    line = timelines(by_subject[subject])[(subject, question.state)]
    values = {e.id for e in linked}
    state = STATES.get(question.state)
    # The names the question gives that may be values of the state ("the job at Kestrel Health").
    asked = frozenset(
        e.id
        for e in linked
        if e.id != subject
        and state is not None
        and e.label in state.values
        and e.label != CONCEPT
        and e.name[:1].isupper()
    )
    return _answer(line, question, values, when, asked=asked)


def _answer(
    line: Timeline, question: StateQuestion, values: set[int], when: datetime, *, asked: frozenset[int] = frozenset()
) -> list[Statement]:
    named = [p for p in line.periods if p.target in values]  # "before Copenhagen", "move to Lisbon"
    if question.when == "change" and asked and not any(p.target in asked for p in line.periods):
        # "When did Priya accept the job at Kestrel Health?": a value the timeline does not know;
        # the start of another value is no answer.
        return []
    now = line.at(when)
    if question.when == "present":
        # No value now ("I quit Vestas"): nothing to put first; the signals decide.
        return _stating(now) if now is not None else []
    if question.when == "ended":
        ends = [(p, p.ended_by) for p in (named or line.periods) if p.ended_by is not None and p.ended_by.role == END]
        return [ends[-1][1], *_stating(ends[-1][0])] if ends else []
    if question.when == "date" and question.at is not None:
        then = line.at(question.at)
        return _stating(then) if then is not None else []
    anchor = named[-1] if named else now or (line.periods[-1] if line.periods else None)
    if anchor is None:
        return []
    if question.when == "change":
        if question.ends:
            return [anchor.ended_by] if anchor.ended_by is not None else []
        # The statement that started it: a period known only from its end ("my last day at
        # Fernwood was Friday") says nothing of when it began.
        return [s for s in anchor.statements if s.role != END][:1]
    before = line.before(anchor) if (named or now is not None) else anchor
    if before is None:
        return []
    # The value just before first, then the older ones, latest first: "used to" may mean any.
    older = [p for p in reversed(line.periods) if p is not before and p is not anchor and p.end is not None]
    return _stating(before) + [p.statements[0] for p in older if p.end is not None and p.end <= (before.end or when)]


def _stating(period: Period) -> list[Statement]:
    """A period's statements: the first that states it as a fact (a plan only says it will
    hold), then the latest restatements, then the plans."""
    facts = [s for s in period.statements if s.modality != PLANNED]
    plans = [s for s in period.statements if s.modality == PLANNED]
    first, rest = facts[:1], facts[1:]
    return first + sorted(rest, key=lambda s: (s.said, s.order), reverse=True) + plans


def favour(fused: dict[str, Candidate], statements: Sequence[Statement], share: float) -> None:
    """Put the chunks of ``statements`` first, in their order: each gains what lifts it above the
    best other chunk (a turn no signal found enters so). Found this way counts as a graph reason."""
    chunks = list(dict.fromkeys(s.chunk_id for s in statements))
    if not chunks:
        return
    others = [c.score for cid, c in fused.items() if cid not in chunks]
    top = max(others, default=0.0)
    for rank, cid in enumerate(chunks, 1):
        candidate = fused.setdefault(cid, Candidate())
        gain = max(0.0, top - candidate.score) + share * (len(chunks) - rank + 1)
        candidate.score += gain
        candidate.gains["state"] = candidate.gains.get("state", 0.0) + gain
        candidate.reasons.add("graph")


def annotate(
    relations: Mapping[str, list[RelationRef]], *, graph: GraphStore, namespace: str, when: datetime
) -> dict[str, list[RelationRef]]:
    """``relations`` with each state's status at ``when`` (current, former, planned) and its
    period, from the timelines of their subjects (one read for all of them)."""
    wanted = {(r.source.id, r.state) for rs in relations.values() for r in rs if r.state}
    if not wanted:
        return dict(relations)
    subjects = sorted({subject for subject, _ in wanted})
    states = sorted({state for _, state in wanted if state})
    lines = timelines(graph.state_statements(namespace, subjects=subjects, states=states))
    out: dict[str, list[RelationRef]] = {}
    for cid, refs in relations.items():
        out[cid] = [_with_status(r, lines, when) for r in refs]
    return out


def _with_status(ref: RelationRef, lines: Mapping[tuple[int, str], Timeline], when: datetime) -> RelationRef:
    if not ref.state or (line := lines.get((ref.source.id, ref.state))) is None:
        return ref
    status, start, end = line.status(ref.target.id, when)
    return dataclasses.replace(ref, status=status, valid_from=start, valid_until=end)


_ORDER = {CURRENT: 0, PLANNED_STATUS: 1, None: 2, FORMER: 3, CANCELLED: 4}


def by_status(relations: Sequence[RelationRef]) -> list[RelationRef]:
    """Current values first, then planned ones, the relations that are no state's, former values
    last (each group in its order)."""
    return sorted(relations, key=lambda r: _ORDER.get(r.status, 2))
