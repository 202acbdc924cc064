"""The shipped pipeline (models/en_memory_graph) on sentences that are not in its training data."""

from __future__ import annotations

import json
from pathlib import Path

MODEL = Path(__file__).resolve().parents[1] / "models" / "en_memory_graph"


def test_pipeline_components_and_card() -> None:
    meta = json.loads((MODEL / "meta.json").read_text())
    assert meta["lang"] == "en" and meta["name"] == "memory_graph"
    assert meta["pipeline"] == [
        "tok2vec",
        "tagger",
        "morphologizer",
        "parser",
        "lemmatizer",
        "attribute_ruler",
        "ner",
        "entity_ruler",
    ]
    assert {"ents_f", "dep_las", "pos_acc"} <= set(meta["performance"])
    assert "CC BY-SA 4.0" in (MODEL / "MODEL_CARD.md").read_text()
    size = sum(p.stat().st_size for p in MODEL.rglob("*") if p.is_file())
    assert size <= 50 * 1024 * 1024


def test_pipeline_entities(nlp) -> None:
    doc = nlp("Yesterday Maria Gonzalez flew from Toronto to meet engineers at Siemens.")
    ents = {(e.text, e.label_) for e in doc.ents}
    assert ("Maria Gonzalez", "PERSON") in ents
    assert ("Toronto", "LOC") in ents
    assert ("Siemens", "ORG") in ents
    assert ("Yesterday", "DATE") in ents


def test_pipeline_dependency_arc_and_sentences(nlp) -> None:
    doc = nlp("The committee approved the new budget on Tuesday. Everyone went home early.")
    approved = next(t for t in doc if t.text == "approved")
    assert approved.dep_ == "ROOT"
    assert next(t for t in doc if t.text == "committee").head == approved
    assert next(t for t in doc if t.text == "budget").dep_ == "obj"
    assert len(list(doc.sents)) == 2


def test_pipeline_lemmas_and_tags(nlp) -> None:
    doc = nlp("The children were running across the fields and bought two mice.")
    lemmas = {t.text: t.lemma_ for t in doc}
    assert lemmas["children"] == "child"
    assert lemmas["were"] == "be"
    assert lemmas["running"] == "run"
    assert lemmas["mice"] == "mouse"
    assert lemmas["bought"] == "buy"
    assert next(t for t in doc if t.text == "fields").pos_ == "NOUN"


def test_pipeline_rule_entities_keep_statistical_ones(nlp) -> None:
    doc = nlp("Email paris@example.com or call 415-555-1234 by 10:30 am; it costs 20% more than $5.")
    labels = {e.label_ for e in doc.ents}
    assert {"EMAIL", "PHONE", "TIME", "PERCENT", "MONEY"} <= labels
    assert nlp.get_pipe("entity_ruler").overwrite is False


def test_pipeline_ships_the_rule_patterns_of_memory_graph_rules(nlp) -> None:
    import json

    from memory_graph.rules import rule_patterns

    def canonical(patterns: list) -> list[str]:
        return sorted(json.dumps(p, sort_keys=True) for p in patterns)

    assert canonical(nlp.get_pipe("entity_ruler").patterns) == canonical(rule_patterns())
