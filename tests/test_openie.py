"""Clauses (memory_graph.openie) and the relations the graph keeps of them, with the shipped pipeline."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from memory_graph.extraction import Extractor
from memory_graph.openie import clauses
from memory_graph.records import Extraction


def tuples(nlp, text: str) -> list[tuple[str, str, tuple[str, ...]]]:
    doc = nlp(text)
    return [
        (c.subject.text, c.relation_text, tuple(a.text for a in c.arguments)) for s in doc.sents for c in clauses(s)
    ]


def relations(x: Extraction, text: str) -> set[tuple[str, str, str]]:
    """``(source, predicate, target)`` by canonical names, stated relations only."""
    return {
        (x.entities[r.source].name, r.predicate, x.entities[r.target].name)
        for r in x.relations
        if r.pattern != "cooccur"
    }


# -- clauses ---------------------------------------------------------------------------------------


def test_openie_passive_keeps_its_slots(nlp) -> None:
    found = tuples(nlp, "The bridge was designed by Gustave Eiffel in 1884.")
    assert ("The bridge", "was designed by", ("Gustave Eiffel", "in 1884")) in found


def test_openie_relative_clause_subject_is_the_antecedent(nlp) -> None:
    found = tuples(nlp, "Blagoja Celeski is an Australian footballer who plays for the Newcastle Jets.")
    assert ("Blagoja Celeski", "is", ("an Australian footballer",)) in found
    assert ("Blagoja Celeski", "plays for", ("the Newcastle Jets",)) in found


def test_openie_coordinated_verbs_share_the_subject(nlp) -> None:
    found = tuples(nlp, "He served as the first Prime Minister of Australia and became a founding justice.")
    assert ("He", "served as", ("the first Prime Minister of Australia",)) in found
    assert ("He", "became", ("a founding justice",)) in found


def test_openie_infinitive_is_one_relation(nlp) -> None:
    assert tuples(nlp, "Alice wants to visit Paris.") == [("Alice", "wants to visit", ("Paris",))]


def test_openie_copula_with_preposition(nlp) -> None:
    assert ("The Louvre", "is in", ("Paris",)) in tuples(nlp, "The Louvre is in Paris.")


@pytest.mark.parametrize(
    ("text", "modality"),
    [
        ("Does Lena work at Barco?", "question"),
        ("Lena does not work at Barco.", "negated"),
        ("If Lena moves to Ghent, she might join Barco.", "hypothetical"),
        ("Lena will join Barco.", "planned"),
        ("Lena joined Barco.", "asserted"),
        ("Lena works at Barco.", "asserted"),
    ],
)
def test_openie_modality(nlp, text: str, modality: str) -> None:
    doc = nlp(text)
    found = [c for c in clauses(next(doc.sents)) if "Barco" in " ".join(a.text for a in c.arguments)]
    assert [c.modality if not c.negated else "negated" for c in found] == [modality]


# -- relations: the newcomer's sentences (issue 25) ------------------------------------------------


def test_relations_instead_of_is_not_a_relation(extractor: Extractor) -> None:
    text = "As of January 2026, Lena works at Bispebjerg Hospital instead of Rigshospitalet."
    x = extractor.extract(text, observed_at=datetime(2026, 2, 1, tzinfo=UTC))
    found = [(x.entities[r.target].name, r.predicate, r.role) for r in x.relations]
    assert ("Bispebjerg Hospital", "works at", "hold") in found
    # Rigshospitalet: only as the value that ended, never as a place she works "instead".
    assert [f for f in found if f[0] == "Rigshospitalet"] == [("Rigshospitalet", "works at", "end")]
    assert not [r for r in x.relations if x.entities[r.target].label == "DATE"]


def test_relations_none_from_a_question(extractor: Extractor) -> None:
    x = extractor.extract("How is Lena finding Copenhagen?")
    # No "find": the two are only mentioned together, a search signal no view shows.
    assert [(r.predicate, r.pattern) for r in x.relations] == [("mentioned with", "cooccur")]


def test_relations_recurring_time_is_no_date_and_the_place_is_the_verbs(extractor: Extractor) -> None:
    text = "The book club meets on the first Thursday of every month at Café Nord."
    x = extractor.extract(text, observed_at=datetime(2026, 12, 3, tzinfo=UTC))
    assert relations(x, text) == {("book club", "meet at", "Café Nord")}


def test_relations_live_with_someone_is_not_the_city_with_them(extractor: Extractor) -> None:
    text = "I live in Kyoto with my wife."
    x = extractor.extract(text, speaker="Omar")
    found = relations(x, text)
    assert ("Omar", "live with", "wife") in found
    assert ("Omar", "lives in", "Kyoto") in found
    assert not [f for f in found if f[0] == "Kyoto"]


def test_relations_an_arranged_visit_is_no_dated_event(extractor: Extractor) -> None:
    said = datetime(2025, 3, 1, tzinfo=UTC)
    planned = extractor.extract("My sister is visiting on 15 March 2025.", speaker="Maya", observed_at=said)
    assert not [r for r in planned.relations if planned.entities[r.target].label == "DATE"]
    later = datetime(2025, 3, 20, tzinfo=UTC)
    text = "My sister visited me on 15 March 2025."
    happened = extractor.extract(text, speaker="Maya", observed_at=later)
    assert ("sister", "visit on", "2025-03-15") in relations(happened, text)


def test_relations_negated_and_modal_state_nothing(extractor: Extractor) -> None:
    for text in ("Lena never worked at Barco.", "Lena might join Barco.", "If we move to Ghent, Lena joins Barco."):
        x = extractor.extract(text, speaker="Omar")
        stated = [r for r in x.relations if r.pattern != "cooccur" and r.modality != "planned"]
        assert not [r for r in stated if x.entities[r.target].name == "Barco"], text


# -- relations: surface forms ------------------------------------------------------------------------


def test_relations_keep_the_words_and_the_full_phrases(extractor: Extractor) -> None:
    text = "Tom Bradley served as the first Prime Minister of Australia."
    x = extractor.extract(text)
    (rel,) = [r for r in x.relations if x.entities[r.target].name == "Australia"]
    assert rel.predicate == "serve as prime minister of"
    assert rel.surface == "served as the first Prime Minister of"
    assert rel.source_span is not None and rel.target_span is not None
    assert text[slice(*rel.source_span)] == "Tom Bradley"
    assert text[slice(*rel.target_span)] == "Australia"
    (role,) = [r for r in x.relations if r.predicate == "serve as"]
    assert role.target_span is not None and text[slice(*role.target_span)] == "the first Prime Minister of Australia"


def test_relations_passive_stays_passive(extractor: Extractor) -> None:
    text = "Northwind Labs was founded by Maya Patel in 2019."
    x = extractor.extract(text)
    found = relations(x, text)
    assert ("Northwind Labs", "be founded by", "Maya Patel") in found
    assert not [f for f in found if f[0] == "Maya Patel"]  # the agent is not made the subject


def test_relations_it_stands_for_the_named_subject_before(extractor: Extractor) -> None:
    text = "Northwind Labs opened an office in Aarhus. It makes wind turbines."
    x = extractor.extract(text)
    assert ("Northwind Labs", "make", "wind turbines") in relations(x, text)
    unnamed = extractor.extract("I bought a car. It is red.", speaker="Maya")
    assert not [r for r in unnamed.relations if unnamed.entities[r.source].name == "car"]


def test_relation_reading_falls_back_to_the_graphs_words() -> None:
    from memory_graph.records import EntityRef, RelationRef

    bob, acme = EntityRef(1, "Bob", "PERSON"), EntityRef(2, "Acme", "ORG")
    old = RelationRef(7, bob, "be ceo of", acme, "Bob is the CEO of Acme.", 0.8)
    assert old.reading == "Bob be ceo of Acme"  # evidence stored before surface forms were kept
    kept = RelationRef(7, bob, "be ceo of", acme, "Bob is the CEO of Acme.", 0.8, surface="is the CEO of",
                       source_phrase="Bob", target_phrase="Acme")  # fmt: skip
    assert kept.reading == "Bob is the CEO of Acme"
