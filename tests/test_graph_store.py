"""GraphStore on SQLite and PostgreSQL: idempotent writes, counts, keyword search, cleanup."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete

from memory_graph import ConfigError, GraphStore, GraphStoreError
from memory_graph.records import ExtractedEntity, ExtractedRelation, Extraction
from memory_graph.retrieval.reads import SearchReads, keyword_terms
from memory_graph.schema import Mention
from memory_graph.store import ChunkWrite, DocumentWrite, create_store_engine
from memory_graph.store.engine import SQLITE_MMAP_BYTES
from memory_graph.store.reads import group_members

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def entity(text: str, label: str, start: int) -> ExtractedEntity:
    return ExtractedEntity(text, label, text.lower(), text, start, start + len(text), 0, 40)


def doc(doc_id: str, text: str, *, namespace: str = "n", key: str | None = None, when: datetime = T0) -> DocumentWrite:
    ents = [entity("Alice", "PERSON", 0), entity("Acme", "ORG", text.find("Acme"))]
    rel = ExtractedRelation(
        source=0,
        predicate="work at",
        target=1,
        pattern="prep",
        confidence=0.8,
        sentence=text,
        sent_start=0,
        sent_end=len(text),
    )
    chunk = ChunkWrite(f"{doc_id}-c0", 0, 0, len(text), text, f"h-{text}", Extraction(ents, [rel]))
    return DocumentWrite(doc_id, namespace, key or doc_id, key, None, text, f"h-{text}", {"k": 1}, when, [chunk])


def test_graph_store_write_is_idempotent(graph: GraphStore) -> None:
    first = graph.write_documents([doc("d1", "Alice works at Acme.")])
    assert first[0].created
    again = graph.write_documents([doc("d1", "Alice works at Acme.")])
    assert not again[0].created and again[0].chunk_ids == ["d1-c0"]
    assert dataclasses.asdict(graph.stats("n")) == {
        "documents": 1,
        "chunks": 1,
        "entities": 2,
        "relations": 1,
        "mentions": 2,
    }


def test_graph_store_counts_accumulate_and_unwind(graph: GraphStore) -> None:
    graph.write_documents([doc("d1", "Alice works at Acme."), doc("d2", "Alice works at Acme, still.")])
    alice = graph.find_entities("n", ["alice"])[0]
    assert alice.mention_count == 2
    details = graph.entity_details(alice.id)
    assert len(details.relations) == 1 and details.aliases == ["Alice"]
    graph.delete_document("d2")
    assert graph.find_entities("n", ["alice"])[0].mention_count == 1
    graph.delete_document("d1")
    assert graph.find_entities("n", ["alice"]) == []
    assert dataclasses.asdict(graph.stats("n")) == {
        "documents": 0,
        "chunks": 0,
        "entities": 0,
        "relations": 0,
        "mentions": 0,
    }
    assert not graph.graph_problems().any()


def test_graph_store_delete_reads_by_index(tmp_path) -> None:
    """Deleting documents looks only at the rows they counted down, by index: scanning every
    relation and every merge for each entity removed took 0.2 s per document in a store of
    100,000 relations. SQLite's query plans (the indexes come from the migrations)."""
    from sqlalchemy import event

    graph = GraphStore.from_url(f"sqlite:///{tmp_path / 'plans.db'}", auto_upgrade=True)
    graph.write_documents([doc("d1", "Alice works at Acme."), doc("d2", "Alice works at Acme, still.")])
    statements: list[tuple[str, tuple]] = []
    event.listen(
        graph.engine, "before_cursor_execute", lambda c, cur, sql, params, *a: statements.append((sql, params))
    )
    graph.delete_document("d2")
    graph.delete_document("d1")
    assert dataclasses.asdict(graph.stats("n")) == {
        "documents": 0,
        "chunks": 0,
        "entities": 0,
        "relations": 0,
        "mentions": 0,
    }
    with graph.engine.connect() as conn:
        scans = {
            step
            for sql, params in statements
            if sql.lstrip().upper().startswith("DELETE")
            for (*_, step) in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)
            if step.startswith("SCAN") and "VIRTUAL TABLE" not in step and "CONSTANT" not in step
        }
    graph.close()
    assert len(statements) > 10 and scans == set()


def test_graph_store_replacing_a_document_keeps_counts_true(graph: GraphStore) -> None:
    graph.write_documents([doc("d1", "Alice works at Acme.", key="k")])
    result = graph.write_documents([doc("d1", "Alice still works at Acme.", key="k")])
    assert result[0].created and result[0].removed_chunk_ids == ["d1-c0"]
    assert graph.find_entities("n", ["acme"])[0].mention_count == 1
    assert not graph.graph_problems().any()


def test_graph_store_keyword_search(graph: GraphStore) -> None:
    graph.write_documents([doc("d1", "Alice works at Acme in Berlin."), doc("d2", "Acme opened an office in Paris.")])
    graph.write_documents([doc("d3", "Alice works at Acme in Berlin.", namespace="other")])
    hits = SearchReads(graph).keyword_search("Who works in Berlin?", namespace="n", limit=5)
    assert [cid for cid, _ in hits] == ["d1-c0"]
    assert SearchReads(graph).keyword_search("Paris offices", namespace="n", limit=5)[0][0] == "d2-c0"  # stemmed
    assert SearchReads(graph).keyword_search("the and of", namespace="n", limit=5) == []


def test_graph_store_keyword_search_time_window(graph: GraphStore) -> None:
    graph.write_documents(
        [
            doc("d1", "Acme news one.", when=datetime(2025, 1, 1, tzinfo=UTC)),
            doc("d2", "Acme news two.", when=datetime(2025, 3, 1, tzinfo=UTC)),
        ]
    )
    ids = lambda **kw: [c for c, _ in SearchReads(graph).keyword_search("acme news", namespace="n", limit=5, **kw)]  # noqa: E731
    assert ids(since=datetime(2025, 2, 1, tzinfo=UTC)) == ["d2-c0"]
    assert ids(until=datetime(2025, 2, 1, tzinfo=UTC)) == ["d1-c0"]


def test_graph_store_entity_reads_time_window(graph: GraphStore) -> None:
    """The search path's entity and evidence reads, with each of their time filters."""
    graph.write_documents(
        [
            doc("d1", "Alice works at Acme.", when=datetime(2025, 1, 1, tzinfo=UTC)),
            doc("d2", "Alice works at Acme, still.", when=datetime(2025, 3, 1, tzinfo=UTC)),
        ]
    )
    alice, acme = (graph.find_entities("n", [key])[0].id for key in ("alice", "acme"))
    relation = SearchReads(graph).relations_among("n", [alice, acme])[0].relation_id
    feb, apr = datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC)
    for since, until, expected in [(None, None, {"d1-c0", "d2-c0"}), (feb, None, {"d2-c0"}), (None, feb, {"d1-c0"}),
                                   (feb, apr, {"d2-c0"}), (apr, None, set())]:  # fmt: skip
        chunks = SearchReads(graph).chunks_for_entities("n", {alice: 1.0, acme: 0.5}, limit=5, since=since, until=until)
        assert {cid for cid, _ in chunks} == expected
        assert all(score == 3.0 for _, score in chunks)  # both mentions in the first sentence: 2 x 1.0 + 2 x 0.5
        evidence = SearchReads(graph).evidence_chunks([relation], limit=5, since=since, until=until)
        assert {cid for cid, _ in evidence} == expected


def test_graph_store_dated_chunks(graph: GraphStore) -> None:
    """Only chunks with a DATE mention, wherever it sits among the chunk's mentions."""
    dated = doc("d1", "Alice works at Acme since May 2024.")
    dated.chunks[0].extraction.entities.append(entity("May 2024", "DATE", dated.text.find("May 2024")))
    graph.write_documents([dated, doc("d2", "Alice works at Acme too.")])
    assert SearchReads(graph).dated_chunks(["d1-c0", "d2-c0", "missing"]) == {"d1-c0"}
    assert SearchReads(graph).dated_chunks([]) == set()


def test_graph_store_chunks_naming_other_entities_of_a_label(graph: GraphStore) -> None:
    """Chunks naming a PERSON other than those given: d2 names Bob besides Alice; d1 only Alice;
    in d3, Bob's turn, "I" stands for Bob but does not name him."""
    bob = doc("d2", "Alice works at Acme with Bob.")
    bob.chunks[0].extraction.entities.append(entity("Bob", "PERSON", bob.text.find("Bob")))
    turn = doc("d3", "Alice works at Acme, I hear.")
    turn.metadata = {"speaker": "Bob"}
    said = turn.text.find("I hear")
    turn.chunks[0].extraction.entities.append(ExtractedEntity("I", "PERSON", "bob", "Bob", said, said + 1, 0, 40, True))
    graph.write_documents([doc("d1", "Alice works at Acme."), bob, turn])
    alice = graph.find_entities("n", ["alice"])[0].id
    everyone = ["d1-c0", "d2-c0", "d3-c0"]
    assert SearchReads(graph).chunks_naming(everyone, ["PERSON"]) == set(everyone)
    assert SearchReads(graph).chunks_naming(everyone, ["PERSON"], besides=[alice]) == {"d2-c0"}
    assert SearchReads(graph).chunks_naming(everyone, ["LOC", "DATE"]) == set()


def test_graph_store_find_dates(graph: GraphStore) -> None:
    """A month finds itself and its days, a day itself and its month, a year only itself; dates
    of the namespace only."""
    dated, other = doc("d1", "Alice works at Acme, dated."), doc("o1", "Alice works at Acme.", namespace="other")
    for key in ["2025", "2025-03", "2025-03-01", "2025-03-31", "2025-04-01", "2025-W11"]:
        dated.chunks[0].extraction.entities.append(ExtractedEntity(key, "DATE", key, key, 20, 25, 0, 40))
    other.chunks[0].extraction.entities.append(ExtractedEntity("x", "DATE", "2025-03-02", "2025-03-02", 0, 5, 0, 40))
    graph.write_documents([dated, other])

    def found(*wanted: str) -> list[str]:
        return [e.key for e in SearchReads(graph).find_dates("n", wanted)]

    assert found("2025-03") == ["2025-03", "2025-03-01", "2025-03-31"]
    assert found("2025-03-31") == ["2025-03", "2025-03-31"]
    assert found("2025") == ["2025"]
    assert found("2025-03-15", "2025-04") == ["2025-03", "2025-04-01"]
    assert found("2024-12") == []
    assert found() == []


def said(name: str, text: str, speaker: str | None, minutes: int = 0, *, namespace: str = "n") -> DocumentWrite:
    """A memory of ``doc``'s shape observed ``minutes`` after T0, a turn where ``speaker`` is given."""
    written = doc(name, text, namespace=namespace, when=T0 + timedelta(minutes=minutes))
    written.metadata = {"speaker": speaker} if speaker else {}
    return written


def test_graph_store_turns_after(graph: GraphStore) -> None:
    """The next turns of a conversation: memories naming a speaker, later but within the gap,
    in time order, inside the time window, of the namespace only."""
    minute = timedelta(minutes=1)
    spoken = [("Ann", 0), ("Ben", 1), (None, 2), ("Ann", 3), ("Ben", 4), ("Ann", 90)]
    turns = [said(f"t{i}", f"Alice works at Acme, turn {i}.", who, at) for i, (who, at) in enumerate(spoken)]
    graph.write_documents([*turns, said("o1", "Alice works at Acme elsewhere.", "Ann", 2, namespace="other")])
    rows = graph.chunks([f"t{i}-c0" for i in range(6)])
    t0, t4, t5 = rows["t0-c0"], rows["t4-c0"], rows["t5-c0"]
    after = SearchReads(graph).turns_after("n", [t0, t4, t5], span=2, gap=30 * minute)
    assert after == [["t1-c0", "t3-c0"], [], []]  # t2 names no speaker; t5 is 86 minutes after t4
    assert SearchReads(graph).turns_after("n", [t0], span=5, gap=30 * minute, until=T0 + 4 * minute) == [
        ["t1-c0", "t3-c0"]
    ]
    assert SearchReads(graph).turns_after("n", [t0], span=5, gap=30 * minute, since=T0 + 2 * minute) == [
        ["t3-c0", "t4-c0"]
    ]
    graph.delete_document("t1")
    assert SearchReads(graph).turns_after("n", [t0], span=1, gap=30 * minute) == [["t3-c0"]]
    assert SearchReads(graph).turns_after("n", [], span=1, gap=minute) == []


def test_graph_store_turn_before(graph: GraphStore) -> None:
    """The turn before a time: the latest memory at most the gap earlier, if it names a speaker;
    its speaker and the entities it names. Not the memory itself, nor another namespace's."""
    minute = timedelta(minutes=1)
    spoken = [("Ann", 0), ("Ben", 1), (None, 2), ("Ann", 40)]
    memories = [said(f"t{i}", f"Alice works at Acme, turn {i}.", who, at) for i, (who, at) in enumerate(spoken)]
    graph.write_documents([*memories, said("o1", "Alice works at Acme elsewhere.", "Cy", 3, namespace="other")])
    gap = 30 * minute
    named = [("PERSON", "alice", "Alice"), ("ORG", "acme", "Acme")]
    assert graph.turn_before("n", T0 + 1 * minute, gap=gap, besides="t1") == ("Ann", named)
    assert graph.turn_before("n", T0 + 1 * minute, gap=gap) == ("Ben", named)  # t1 itself, at that time
    assert graph.turn_before("n", T0 + 3 * minute, gap=gap) is None  # t2 names no speaker
    assert graph.turn_before("n", T0 + 39 * minute, gap=gap, besides="t3") is None  # t2 is 37 minutes back
    assert graph.turn_before("other", T0 + 4 * minute, gap=gap) == ("Cy", named)


def test_graph_store_conversation_reads_scan_index_ranges(tmp_path) -> None:
    """``turn_before`` (every ``add`` of a turn) and ``turns_after`` (searches) read ranges of the
    ``(namespace, observed_at)`` index, not every memory of the namespace: as an OR of the
    windows, ``turns_after`` took 55 ms in a namespace of 50,000 turns. SQLite's query plans; the
    index comes from the migrations, so PostgreSQL has it too."""
    from sqlalchemy import event

    graph = GraphStore.from_url(f"sqlite:///{tmp_path / 'plans.db'}", auto_upgrade=True)
    graph.write_documents([said(f"t{i}", f"Alice works at Acme, turn {i}.", "Ann", i) for i in range(3)])
    seeds = list(graph.chunks(["t0-c0", "t1-c0"]).values())
    statements: list[tuple[str, tuple]] = []
    event.listen(
        graph.engine, "before_cursor_execute", lambda c, cur, sql, params, *a: statements.append((sql, params))
    )
    assert SearchReads(graph).turns_after("n", seeds, span=2, gap=timedelta(minutes=30)) == [
        ["t1-c0", "t2-c0"],
        ["t2-c0"],
    ]
    assert graph.turn_before("n", T0 + timedelta(minutes=2), gap=timedelta(minutes=30), besides="t2")[0] == "Ann"
    with graph.engine.connect() as conn:
        plans = [
            [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)]
            for sql, params in statements
            if "observed_at" in sql and not sql.lstrip().upper().startswith("EXPLAIN")
        ]
    graph.close()
    assert len(plans) == 2
    ranged = "SEARCH documents USING INDEX ix_documents_namespace_observed_at (namespace=? AND observed_at>? AND observed_at<?)"
    for plan in plans:
        scans = [step for step in plan if "documents" in step and step.startswith(("SEARCH", "SCAN"))]
        assert scans and all(step == ranged for step in scans), plan


def test_graph_store_turns_of_one_time_follow_in_the_order_written(graph: GraphStore) -> None:
    """A session stamped with one time: its turns follow one another in the order they were
    given, across batches, and before the turns observed later."""

    def turn(name: str, speaker: str, minutes: int = 0) -> DocumentWrite:
        return said(name, f"Alice works at Acme, said {name}.", speaker, minutes)

    graph.write_documents([turn("s1", "Ann"), turn("s2", "Ben"), turn("s3", "Ann")])
    graph.write_documents([turn("s4", "Ben"), turn("later", "Ann", minutes=5)])
    rows = graph.chunks(["s1-c0", "s2-c0", "s3-c0", "s4-c0", "later-c0"])
    after = SearchReads(graph).turns_after(
        "n", [rows["s1-c0"], rows["s3-c0"], rows["s4-c0"]], span=3, gap=timedelta(minutes=30)
    )
    assert after == [["s2-c0", "s3-c0", "s4-c0"], ["s4-c0", "later-c0"], ["later-c0"]]
    unknown = dataclasses.replace(rows["s1-c0"], created_at=None)  # no write time: only later times follow
    assert SearchReads(graph).turns_after("n", [unknown], span=3, gap=timedelta(minutes=30)) == [["later-c0"]]


def test_graph_store_chunk_context_is_batched(graph: GraphStore) -> None:
    graph.write_documents([doc("d1", "Alice works at Acme."), doc("d2", "Alice works at Acme too.")])
    entities, relations = graph.chunk_context(["d1-c0", "d2-c0", "missing"])
    assert [e.name for e in entities["d1-c0"]] == ["Alice", "Acme"]
    assert relations["d2-c0"][0].evidence == "Alice works at Acme too."
    assert relations["d1-c0"][0].id == relations["d2-c0"][0].id
    assert "missing" not in entities


def test_graph_store_chunk_context_names_merged_entities_once_by_their_canonical_name(graph: GraphStore) -> None:
    text = "Alice met Al at Acme."
    ents = [entity("Alice", "PERSON", 0), entity("Al", "PERSON", 10), entity("Acme", "ORG", 16)]
    rel = ExtractedRelation(1, "meet at", 2, "prep", 0.8, text, 0, len(text))
    chunk = ChunkWrite("d1-c0", 0, 0, len(text), text, "h", Extraction(ents, [rel]))
    graph.write_documents([DocumentWrite("d1", "n", "d1", None, None, text, "h", {}, T0, [chunk])])
    alice, al = (graph.find_entities("n", [key])[0].id for key in ("alice", "al"))
    merge = graph.merge_entities(al, alice, reason="test")
    entities, relations = graph.chunk_context(["d1-c0"])
    assert [e.name for e in entities["d1-c0"]] == ["Alice", "Acme"]
    assert [(r.source.id, r.target.name) for r in relations["d1-c0"]] == [(alice, "Acme")]
    graph.undo_merge(merge)
    entities, relations = graph.chunk_context(["d1-c0"])
    assert [e.name for e in entities["d1-c0"]] == ["Alice", "Al", "Acme"]
    assert relations["d1-c0"][0].source.name == "Al"


def test_graph_store_chunk_context_reads_relation_ends_the_chunk_does_not_mention(graph: GraphStore) -> None:
    graph.write_documents([doc("d1", "Alice works at Acme.")])
    # No write leaves a relation's end unmentioned in its evidence chunk: delete the mention.
    with graph.engine.begin() as conn:
        conn.execute(delete(Mention).where(Mention.text == "Acme"))
    entities, relations = graph.chunk_context(["d1-c0"])
    assert [e.name for e in entities["d1-c0"]] == ["Alice"]
    assert [(r.source.name, r.predicate, r.target.name) for r in relations["d1-c0"]] == [("Alice", "work at", "Acme")]


def test_graph_store_entity_members_from_rows_read_for_more_entities(graph: GraphStore) -> None:
    """The rows read once for several entities (ahead, during a search) give each subset of them
    what entity_members gives it read directly: same-name rows under another label and merged
    rows go to the entity they stand for, and their mentions are summed into its count."""
    text = "Acme and Acme met Alice and Al and Bob."
    names = [
        ("Acme", "ORG", 0),
        ("Acme", "LOC", 9),
        ("Alice", "PERSON", 18),
        ("Al", "PERSON", 28),
        ("Bob", "PERSON", 35),
    ]
    write = dataclasses.replace(doc("d1", text), chunks=[])
    chunk = ChunkWrite("d1-c0", 0, 0, len(text), text, "h", Extraction([entity(*n) for n in names], []))
    graph.write_documents([dataclasses.replace(write, chunks=[chunk])])
    graph.write_documents([doc("d2", "Alice works at Acme.")])  # a second mention of Alice and of Acme (ORG)
    ids = {(e.name, e.label): e.id for e in graph.find_entities("n", ["acme", "alice", "al", "bob"])}
    graph.merge_entities(ids["Al", "PERSON"], ids["Alice", "PERSON"], reason="test")
    acme, alice, bob = ids["Acme", "ORG"], ids["Alice", "PERSON"], ids["Bob", "PERSON"]
    members, counts = SearchReads(graph).entity_members([acme, alice])
    assert members == {acme: acme, ids["Acme", "LOC"]: acme, alice: alice, ids["Al", "PERSON"]: alice}
    assert counts == {acme: 3, alice: 3}
    rows = SearchReads(graph).entity_member_rows([bob, alice, acme])
    for subset in ([acme, alice], [alice], [bob, acme]):
        assert group_members(subset, rows) == SearchReads(graph).entity_members(subset)


def test_graph_store_repair_recomputes_counts(graph: GraphStore) -> None:
    from sqlalchemy import update

    from memory_graph.schema import Entity

    graph.write_documents([doc("d1", "Alice works at Acme.")])
    with graph.engine.begin() as conn:
        conn.execute(update(Entity).values(mention_count=7))
    assert graph.graph_problems().count_mismatches == 2
    graph.repair_graph()
    assert not graph.graph_problems().any()


def test_graph_store_keyword_terms() -> None:
    assert keyword_terms("Where does Alice work?") == ["alice", "work"]
    assert keyword_terms("the") == ["the"]


def test_graph_store_sqlite_connections_read_through_a_memory_map(tmp_path) -> None:
    graph = GraphStore.from_url(f"sqlite:///{tmp_path / 'm.db'}", auto_upgrade=True)
    graph.write_documents([doc("d1", "Alice works at Acme.")])
    with graph.reading() as conn:
        assert conn.exec_driver_sql("PRAGMA mmap_size").scalar() == SQLITE_MMAP_BYTES
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert graph.chunk_context(["d1-c0"])[1]["d1-c0"][0].predicate == "work at"


@pytest.mark.parametrize("url", ["nonsense", "mysql+nodriver://x/y", "sqlite+pysqlite:///"[:-1] + "x:y"])
def test_graph_store_bad_url_is_a_config_error(url: str) -> None:
    with pytest.raises((ConfigError, GraphStoreError)) as info:
        GraphStore(create_store_engine(url), auto_upgrade=True)
    assert "\n" not in str(info.value)


def test_graph_store_unreachable_server_is_one_line() -> None:
    with pytest.raises(
        GraphStoreError, match=r"failed on postgresql\+psycopg://nobody:\*\*\*@127.0.0.1:1/x: connection failed"
    ) as info:
        GraphStore.from_url("postgresql+psycopg://nobody:secret@127.0.0.1:1/x")
    assert "secret" not in str(info.value) and "\n" not in str(info.value)


def test_graph_store_keyword_scores_do_not_depend_on_other_namespaces(graph: GraphStore) -> None:
    """BM25 weighs terms by the statistics of the namespace's own chunks: what another namespace
    stores (here the same terms, many times) changes neither the scores nor the order."""
    graph.write_documents([doc("d1", "Alice works at Acme in Berlin."), doc("d2", "Acme opened an office in Paris.")])
    graph.write_documents([doc("d3", "Berlin and Paris and Acme.", namespace="n")])
    reads = SearchReads(graph)
    alone = reads.keyword_search("Acme office in Berlin", namespace="n", limit=5)
    graph.write_documents(
        [doc(f"o{i}", f"Acme Acme office {i} in Berlin, Paris.", namespace="other") for i in range(60)]
    )
    assert reads.keyword_search("Acme office in Berlin", namespace="n", limit=5) == alone
    assert reads.keyword_search("Acme", namespace="nobody", limit=5) == []


def test_graph_store_keyword_search_reads_only_its_namespace(tmp_path) -> None:
    """SQLite's plan of a keyword search: the namespace's own FTS5 table (no other namespace's
    postings), and with a time window the chunk and document of each match by primary key."""
    from sqlalchemy import event

    from memory_graph.store.engine import keyword_table

    graph = GraphStore.from_url(f"sqlite:///{tmp_path / 'plans.db'}", auto_upgrade=True)
    graph.write_documents([doc("d1", "Acme news one.", when=datetime(2025, 1, 1, tzinfo=UTC))])
    graph.write_documents([doc("d2", "Acme news two.", namespace="other")])
    statements: list[tuple[str, tuple]] = []
    event.listen(
        graph.engine, "before_cursor_execute", lambda c, cur, sql, params, *a: statements.append((sql, params))
    )
    reads = SearchReads(graph)
    assert [c for c, _ in reads.keyword_search("acme news", namespace="n", limit=5)] == ["d1-c0"]
    since = datetime(2024, 1, 1, tzinfo=UTC)
    assert [c for c, _ in reads.keyword_search("acme news", namespace="n", limit=5, since=since)] == ["d1-c0"]
    with graph.engine.connect() as conn:
        plans = [
            [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)]
            for sql, params in list(statements)
            if "MATCH" in sql
        ]
    graph.close()
    assert len(plans) == 2
    own = "SCAN f VIRTUAL TABLE INDEX "  # the MATCH of the namespace's own table
    for plan in plans:
        assert plan[0].startswith(own) and ":M" in plan[0], plan
        assert keyword_table("other") not in " ".join(plan)
        assert all(step.startswith("SEARCH") for step in plan[1:]), plan  # by primary key


def test_graph_store_shared_keyword_index_is_split_by_the_migration(tmp_path) -> None:
    """0007: a store written with one FTS5 table for every namespace gets one per namespace,
    holding the same chunks; keyword search finds them; the shared table is gone."""
    from alembic import command
    from sqlalchemy import inspect, text

    from memory_graph.migrate import alembic_config, head_revision, upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}"
    graph = GraphStore.from_url(url, auto_upgrade=True)
    graph.write_documents([doc("d1", "Alice works at Acme."), doc("d2", "Bob works at Acme.", namespace="b")])
    with graph.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0006")
        rows = conn.execute(text("SELECT chunk_id, namespace FROM chunks_fts ORDER BY chunk_id")).all()
        assert [tuple(r) for r in rows] == [("d1-c0", "n"), ("d2-c0", "b")]
    assert upgrade(graph.engine) == head_revision()
    tables = set(inspect(graph.engine).get_table_names())
    assert "chunks_fts" not in tables
    reads = SearchReads(graph)
    assert [c for c, _ in reads.keyword_search("Who works at Acme?", namespace="n", limit=5)] == ["d1-c0"]
    assert [c for c, _ in reads.keyword_search("Who works at Acme?", namespace="b", limit=5)] == ["d2-c0"]
    graph.delete_document("d1")
    assert reads.keyword_search("Who works at Acme?", namespace="n", limit=5) == []
    assert not graph.graph_problems().any()
    graph.close()


def test_graph_store_namespace_records_are_read_by_key(tmp_path) -> None:
    """The reads of the per-namespace layout (whether a namespace has its keyword table, its
    vector collections, the namespaces of chunks) are primary-key lookups: SQLite's plans scan
    no table, however many namespaces the store holds."""
    from sqlalchemy import event

    graph = GraphStore.from_url(f"sqlite:///{tmp_path / 'plans.db'}", auto_upgrade=True)
    for ns in ("n", "a", "b"):
        graph.write_documents([doc(f"{ns}1", "Acme news.", namespace=ns)])
        graph.register_vector_collection("memory_graph", ns, f"memory_graph-{ns}-0")
    statements: list[tuple[str, tuple]] = []
    event.listen(
        graph.engine, "before_cursor_execute", lambda c, cur, sql, params, *a: statements.append((sql, params))
    )
    assert SearchReads(graph).keyword_search("acme", namespace="n", limit=5)[0][0] == "n1-c0"
    assert graph.vector_collections("memory_graph") == {ns: f"memory_graph-{ns}-0" for ns in ("n", "a", "b")}
    assert graph.chunk_namespaces(["n1-c0", "a1-c0", "zz"]) == {"n1-c0": "n", "a1-c0": "a"}
    with graph.engine.connect() as conn:
        plans = {
            sql: [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)]
            for sql, params in list(statements)
            if "MATCH" not in sql
        }
    graph.close()
    assert len(plans) >= 3
    for sql, plan in plans.items():
        assert all(not step.startswith("SCAN") or "VIRTUAL TABLE" in step for step in plan), (sql, plan)
