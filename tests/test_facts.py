"""Knowledge updates: which value of a state is current, which were replaced, and since when.

Timelines are pure (no store); extraction runs the shipped pipeline; the end-to-end tests run
on SQLite and PostgreSQL with the real embedder.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from memory_graph import MemoryManager
from memory_graph.extraction import Extractor
from memory_graph.facts import (
    ASSERTED,
    CANCEL,
    CANCELLED,
    CURRENT,
    END,
    FORMER,
    HOLD,
    PAST,
    PLANNED,
    PLANNED_STATUS,
    START,
    Statement,
    state_question,
    timeline,
)

LYON, CPH, BERLIN, LISBON, MADRID, PORTO = 1, 2, 3, 4, 5, 6


def day(month: int, year: int = 2025, d: int = 1) -> datetime:
    return datetime(year, month, d, tzinfo=UTC)


def said(target: int, role: str, when: datetime, *, at=None, until=None, modality=ASSERTED, correction=False):
    said.order += 1
    return Statement(
        7, "lives_in", target, role, modality, when, at, until, correction, target, f"c{said.order}", said.order
    )


said.order = 0
LATER = day(12, 2026)


def values(line, when=LATER):
    return [(p.target, p.start, p.end) for p in line.periods], (line.at(when).target if line.at(when) else None)


def test_facts_a_newer_statement_replaces_the_older_one() -> None:
    line = timeline([said(LYON, HOLD, day(5)), said(CPH, START, day(9))])
    assert values(line) == ([(LYON, day(5), day(9)), (CPH, day(9), None)], CPH)
    assert line.status(LYON, LATER) == (FORMER, day(5), day(9))
    assert line.status(CPH, LATER) == (CURRENT, day(9), None)
    assert line.status(CPH, day(6))[0] is None and line.at(day(6)).target == LYON  # as of June: Lyon


def test_facts_the_order_is_the_time_stated_not_the_time_said() -> None:
    """A note written later can date an earlier value: "I lived in Berlin from 2019 to 2023"."""
    line = timeline([said(LYON, HOLD, day(6)), said(BERLIN, PAST, day(7), at=day(1, 2019), until=day(1, 2024))])
    assert line.at(day(6, 2021)).target == BERLIN and line.at(LATER).target == LYON
    assert line.status(BERLIN, LATER)[0] == FORMER


def test_facts_ends_and_past_values_leave_no_current_value() -> None:
    ended = timeline([said(LYON, HOLD, day(3)), said(LYON, END, day(5))])
    assert values(ended) == ([(LYON, day(3), day(5))], None)
    used_to = timeline([said(MADRID, PAST, day(1)), said(PORTO, START, day(3)), said(LISBON, HOLD, day(8))])
    assert used_to.at(LATER).target == LISBON
    assert [p.target for p in used_to.periods] == [MADRID, PORTO, LISBON]


def test_facts_a_plan_starts_on_its_date_unless_cancelled_or_replaced() -> None:
    plan = said(LISBON, START, day(6), at=day(9), modality=PLANNED)
    line = timeline([said(LYON, HOLD, day(3)), plan])
    assert line.at(day(7)).target == LYON and line.at(LATER).target == LISBON
    assert line.status(LISBON, day(7)) == (PLANNED_STATUS, day(9), None)
    cancelled = timeline([said(LYON, HOLD, day(3)), said(BERLIN, START, day(4), at=day(6), modality=PLANNED),
                          said(BERLIN, CANCEL, day(5))])  # fmt: skip
    assert cancelled.at(LATER).target == LYON and cancelled.status(BERLIN, LATER)[0] == CANCELLED
    replaced = timeline([said(BERLIN, START, day(4), at=day(6), modality=PLANNED),
                         said(LISBON, START, day(5), at=day(7), modality=PLANNED)])  # fmt: skip
    assert replaced.at(LATER).target == LISBON
    dateless = timeline([said(LYON, HOLD, day(3)), said(BERLIN, START, day(4), modality=PLANNED)])
    assert dateless.at(LATER).target == LYON and dateless.status(BERLIN, LATER)[0] == PLANNED_STATUS


def test_facts_a_correction_takes_the_place_of_the_statement_before_it() -> None:
    line = timeline(
        [said(LYON, HOLD, day(3)), said(CPH, START, day(5)), said(LISBON, START, day(5, d=2), correction=True)]
    )
    assert values(line) == ([(LYON, day(3), day(5)), (LISBON, day(5), None)], LISBON)
    assert line.status(CPH, LATER)[0] is None  # it never held


@pytest.mark.parametrize(
    ("question", "state", "when"),
    [
        ("Where does Omar live now?", "lives_in", "present"),
        ("Where does Omar work?", "works_at", "present"),
        ("Where did Omar live before he moved?", "lives_in", "past"),
        ("Where did Sofia use to live?", "lives_in", "past"),
        ("When did Omar move to Copenhagen?", "lives_in", "change"),
        ("Who is Jonas married to?", "married_to", "present"),
        ("Where is Maya based these days?", "lives_in", "present"),
        ("Which city does Maya call home?", "lives_in", "present"),
        ("Where does Maya teach?", "works_at", "present"),
        ("Who is Maya engaged to?", "partner_of", "present"),
        ("What is Kenji's dog called now?", "has_pet", "present"),
        ("What's the name of Marta's cat?", "has_pet", "present"),
        ("Why did Daniel's dog have to wear a cone?", None, None),
        ("Is Sofia seeing anyone at the moment?", "partner_of", "present"),
        ("Which university did Emma transfer to?", "studies_at", "present"),
        ("What is the capital of France?", None, None),
    ],
)
def test_facts_questions_ask_for_a_state_at_a_time(question: str, state: str | None, when: str | None) -> None:
    found = state_question(question)
    assert (found.state, found.when) == (state, when) if state else found is None


# -- extraction -----------------------------------------------------------------------------------

JUNE = datetime(2025, 6, 1, tzinfo=UTC)


def statements(extractor: Extractor, text: str, speaker: str | None = "Omar") -> list[tuple]:
    found = extractor.extract(text, speaker=speaker, observed_at=JUNE)
    return [
        (found.entities[r.source].name, r.state, found.entities[r.target].name, r.role, r.modality, r.valid_from, r.valid_until)
        for r in found.relations
        if r.state
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I live in Lyon.", [("Omar", "lives_in", "Lyon", HOLD, ASSERTED, None, None)]),
        ("We finally moved to Copenhagen last week!",
         [("Omar", "lives_in", "Copenhagen", START, ASSERTED, datetime(2025, 5, 19, tzinfo=UTC), None)]),
        ("I used to live in Madrid.", [("Omar", "lives_in", "Madrid", PAST, ASSERTED, None, None)]),
        ("We are moving to Lisbon in September.",
         [("Omar", "lives_in", "Lisbon", START, PLANNED, datetime(2025, 9, 1, tzinfo=UTC), None)]),
        ("Big news: I accepted an offer to move to Lisbon in September.",
         [("Omar", "lives_in", "Lisbon", START, PLANNED, datetime(2025, 9, 1, tzinfo=UTC), None)]),
        ("I don't live in Paris anymore.", [("Omar", "lives_in", "Paris", END, ASSERTED, None, None)]),
        ("I lived in Berlin from 2019 to 2023.",
         [("Omar", "lives_in", "Berlin", PAST, ASSERTED, datetime(2019, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC))]),
        ("I've been working at Siemens since March 2024.",
         [("Omar", "works_at", "Siemens", HOLD, ASSERTED, datetime(2024, 3, 1, tzinfo=UTC), None)]),
        ("I got married to Sara last summer.",
         [("Omar", "married_to", "Sara", START, ASSERTED, datetime(2024, 6, 1, tzinfo=UTC), None)]),
        ("My husband Tom is a teacher.", [("Omar", "married_to", "Tom", HOLD, ASSERTED, None, None)]),
        ("I no longer live in Vienna.", [("Omar", "lives_in", "Vienna", END, ASSERTED, None, None)]),
        ("I was laid off from Accenture.", [("Omar", "works_at", "Accenture", END, ASSERTED, None, None)]),
        ("I gave notice at Accenture.", [("Omar", "works_at", "Accenture", END, ASSERTED, None, None)]),
        ("My last day at Accenture is Friday.",
         [("Omar", "works_at", "Accenture", END, ASSERTED, datetime(2025, 6, 6, tzinfo=UTC), None)]),
        ("I joined the team at Novo Nordisk in 2023.",
         [("Omar", "works_at", "Novo Nordisk", START, ASSERTED, datetime(2023, 1, 1, tzinfo=UTC), None)]),
        ("I now teach at ETH Zurich.", [("Omar", "works_at", "ETH Zurich", HOLD, ASSERTED, None, None)]),
        ("I'm now engaged to Alex.", [("Omar", "partner_of", "Alex", HOLD, ASSERTED, None, None)]),
        ("I've moved on from Accenture.", []),  # "move on": no move
        ("I got a job at Spotify.", [("Omar", "works_at", "Spotify", START, ASSERTED, None, None)]),
        ("My sister moved to Rome.", [("sister", "lives_in", "Rome", START, ASSERTED, None, None)]),
        ("We were going to move to Berlin, but it fell through.",
         [("Omar", "lives_in", "Berlin", CANCEL, ASSERTED, None, None)]),
        ("Should I move to Oslo?", []),
        ("If we move to Ghent, I'll need a bike.", []),
        ("I'd love to live in Rome someday.", []),
        ("I don't work at Google.", []),
    ],
)  # fmt: skip
def test_facts_extraction_states_what_is_stated_and_nothing_else(extractor: Extractor, text: str, expected) -> None:
    assert statements(extractor, text) == expected


MAY_19, AUG = datetime(2025, 5, 19, tzinfo=UTC), datetime(2025, 8, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # couples: "get" + a participle, a subject hung on the auxiliary, "we" with the one person named
        ("Jess and I got married last week.",
         [("Jess", "married_to", "Omar", START, ASSERTED, MAY_19, None), ("Omar", "married_to", "Jess", START, ASSERTED, MAY_19, None)]),
        ("Alice and I got engaged.",
         [("Alice", "partner_of", "Omar", START, ASSERTED, None, None), ("Omar", "partner_of", "Alice", START, ASSERTED, None, None)]),
        ("My fiancé Karim and I are getting married in August!",
         [("Omar", "partner_of", "Karim", HOLD, ASSERTED, None, None), ("Karim", "married_to", "Omar", START, PLANNED, AUG, None),
          ("Omar", "married_to", "Karim", START, PLANNED, AUG, None)]),
        ("Her name is Alice and we've been together since April.",
         [("Omar", "partner_of", "Alice", HOLD, ASSERTED, datetime(2025, 4, 1, tzinfo=UTC), None),
          ("Alice", "partner_of", "Omar", HOLD, ASSERTED, datetime(2025, 4, 1, tzinfo=UTC), None)]),
        # a partner first called "someone", named in the next sentence
        ("I've been seeing someone new. Her name is Alice.", [("Omar", "partner_of", "Alice", HOLD, ASSERTED, None, None)]),
        # a job noun that is a concept: the bare "be at"; not when a state's own phrase said it
        ("I'm a nurse at St Aldric Hospital.", [("Omar", "works_at", "St Aldric Hospital", HOLD, ASSERTED, None, None)]),
        ("I'm a student at KTH.", [("Omar", "studies_at", "KTH", HOLD, ASSERTED, None, None)]),
        ("I'm no longer at Copperleaf Software.", [("Omar", "works_at", "Copperleaf Software", END, ASSERTED, None, None)]),
        ("I teach maths at the Gymnasium Ottobrunn.", [("Omar", "works_at", "Gymnasium Ottobrunn", HOLD, ASSERTED, None, None)]),
        # employers taking on and letting go; "they" is the one organisation the text names
        ("They took me on! Harrowgate Clinic offered me the role.",
         [("Omar", "works_at", "Harrowgate Clinic", START, ASSERTED, None, None)]),
        ("They let me go. Vantage Freight is closing.", [("Omar", "works_at", "Vantage Freight", END, ASSERTED, None, None)]),
        ("I got let go from Vantage Freight.", [("Omar", "works_at", "Vantage Freight", END, ASSERTED, None, None)]),
        ("Arjun has been taken on at Vantage Freight.", [("Arjun", "works_at", "Vantage Freight", START, ASSERTED, None, None)]),
        ("I signed with Halvorsen Data yesterday.",
         [("Omar", "works_at", "Halvorsen Data", START, ASSERTED, datetime(2025, 5, 31, tzinfo=UTC), None)]),
        # a phrase two states share: the value's name says which
        ("I transferred to the University of Barcelona.",
         [("Omar", "studies_at", "University of Barcelona", START, ASSERTED, None, None)]),
        ("I transferred to Brightwater Bank.", [("Omar", "works_at", "Brightwater Bank", START, ASSERTED, None, None)]),
        # homes: sold, bought (the place on the verb), found with the "I" left out, "home is"
        ("We sold the house in Minneapolis, and now we live in a condo in St. Paul.",
         [("Omar", "lives_in", "St. Paul", HOLD, ASSERTED, None, None), ("Omar", "lives_in", "Minneapolis", END, ASSERTED, None, None)]),
        ("Dev and I bought a house in Harrogate.", [("Omar", "lives_in", "Harrogate", START, ASSERTED, None, None)]),
        ("Found a room in a shared house in Bath.", [("Omar", "lives_in", "Bath", START, ASSERTED, None, None)]),
        ("Home is now a small flat in Zurich.", [("Omar", "lives_in", "Zurich", HOLD, ASSERTED, None, None)]),
        # traps: another person's change, a question, a negation, a plan that did not happen, a meeting
        ("My brother Arjun got let go from Vantage Freight last week.",
         [("brother", "works_at", "Vantage Freight", END, ASSERTED, None, None)]),
        ("They took my brother on. Harrowgate Clinic needed a porter.", []),
        ("Sofia and Marco got married last week.",
         [("Sofia", "married_to", "Marco", START, ASSERTED, MAY_19, None),
          ("Marco", "married_to", "Sofia", START, ASSERTED, MAY_19, None)]),
        ("Should Alice and I get married?", []),
        ("We didn't sell the house in Minneapolis.", []),
        ("I almost moved to Milan.", []),
        ("I'm seeing Alice tomorrow.", []),
        ("I've been seeing Dr Patel about my knee.", []),
        ("I left my keys at the house in Minneapolis.", []),
        ("Home is where the heart is.", []),
    ],
)  # fmt: skip
def test_facts_extraction_reads_more_ways_of_stating_a_change(extractor: Extractor, text: str, expected) -> None:
    assert statements(extractor, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a change called off by its negation; staying put is where one lives
        ("So I'm not moving to Osaka after all.", [("Omar", "lives_in", "Osaka", CANCEL, ASSERTED, None, None)]),
        ("Staying in Tokyo for now.", [("Omar", "lives_in", "Tokyo", HOLD, ASSERTED, None, None)]),
        ("Northwind is letting me stay in Vancouver.", [("Omar", "lives_in", "Vancouver", HOLD, ASSERTED, None, None)]),
        # a chat's number with no owner named, a partner one has, a job taken, a first day with no "my"
        ("New UK number btw: +44 7700 900461.", [("Omar", "phone_number", "+44 7700 900461", HOLD, ASSERTED, None, None)]),
        ("I have a new boyfriend, Ahmed.", [("Omar", "partner_of", "Ahmed", START, ASSERTED, None, None)]),
        ("I've been seeing someone. Her name's Clara.", [("Omar", "partner_of", "Clara", HOLD, ASSERTED, None, None)]),
        ("I took a job with Banksia Health.", [("Omar", "works_at", "Banksia Health", START, ASSERTED, None, None)]),
        ("Long week, but first day at Okra Logistics tomorrow!",
         [("Omar", "works_at", "Okra Logistics", START, ASSERTED, None, None)]),
        # an employer the NER calls a person, a house closed on, a course, a place typed in lower case
        ("I accepted a job with Cais Arquitetos.", [("Omar", "works_at", "Cais Arquitetos", START, ASSERTED, None, None)]),
        ("We finally closed on the house in Rabat!", [("Omar", "lives_in", "Rabat", START, ASSERTED, None, None)]),
        ("Started an MTech at COEP Technological University.",
         [("Omar", "studies_at", "COEP Technological University", START, ASSERTED, None, None)]),
        ("settled in wroclaw finally.", [("Omar", "lives_in", "wroclaw", START, ASSERTED, None, None)]),
        # pets: named with the noun, after it, or in the next clause; a new one adopted or brought home
        ("We adopted a kitten, she's called Miso.", [("Omar", "has_pet", "Miso", START, ASSERTED, None, None)]),
        ("My shiba Kuri is snoring.", [("Omar", "has_pet", "Kuri", HOLD, ASSERTED, None, None)]),
        ("A beagle, we called him Biscuit.", [("Omar", "has_pet", "Biscuit", HOLD, ASSERTED, None, None)]),
        ("We brought home a puppy and named her Azuki.", [("Omar", "has_pet", "Azuki", START, ASSERTED, None, None)]),
        ("My sister has a dog called Rex.", [("sister", "has_pet", "Rex", HOLD, ASSERTED, None, None)]),
        # traps: asked to move, a stay that is a visit, a number of no one's, a question, a phone call
        ("My boss asked me to move to Berlin.", []),
        ("We stayed in Kyoto for a week.", []),
        ("I'm staying in a hotel in Lisbon.", []),
        ("The number is 0176 5550 3381.", []),
        ("Should we get a cat called Tom?", []),
        ("I called him Tom and he hung up.", []),
        ("We moved to town last year.", []),
    ],
)  # fmt: skip
def test_facts_extraction_reads_a_chats_ways_of_stating_a_change(extractor: Extractor, text: str, expected) -> None:
    assert statements(extractor, text) == expected


def test_facts_extraction_drops_the_raw_relations_of_what_states_nothing(extractor: Extractor) -> None:
    """A question or a condition is no fact: no relation between its entities is kept."""
    for text in ("Should I move to Oslo?", "If we move to Ghent, I'll need a bike."):
        found = extractor.extract(text, speaker="Omar", observed_at=JUNE)
        place = next(i for i, e in enumerate(found.entities) if e.label == "LOC")
        assert [r for r in found.relations if place in (r.source, r.target)] == []


def test_facts_lena_works_at_bispebjerg_instead_of_rigshospitalet(extractor: Extractor) -> None:
    found = statements(
        extractor, "As of January 2026, Lena works at Bispebjerg Hospital instead of Rigshospitalet.", None
    )
    january = datetime(2026, 1, 1, tzinfo=UTC)
    assert ("Lena", "works_at", "Bispebjerg Hospital", HOLD, ASSERTED, january, None) in found
    assert ("Lena", "works_at", "Rigshospitalet", END, ASSERTED, january, None) in found


# -- end to end ------------------------------------------------------------------------------------

OMAR = [
    ("o1", "Omar", "2025-05-03T10:00:00", "I live in Lyon and I work at Vestas as an engineer."),
    ("o2", "assistant", "2025-05-03T10:01:00", "Nice! How do you like Lyon?"),
    ("o3", "Omar", "2025-05-03T10:02:00", "I love it, the food in Lyon is great."),
    ("o4", "Omar", "2025-07-10T09:00:00", "Big news: I got a job offer from Novo Nordisk in Copenhagen."),
    ("o5", "Omar", "2025-09-02T18:00:00", "We finally moved to Copenhagen last week!"),
    ("o6", "Omar", "2025-09-15T08:00:00", "I just started my new job at Novo Nordisk today."),
    ("o7", "Omar", "2025-10-01T08:00:00", "My sister moved to Rome this month."),
    ("o8", "Omar", "2025-10-20T08:00:00", "We were going to move to Berlin next year, but it fell through."),
]
SOFIA = [
    ("s1", None, "2025-01-10T10:00:00", "Sofia used to live in Madrid."),
    ("s2", "Sofia", "2025-03-10T10:00:00", "I moved to Porto in February."),
    ("s3", "Sofia", "2025-08-10T10:00:00", "I live in Lisbon now, the rent is lower."),
]


def add(manager: MemoryManager, turns, namespace: str) -> None:
    manager.add_many(
        [{"text": text, "external_id": i, "metadata": {"speaker": who} if who else {}, "observed_at": at}
         for i, who, at, text in turns],
        namespace=namespace,
    )  # fmt: skip


def top(manager: MemoryManager, question: str, namespace: str, **kw) -> list[str]:
    return [h.external_id for h in manager.search(question, namespace=namespace, k=5, **kw)]


def test_facts_the_current_city_and_employer_come_first(manager: MemoryManager) -> None:
    add(manager, OMAR, "omar")
    assert top(manager, "Where does Omar live now?", "omar")[0] == "o5"
    assert top(manager, "Where does Omar work?", "omar")[0] == "o6"
    assert top(manager, "Where did Omar live before?", "omar")[0] == "o1"
    assert top(manager, "When did Omar move to Copenhagen?", "omar")[0] == "o5"
    first = manager.search("Where does Omar live now?", namespace="omar", k=1)[0]
    lives = next(r for r in first.relations if r.state == "lives_in")
    assert (lives.target.name, lives.status) == ("Copenhagen", CURRENT)


def test_facts_a_when_question_about_a_value_the_timeline_lacks_anchors_on_nothing(manager: MemoryManager) -> None:
    """ "When did Omar accept the job at Kestrel Health?" names an employer no statement gives: the
    start of his job at Novo Nordisk is no answer to put first."""
    add(manager, [*OMAR, ("o9", "Omar", "2025-11-02T08:00:00", "Kestrel Health offered me the job and I said yes on Monday.")],
        "omar")  # fmt: skip
    assert top(manager, "When did Omar accept the job at Kestrel Health?", "omar")[0] == "o9"
    assert top(manager, "When did Omar start at Novo Nordisk?", "omar")[0] == "o6"


def test_facts_as_of_returns_the_fact_valid_then(manager: MemoryManager) -> None:
    add(manager, OMAR, "omar")
    assert top(manager, "Where does Omar live?", "omar", as_of="2025-06-01")[0] == "o1"
    hit = manager.search("Where does Omar live?", namespace="omar", k=1, as_of="2025-06-01")[0]
    assert {(r.target.name, r.status) for r in hit.relations if r.state == "lives_in"} == {("Lyon", CURRENT)}
    add(manager, SOFIA, "sofia")
    assert top(manager, "Where did Sofia live in March 2025?", "sofia")[0] == "s2"


def test_facts_sofia_lives_in_lisbon_now(manager: MemoryManager) -> None:
    add(manager, SOFIA, "sofia")
    assert top(manager, "Where does Sofia live now?", "sofia")[0] == "s3"
    assert top(manager, "Where did Sofia use to live?", "sofia")[:2] == ["s2", "s1"]


TOM = [
    ("t1", "Tom", "2024-01-08T21:00:00", "Hi, I'm Tom. I live in Bristol with my girlfriend Hannah."),
    ("t2", "Tom", "2024-05-19T22:10:00", "Hannah and I split up last weekend."),
    ("t3", "Tom", "2024-06-30T14:00:00", "Found a room in a shared house in Bath and moved in on Friday."),
    ("t4", "Tom", "2024-11-11T19:30:00",
     "I've been seeing someone new. Her name is Alice and we've been together since September."),
    ("t5", "Tom", "2025-02-02T10:00:00", "My sister just moved to Cardiff."),
]  # fmt: skip


def test_facts_a_new_partner_and_home_stated_in_other_words_are_current(manager: MemoryManager) -> None:
    """ "Together since September" with the partner named before it, a room found with the "I"
    left out: current over the girlfriend and the city before; the sister's move changes nothing."""
    add(manager, TOM, "tom")
    assert top(manager, "Who is Tom's partner now?", "tom")[0] == "t4"
    assert top(manager, "Where does Tom live now?", "tom")[0] == "t3"
    assert top(manager, "Where did Tom live before Bath?", "tom")[0] == "t1"
    assert top(manager, "Who was Tom dating in March 2024?", "tom")[0] == "t1"
    hit = manager.search("Who is Tom's partner now?", namespace="tom", k=1)[0]
    alice = next(r for r in hit.relations if r.state == "partner_of" and r.target.name == "Alice")
    assert (alice.status, alice.valid_from) == (CURRENT, datetime(2024, 9, 1, tzinfo=UTC))


KENJI = [
    ("k1", "Kenji", "2024-03-02T20:00:00", "Hi, I'm Kenji. I live in Sapporo with my shiba Momo."),
    ("k2", "Kenji", "2024-06-08T18:00:00", "We're moving to Osaka on 15 July!"),
    ("k3", "assistant", "2024-06-08T18:01:00", "Osaka has wonderful food."),
    ("k4", "Kenji", "2024-07-02T19:00:00", "Change of plans: I'm not moving to Osaka after all. Staying in Sapporo."),
    ("k5", "Kenji", "2025-03-14T09:00:00", "Sad week. Momo died on Monday, she was 14."),
    ("k6", "Kenji", "2025-09-20T10:00:00", "We brought home a rescue puppy yesterday and named her Azuki."),
]  # fmt: skip


def test_facts_a_move_called_off_by_its_negation_and_a_new_pet(manager: MemoryManager) -> None:
    """ "Not moving to Osaka after all" cancels the dated plan (staying is where he lives); the
    puppy named later is the dog now, the shiba before it."""
    add(manager, KENJI, "kenji")
    for question in ("Where does Kenji live now?", "Where did Kenji live in August 2024?"):
        ranked = top(manager, question, "kenji")
        assert ranked[0] in ("k1", "k4"), ranked
        assert "k2" not in ranked or ranked.index("k4") < ranked.index("k2"), ranked
    assert top(manager, "What is Kenji's dog called now?", "kenji")[0] == "k6"
    hit = manager.search("Where does Kenji live now?", namespace="kenji", k=5)
    osaka = [r for h in hit for r in h.relations if r.state == "lives_in" and r.target.name == "Osaka"]
    assert osaka and all(r.status == CANCELLED for r in osaka)
    dogs = {r.target.name: r.status for h in hit for r in h.relations if r.state == "has_pet"}
    assert dogs.get("Momo") in (None, FORMER) and "Osaka" not in dogs


def test_facts_the_entity_shows_current_facts_first_and_former_ones_with_their_dates(manager: MemoryManager) -> None:
    add(manager, OMAR, "omar")
    view = manager.entity("Omar", namespace="omar")
    states = [(r.predicate, r.target.name, r.status) for r in view.relations if r.state]
    assert states[:2] == [("works at", "Novo Nordisk", CURRENT), ("lives in", "Copenhagen", CURRENT)]
    former = {r.target.name: r for r in view.relations if r.status == FORMER}
    assert set(former) == {"Lyon", "Vestas"}
    assert former["Lyon"].valid_from.date().isoformat() == "2025-05-03"
    assert former["Lyon"].valid_until.date().isoformat() == "2025-08-25"  # "last week", said on 2 September
    assert view.relations.index(former["Lyon"]) > view.relations.index(next(r for r in view.relations if not r.state))
    assert not any(r.target.name == "Rome" for r in view.relations)  # his sister's move


def test_facts_context_marks_replaced_facts(manager: MemoryManager) -> None:
    add(manager, OMAR, "omar")
    text = manager.context("Where did Omar live before?", namespace="omar", max_tokens=2000)
    assert "—lives in→ Lyon [former, 2025-05-03 to 2025-08-25, replaced]" in text
    assert "—lives in→ Copenhagen [current since 2025-08-25]" in text or "Copenhagen" not in text
    assert "[outdated: Omar lives in Lyon" in text


def test_facts_the_demo_knows_where_maya_lives_now(manager: MemoryManager) -> None:
    """The README demo: Maya accepted, in June 2025, an offer to move to Lisbon in September. The
    move is a plan with its date, after the message: current since then, planned before it."""
    from pathlib import Path

    from memory_graph.files import read_memory_files

    examples = Path(__file__).resolve().parents[1] / "examples"
    manager.add_many(read_memory_files([examples]), namespace="demo")
    hit = manager.search("Where does Maya live now?", namespace="demo", k=3)[0]
    assert hit.external_id == "chat-2025-06-01-01"
    lisbon = next(r for r in hit.relations if r.state == "lives_in")
    assert (lisbon.target.name, lisbon.status, lisbon.valid_from) == (
        "Lisbon",
        CURRENT,
        datetime(2025, 9, 1, tzinfo=UTC),
    )
    july = manager.entity("Maya", namespace="demo", as_of="2025-07-01")
    planned = next(r for r in july.relations if r.state == "lives_in" and r.target.name == "Lisbon")
    assert (planned.status, planned.valid_from) == (PLANNED_STATUS, datetime(2025, 9, 1, tzinfo=UTC))
