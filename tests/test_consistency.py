"""verify/repair: crashes between the two stores are found and fixed from the SQL side."""

from __future__ import annotations

import contextlib

from memory_graph import MemoryManager
from memory_graph.ingest import make_input, store_memories


def test_consistency_vector_write_lost(manager: MemoryManager) -> None:
    """SQL committed, the process died before the vectors were written."""
    rec = manager.add("Mallory audits banks in Geneva.", namespace="n", external_id="m")
    manager.vectors.delete(rec.chunk_ids)  # what a crash before the upsert leaves behind
    report = manager.verify()
    assert not report.ok and report.chunks_without_vectors == 1
    repaired = manager.verify(repair=True)
    assert repaired.ok and repaired.repaired
    assert manager.vectors.existing_ids(rec.chunk_ids) == set(rec.chunk_ids)
    assert manager.search("Who audits banks?", namespace="n", k=1)[0].document_id == rec.document_id


def test_consistency_unconfirmed_chunks_are_indexed(manager: MemoryManager) -> None:
    """Crash after SQL, before the vectors and before indexed_at: repair indexes them.

    A crash cannot be timed between the two stores of one call, so this is the suite's one
    stand-in: a vector store that raises on first use, as a dead Chroma would.
    """
    item = make_input("Niaj sells maps in Cairo.", namespace="n", external_id="x")

    class Crash(Exception):
        pass

    class FailingVectors:
        def __getattr__(self, name):
            raise Crash

    with contextlib.suppress(Crash):
        store_memories(
            [item], graph=manager.graph, vectors=FailingVectors(), extractor=manager.extractor, chunk_size=800
        )  # type: ignore[arg-type]
    report = manager.verify()
    assert report.unindexed_chunks == 1 and report.chunks_without_vectors == 1
    assert manager.verify(repair=True).ok
    assert manager.search("maps Cairo", namespace="n", k=1)[0].external_id == "x"


def test_consistency_orphan_vectors_are_removed(manager: MemoryManager) -> None:
    manager.add("Olivia paints in Lyon.", namespace="n")
    manager.vectors.upsert(["ghost"], ["a vector without a chunk"], [{"namespace": "n", "document_id": "none"}])
    report = manager.verify()
    assert report.vectors_without_chunks == 1 and not report.ok
    assert manager.verify(repair=True).ok
    assert manager.vectors.existing_ids(["ghost"]) == set()


def shared_layout(manager: MemoryManager) -> dict[str, set[str]]:
    """Turn the manager's store into what the code before one collection per namespace wrote
    (commit 40ac865): every vector in one collection named ``Settings.collection``, created with
    the same embedding function and metadata, its records keeping their ``namespace`` key, and
    the schema at revision 0005. Returns the vector ids per namespace."""
    from alembic import command

    from memory_graph.migrate import alembic_config

    vs = manager.vectors
    by_namespace: dict[str, set[str]] = {}
    shared = vs.client.create_collection(
        vs.name,
        embedding_function=vs.embedding_function,
        metadata={"hnsw:space": "cosine", "embedding_model": vs.embedding_model},
    )
    for namespace in vs.namespaces():
        got = vs.collection_for(namespace).get(include=["embeddings", "documents", "metadatas"])
        shared.add(ids=got["ids"], embeddings=got["embeddings"], documents=got["documents"], metadatas=got["metadatas"])
        by_namespace[namespace] = set(got["ids"])
        vs.delete_namespace(namespace)
    with manager.graph.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0005")
    return by_namespace


def test_consistency_upgrade_moves_a_shared_collection_without_embedding(manager: MemoryManager, tmp_path) -> None:
    """A store in the shared-collection layout keeps working (search, verify, add), and
    ``memory-graph db upgrade`` moves its vectors into one collection per namespace: the same
    ids per namespace, nothing embedded again, the shared collection gone, search unchanged."""
    import os
    import subprocess
    import sys

    from memory_graph import GraphStore
    from memory_graph import MemoryManager as Manager
    from memory_graph.vector_store import VectorStore

    for ns, texts in {"ann": ["Ann moved to Oslo.", "Ann plays chess."], "bob": ["Bob works at Acme."]}.items():
        for i, text in enumerate(texts):
            manager.add(text, namespace=ns, external_id=f"{ns}{i}")
    before = {
        ns: [h.chunk_id for h in manager.search("Where does Ann live?", namespace=ns, k=3)] for ns in ("ann", "bob")
    }
    ids = shared_layout(manager)
    manager.close()
    settings = manager.settings
    embed = manager.vectors.embed
    # The schema alone comes to head (as an embedded store does on open): the vectors stay shared.
    GraphStore.from_url(settings.sqlalchemy_url, auto_upgrade=True).close()
    old = Manager(
        settings, vectors=VectorStore.open(path=settings.chroma_dir, embedder=embed), extractor=manager.extractor
    )
    assert old.vectors.is_shared and old.vectors.count("ann") == len(ids["ann"])
    assert [h.chunk_id for h in old.search("Where does Ann live?", namespace="ann", k=3)] == before["ann"]
    assert old.verify().ok
    old.close()
    del old

    env = {**os.environ, "PYTHONPATH": os.getcwd(), "MEMORY_GRAPH_DATA_DIR": str(settings.data_dir)}
    if settings.database_url:
        env["MEMORY_GRAPH_DATABASE_URL"] = settings.database_url
    out = subprocess.run(
        [sys.executable, "-m", "memory_graph.cli", "db", "upgrade"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"moved {sum(map(len, ids.values()))} vectors" in out.stdout

    calls: list[int] = []

    def counting(texts):
        calls.append(len(texts))
        return embed(texts)

    with Manager(
        settings, vectors=VectorStore.open(path=settings.chroma_dir, embedder=counting), extractor=manager.extractor
    ) as new:
        assert not new.vectors.is_shared
        assert settings.collection not in {c.name for c in new.vectors.client.list_collections()}
        assert new.graph.vector_collections(settings.collection).keys() == {"ann", "bob"}
        for ns, expected in ids.items():
            got = {i for _, batch in new.vectors.iter_namespace_ids() if _ == ns for i in batch}
            assert got == expected and new.vectors.count(ns) == len(expected)
        assert new.verify().ok
        assert [h.chunk_id for h in new.search("Where does Ann live?", namespace="ann", k=3)] == before["ann"]
    assert sum(calls) == 1  # the query only: no stored text was embedded again
