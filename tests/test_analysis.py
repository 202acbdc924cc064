"""Analysis helpers on real stores: networkx graphs, DataFrames, export, neighbourhoods, duplicates,
explanations, and the pictures (offline HTML, PNG).

Most tests write a hand-built extraction through the real :class:`GraphStore` of the ``manager``
fixture (SQLite and PostgreSQL), so the graph is known exactly; the search explanations run the
real pipeline and embeddings end to end.
"""

from __future__ import annotations

import gc
import hashlib
import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import matplotlib
import networkx as nx
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt

import memory_graph as mg
from memory_graph import (
    ConfigError,
    EntityNotFoundError,
    InputError,
    MemoryManager,
    Settings,
    graph_view,
)
from memory_graph.records import ExtractedEntity, ExtractedRelation, Extraction
from memory_graph.store import ChunkWrite, DocumentWrite
from memory_graph.vocabulary import normalize_key

NS = "g"
# A remote reference: an attribute, a stylesheet or a CSS import that would make the browser fetch.
REMOTE_REFERENCE = re.compile(
    r"""(?:\b(?:src|href|srcset|data)\s*=\s*["']?\s*(?:https?:)?//)|<link\b|<script\b[^>]*\bsrc\s*=|@import|url\(\s*["']?\s*(?:https?:)?//""",
    re.IGNORECASE,
)

# (text, observed day, entities as (surface, label, canonical name), relations as (source, predicate, target))
DOCS = [
    ("Alice Smith joined Acme in Berlin.", 1, [("Alice Smith", "PERSON", None), ("Acme", "ORG", None), ("Berlin", "GPE", None)],
     [(0, "join", 1), (1, "in", 2)]),
    ("Berlin is in Germany.", 2, [("Berlin", "GPE", None), ("Germany", "GPE", None)], [(0, "in", 1)]),
    ("Alice Smith knows Bob.", 3, [("Alice Smith", "PERSON", None), ("Bob", "PERSON", None)], [(0, "know", 1)]),
    ("Bob married Carol.", 4, [("Bob", "PERSON", None), ("Carol", "PERSON", None)], [(0, "marry", 1)]),
    ("Carol visited Dave.", 5, [("Carol", "PERSON", None), ("Dave", "PERSON", None)], [(0, "visit", 1)]),
    ("Alice called Acme about the order.", 6, [("Alice", "PERSON", None), ("Acme", "GPE", None)],
     [(0, "mentioned with", 1)]),
    ("Bob, that is Robert Jones, waved.", 7, [("Bob", "PERSON", "Robert Jones")], []),
]  # fmt: skip


def _write(mm: MemoryManager, namespace: str, text: str, day: int, entities: list, relations: list) -> None:
    extraction = Extraction(
        entities=[
            ExtractedEntity(
                text=surface,
                label=label,
                key=normalize_key(name or surface),
                name=name or surface,
                start=text.index(surface),
                end=text.index(surface) + len(surface),
                sent_start=0,
                sent_end=len(text),
            )
            for surface, label, name in entities
        ],
        relations=[
            ExtractedRelation(
                source=s,
                predicate=p,
                target=t,
                pattern="test",
                confidence=0.9,
                sentence=text,
                sent_start=0,
                sent_end=len(text),
            )
            for s, p, t in relations
        ],
    )
    digest = hashlib.sha256(text.encode()).hexdigest()
    doc_id = uuid.uuid4().hex
    mm.graph.write_documents(
        [
            DocumentWrite(
                id=doc_id,
                namespace=namespace,
                doc_key=f"sha256:{digest}",
                external_id=None,
                source="test",
                text=text,
                content_hash=digest,
                metadata={},
                observed_at=datetime(2025, 1, day, 12, tzinfo=UTC),
                chunks=[ChunkWrite(uuid.uuid4().hex, 0, 0, len(text), text, digest, extraction)],
            )
        ]
    )


@pytest.fixture
def mm(manager: MemoryManager) -> MemoryManager:
    """The real manager with a known graph in namespace "g" and one lookalike entity elsewhere."""
    for text, day, entities, relations in DOCS:
        _write(manager, NS, text, day, entities, relations)
    _write(manager, "other", "Acme opened.", 9, [("Acme", "ORG", None)], [])
    return manager


def _id(graph: nx.MultiDiGraph, name: str, label: str | None = None) -> int:
    (node,) = [n for n, d in graph.nodes(data=True) if d["name"] == name and (label is None or d["label"] == label)]
    return node


# -- graphs and frames ------------------------------------------------------------------------------


def test_analysis_to_networkx_nodes_and_edges(mm: MemoryManager) -> None:
    graph = mg.to_networkx(mm, namespace=NS)
    names = sorted((d["name"], d["label"]) for _, d in graph.nodes(data=True))
    assert names == sorted([("Alice Smith", "PERSON"), ("Acme", "ORG"), ("Berlin", "GPE"), ("Germany", "GPE"), ("Bob", "PERSON"),
                            ("Carol", "PERSON"), ("Dave", "PERSON"), ("Alice", "PERSON"), ("Acme", "GPE"), ("Robert Jones", "PERSON")])  # fmt: skip
    berlin = graph.nodes[_id(graph, "Berlin")]
    assert berlin["mentions"] == 2 and berlin["key"] == "berlin" and berlin["namespace"] == NS
    assert berlin["first_seen"].startswith("2025-01-01") and berlin["last_seen"].startswith("2025-01-02")
    edges = {
        (graph.nodes[u]["name"], d["predicate"], graph.nodes[v]["name"]): (k, d)
        for u, v, k, d in graph.edges(keys=True, data=True)
    }
    assert set(edges) == {("Alice Smith", "join", "Acme"), ("Acme", "in", "Berlin"), ("Berlin", "in", "Germany"),
                          ("Alice Smith", "know", "Bob"), ("Bob", "marry", "Carol"), ("Carol", "visit", "Dave")}  # fmt: skip
    key, join = edges[("Alice Smith", "join", "Acme")]
    assert isinstance(key, int)
    assert join["weight"] == 1 and join["confidence"] == pytest.approx(0.9)
    assert join["evidence"] == "Alice Smith joined Acme in Berlin."
    everything = mg.to_networkx(mm)
    assert everything.number_of_nodes() == graph.number_of_nodes() + 1  # the other namespace's Acme


def test_analysis_frames_columns(mm: MemoryManager) -> None:
    entities = mg.entities_frame(mm, namespace=NS)
    assert list(entities.columns) == [
        "id",
        "namespace",
        "label",
        "key",
        "name",
        "attributes",
        "mention_count",
        "first_seen",
        "last_seen",
    ]
    assert len(entities) == 10 and set(entities["namespace"]) == {NS}
    assert str(entities["first_seen"].dt.tz) == "UTC"
    relations = mg.relations_frame(mm, namespace=NS)
    assert list(relations.columns) == ["id", "namespace", "source_id", "source", "source_label", "predicate", "target_id", "target",
                                       "target_label", "surface", "source_phrase", "target_phrase", "count", "confidence",
                                       "first_seen", "last_seen", "evidence", "state", "status", "valid_from",
                                       "valid_until"]  # fmt: skip
    row = relations[relations["predicate"] == "marry"].iloc[0]
    assert (row["source"], row["source_label"], row["target"], row["count"]) == ("Bob", "PERSON", "Carol", 1)
    # Names in one sentence with no stated relation are a search signal, not a fact: only on request.
    assert "mentioned with" not in set(relations["predicate"])
    every = mg.relations_frame(mm, namespace=NS, cooccurrence=True)
    assert len(every) == len(relations) + 1
    assert set(every["predicate"]) - set(relations["predicate"]) == {"mentioned with"}
    assert mg.to_networkx(mm, namespace=NS, cooccurrence=True).number_of_edges() == len(every)
    mentions = mg.mentions_frame(mm, namespace=NS)
    assert list(mentions.columns) == [
        "id",
        "namespace",
        "entity_id",
        "chunk_id",
        "document_id",
        "text",
        "start",
        "end",
        "observed_at",
    ]
    assert len(mentions) == sum(len(entities) for _, _, entities, _ in DOCS)
    assert mentions["observed_at"].is_monotonic_increasing


def test_analysis_export_round_trip(mm: MemoryManager, tmp_path: Path) -> None:
    graph = mg.to_networkx(mm, namespace=NS)
    counts = mg.export_graph(mm, tmp_path / "g.graphml", fmt="graphml", namespace=NS)
    assert counts == {"nodes": graph.number_of_nodes(), "edges": graph.number_of_edges()}
    back = nx.read_graphml(tmp_path / "g.graphml", node_type=int, force_multigraph=True)
    assert dict(back.nodes(data=True)) == dict(graph.nodes(data=True))
    assert sorted((u, v, d["predicate"], d["weight"], d["evidence"]) for u, v, d in back.edges(data=True)) == sorted(
        (u, v, d["predicate"], d["weight"], d["evidence"]) for u, v, d in graph.edges(data=True)
    )
    mg.export_graph(mm, str(tmp_path / "g.json"), fmt="json", namespace=NS)
    data = json.loads((tmp_path / "g.json").read_text(encoding="utf-8"))
    again = nx.node_link_graph(data, edges="edges")
    assert nx.utils.graphs_equal(again, graph)
    with pytest.raises(ConfigError, match="unknown export format"):
        mg.export_graph(mm, tmp_path / "g.gexf", fmt="gexf")
    with pytest.raises(ConfigError, match="cannot write"):
        mg.export_graph(mm, tmp_path / "missing" / "g.json", fmt="json")


def test_analysis_neighbourhood_hop_bound(mm: MemoryManager) -> None:
    graph = mg.to_networkx(mm, namespace=NS)
    alice = _id(graph, "Alice Smith")
    names = {
        hops: {d["name"]: d["hop"] for _, d in mg.neighbourhood(mm, alice, namespace=NS, hops=hops).nodes(data=True)}
        for hops in range(4)
    }
    assert names[0] == {"Alice Smith": 0}
    assert names[1] == {"Alice Smith": 0, "Acme": 1, "Bob": 1}
    assert names[2] == {"Alice Smith": 0, "Acme": 1, "Bob": 1, "Berlin": 2, "Carol": 2}
    assert names[3] == names[2] | {"Germany": 3, "Dave": 3}
    sub = mg.neighbourhood(mm, "alice smith", namespace=NS, hops=2, graph=graph)
    assert sub.graph["center"] == alice and sub.graph["hops"] == 2
    assert {d["predicate"] for _, _, d in sub.edges(data=True)} == {
        "join",
        "in",
        "know",
        "marry",
    }  # induced: Berlin→Germany left out
    assert all(sub.nodes[n] | {"hop": 0} == graph.nodes[n] | {"hop": 0} for n in sub)
    narrow = mg.neighbourhood(mm, alice, namespace=NS, hops=2, fanout=1)
    assert narrow.number_of_nodes() == 3 and sorted(d for _, d in narrow.nodes(data="hop")) == [0, 1, 2]
    with pytest.raises(EntityNotFoundError):
        mg.neighbourhood(mm, "Zelda", namespace=NS)
    with pytest.raises(EntityNotFoundError):
        mg.neighbourhood(mm, alice, namespace="other")
    with pytest.raises(InputError):
        mg.neighbourhood(mm, alice, namespace=NS, hops=-1)
    with pytest.raises(InputError):
        mg.neighbourhood(mm, alice, namespace=NS, fanout=0)


def test_analysis_mention_timeline(mm: MemoryManager) -> None:
    timeline = mg.mention_timeline(mm, "Berlin", namespace=NS)
    assert list(timeline.columns) == [
        "observed_at",
        "entity_id",
        "entity",
        "document_id",
        "chunk_id",
        "text",
        "start",
        "end",
        "sentence",
    ]
    assert list(timeline["sentence"]) == ["Alice Smith joined Acme in Berlin.", "Berlin is in Germany."]
    assert list(timeline["observed_at"].dt.day) == [1, 2] and set(timeline["entity"]) == {"Berlin"}
    by_id = mg.mention_timeline(mm, int(timeline["entity_id"].iloc[0]), namespace=NS)
    assert by_id.equals(timeline)
    with pytest.raises(EntityNotFoundError):
        mg.mention_timeline(mm, "Berlin", namespace="other")


def test_analysis_duplicate_candidates(mm: MemoryManager) -> None:
    frame = mg.duplicate_candidates(mm, namespace=NS)
    assert list(frame.columns) == ["namespace", "reason", "match", "id_a", "name_a", "label_a", "mentions_a",
                                   "id_b", "name_b", "label_b", "mentions_b"]  # fmt: skip
    found = {(r.reason, r.match, frozenset([(r.name_a, r.label_a), (r.name_b, r.label_b)])) for r in frame.itertuples()}
    assert found == {
        ("same_key", "acme", frozenset([("Acme", "ORG"), ("Acme", "GPE")])),
        ("shared_alias", "bob", frozenset([("Bob", "PERSON"), ("Robert Jones", "PERSON")])),
        ("short_name", "alice", frozenset([("Alice", "PERSON"), ("Alice Smith", "PERSON")])),
    }
    assert list(frame["reason"]) == ["same_key", "shared_alias", "short_name"]
    assert (frame["id_a"] < frame["id_b"]).all()
    assert set(mg.duplicate_candidates(mm, namespace=NS, short_name_labels=())["reason"]) == {
        "same_key",
        "shared_alias",
    }
    everywhere = mg.duplicate_candidates(mm)  # the other namespace's Acme pairs with nothing
    assert len(everywhere) == 3 and set(everywhere["namespace"]) == {NS}


# -- search explanations (real pipeline and embeddings) -----------------------------------------------


def test_analysis_explanations(manager: MemoryManager) -> None:
    manager.add_many(
        [
            {"text": "Alice works at Acme in Berlin.", "external_id": "m1"},
            {"text": "Acme builds rockets for the European space agency.", "external_id": "m2"},
            {"text": "Bob likes sailing on weekends.", "external_id": "m3"},
        ],
        namespace="x",
    )
    explanations = manager.explain("Where does Alice work?", namespace="x", k=3)
    frame = mg.explanations_frame(explanations, config=manager.search_config)
    assert list(frame.columns) == ["position", "chunk_id", "external_id", "score", "reasons", "vector", "keyword", "entity", "graph",
                                   "graph_path", "text", "score_vector", "score_keyword", "score_entity", "score_graph",
                                   "score_turn", "score_answer", "score_state"]  # fmt: skip
    assert list(frame["position"]) == list(range(1, len(explanations) + 1))
    assert frame.iloc[0]["external_id"] == "m1"
    parts = frame[[c for c in frame.columns if c.startswith("score_")]].sum(axis=1)
    assert parts.round(6).tolist() == pytest.approx(frame["score"].tolist(), abs=2e-6)
    assert frame.iloc[0]["score_answer"] > 0  # "Where…": m1 names a place (Berlin) the question does not
    for x, row in zip(explanations, frame.itertuples(), strict=True):
        assert {s for s in ("vector", "keyword", "entity", "graph") if not _missing(getattr(row, s))} == set(x.ranks)
    assert "Alice" in {e.name for e in explanations[0].linked_entities}
    paths = mg.explanation_graph(explanations)
    linked = {e.id for e in explanations[0].linked_entities}
    assert set(paths.graph["linked"]) == linked
    assert all(paths.nodes[n]["linked"] == (n in linked) for n in paths)
    assert {k for _, _, k in paths.edges(keys=True)} == {r.id for x in explanations for r in x.graph_relations}
    assert mg.explanations_frame([]).empty


def _missing(value: object) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


# -- open_memory --------------------------------------------------------------------------------------


def test_analysis_open_memory_temporary_store_is_removed() -> None:
    mm = mg.open_memory(namespace="demo")
    data_dir = mm.settings.data_dir
    assert data_dir.name.startswith("memory-graph-") and data_dir.is_dir()
    assert mm.settings.namespace == "demo" and mm.stats("demo").documents == 0
    mm.close()
    del mm
    gc.collect()
    assert not data_dir.exists()


def test_analysis_open_memory_named_store_and_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.md").write_text("Peggy visited Paris with Quentin.\n")
    monkeypatch.setenv("MEMORY_GRAPH_DATA_DIR", str(tmp_path / "data"))
    with mg.open_memory(examples=[corpus], namespace="demo") as mm:
        assert mm.settings.data_dir == tmp_path / "data"
        assert mm.stats("demo").documents == 1
    (corpus / "b.md").write_text("Quentin lives in Lyon.\n")
    with mg.open_memory(Settings(data_dir=tmp_path / "data"), examples=[corpus], namespace="demo") as mm:
        assert mm.stats("demo").documents == 1  # the namespace had memories: nothing ingested
    with pytest.raises(InputError):
        mg.open_memory(Settings(data_dir=tmp_path / "data"), examples=[tmp_path / "nowhere"], namespace="empty")


# -- pictures -----------------------------------------------------------------------------------------


def test_graph_view_html_is_offline_and_escaped(mm: MemoryManager, tmp_path: Path) -> None:
    _write(mm, NS, "Alice Smith met </script><img src=x onerror=alert(1)>.", 8,
           [("Alice Smith", "PERSON", None), ("</script><img src=x onerror=alert(1)>", "ORG", None)], [(0, "meet", 1)])  # fmt: skip
    sub = mg.neighbourhood(mm, "Alice Smith", namespace=NS, hops=2)
    page = mg.graph_html(sub, title="Alice <b>Smith</b>")
    assert page.startswith("<!DOCTYPE html>") and "new vis.Network(" in page
    assert "vis-network" in page and len(page) > 100_000  # the library itself is inlined
    assert not REMOTE_REFERENCE.search(page), REMOTE_REFERENCE.search(page)
    # Every URL on the page comes from vis-network's own license comments, not from our template.
    vis_js, vis_css = graph_view.vis_assets()
    ours = page.replace(vis_js, "").replace(vis_css, "")
    assert len(ours) < 50_000 and "http" not in ours
    assert page.count("</script>") == 2 and "<img" not in page  # user text cannot close the script
    assert "Alice &lt;b&gt;Smith&lt;/b&gt;" in page
    data = json.loads(re.search(r"var data = (\{.*?\});\n", page).group(1))
    assert {n["label"] for n in data["nodes"]} >= {
        "Alice Smith",
        "Acme",
        "Bob",
        "</script><img src=x onerror=alert(1)>",
    }
    assert {e["label"] for e in data["edges"]} >= {"join", "know", "meet"}
    center = next(n for n in data["nodes"] if n["label"] == "Alice Smith")
    assert center["borderWidth"] > 1
    fragment = mg.graph_html(sub, fragment=True)
    assert fragment.startswith("<div") and "<html" not in fragment and "vis.Network" in fragment
    path = mg.write_graph_html(sub, tmp_path / "view.html", title="Alice")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_graph_view_draw_graph_png(mm: MemoryManager, tmp_path: Path) -> None:
    sub = mg.neighbourhood(mm, "Alice Smith", namespace=NS, hops=3)
    fig = mg.draw_graph(sub, title="Alice", path=tmp_path / "n.png")
    try:
        assert (tmp_path / "n.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        texts = {t.get_text() for t in fig.axes[0].texts}
        assert {"Alice Smith", "Dave", "join"} <= texts
    finally:
        plt.close(fig)
    fig, ax = plt.subplots()
    try:
        assert mg.draw_graph(nx.MultiDiGraph(), ax=ax) is fig  # an empty graph draws nothing, without error
    finally:
        plt.close(fig)


def test_graph_view_label_colors_are_stable() -> None:
    colors = mg.label_colors(["PERSON", "ZZZ", "AAA", "ORG"])
    assert colors["PERSON"] == mg.label_colors(["PERSON"])["PERSON"]
    assert colors["AAA"] != colors["ZZZ"] and len(set(colors.values())) == 4
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in colors.values())
