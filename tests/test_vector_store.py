"""VectorStore on real Chroma: upsert, filtered query, delete, reopen in a new process."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from memory_graph import ConfigError, VectorStore
from memory_graph.embeddings import load_single_text_encoder, resolve_embedding_model
from memory_graph.vector_store import SentenceTransformerEmbedder, chunk_metadata, make_chroma_client


def store(path: Path, embedder) -> VectorStore:
    return VectorStore(make_chroma_client(path=path), "memory_graph", embedder=embedder)


def test_vector_store_query_filters_namespace_and_time(tmp_path: Path, fake_embedder) -> None:
    vs = store(tmp_path, fake_embedder)
    vs.upsert(
        ["a", "b", "c"],
        ["red apple pie", "red apple tart", "green pear"],
        [
            chunk_metadata(namespace="one", document_id="d1", observed_at=datetime(2025, 1, 1, tzinfo=UTC)),
            chunk_metadata(namespace="two", document_id="d2", observed_at=datetime(2025, 1, 1, tzinfo=UTC)),
            chunk_metadata(namespace="one", document_id="d3", observed_at=datetime(2025, 3, 1, tzinfo=UTC)),
        ],
    )
    q = fake_embedder(["red apple"])[0]
    assert [i for i, _ in vs.query(q, namespace="one", k=5)] == ["a", "c"]
    assert [i for i, _ in vs.query(q, namespace="one", k=5, since=datetime(2025, 2, 1, tzinfo=UTC))] == ["c"]
    vs.delete(["a"])
    assert vs.existing_ids(["a", "b", "c"]) == {"b", "c"}
    assert vs.count() == 2 and vs.count("one") == 1
    assert sorted(i for batch in vs.iter_ids(batch_size=1) for i in batch) == ["b", "c"]


def test_vector_store_embeds_a_turn_led_by_its_speaker(tmp_path: Path, fake_embedder) -> None:
    """The speaker's name leads what is embedded, unless the text names them already; the stored
    document stays the chunk's text."""
    seen: list[str] = []

    def recording(texts):
        seen.extend(texts)
        return fake_embedder(texts)

    vs = store(tmp_path, recording)
    texts = ["I just started a new job.", "Maya says hi.", "No speaker here."]
    vs.upsert(
        ["a", "b", "c"],
        texts,
        [
            chunk_metadata(namespace="n", document_id="d1", observed_at=None, speaker="Maya"),
            chunk_metadata(namespace="n", document_id="d2", observed_at=None, speaker="maya"),
            chunk_metadata(namespace="n", document_id="d3", observed_at=None),
        ],
    )
    assert seen == ["Maya: I just started a new job.", "Maya says hi.", "No speaker here."]
    stored = vs.collection_for("n").get(ids=["a", "b", "c"], include=["documents", "metadatas"])
    assert dict(zip(stored["ids"], stored["documents"], strict=True)) == dict(zip("abc", texts, strict=True))
    assert {m.get("speaker") for m in stored["metadatas"]} == {"Maya", "maya", None}


def test_vector_store_reopens_in_a_new_process(tmp_path: Path, embedder) -> None:
    """A persisted collection opens in a fresh interpreter with the real embedder, no network."""
    vs = store(tmp_path, embedder)
    vs.upsert(["x"], ["The quarterly report is due on Friday."], [{"namespace": "n", "document_id": "d"}])
    script = (
        "import chromadb, memory_graph.vector_store as v\n"
        f"c = v.make_chroma_client(path=__import__('pathlib').Path({str(tmp_path)!r}))\n"
        "vs = v.VectorStore(c, 'memory_graph')\n"
        "print(vs.query(vs.embed(['when is the report due'])[0], namespace='n', k=1)[0][0])\n"
        # plain Chroma code finds our registered embedding function too
        "print(c.get_collection(vs.collection_name('n')).query(query_texts=['report due'], n_results=1)['ids'][0][0])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["x", "x"]


@pytest.mark.parametrize("name", ["a", "-bad", "has space", "x" * 600])
def test_vector_store_rejects_bad_collection_names(tmp_path: Path, fake_embedder, name: str) -> None:
    with pytest.raises(ConfigError, match="collection name"):
        VectorStore(make_chroma_client(path=tmp_path), name, embedder=fake_embedder)


def test_vector_store_unwritable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(Exception) as info:
        make_chroma_client(path=blocker / "chroma")
    assert "\n" not in str(info.value) and "chroma" in str(info.value)


def test_embedder_traces_one_text_with_the_numbers_of_the_batch_path(embedder) -> None:
    assert load_single_text_encoder() is not None  # the bundled MiniLM is traced
    partner = "a second text, so the batch is padded and goes through encode()"
    texts = ["", "memory", "Où est la gare? Bob Smith asked on 3 May 2025.", "Long text, truncated. " * 200]
    for text in texts:
        one, batched = embedder([text]), embedder([text, partner])
        assert one.shape == (1, 384) and one.dtype == np.float32
        assert np.allclose(one[0], batched[0], atol=1e-5), text[:40]
        assert abs(float(np.linalg.norm(one[0])) - 1.0) < 1e-5


def test_embedder_leaves_pipelines_it_cannot_trace_to_encode(tmp_path: Path, embedder) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Pooling, Transformer

    cls_pooled = tmp_path / "cls-pooled"
    SentenceTransformer(modules=[Transformer(resolve_embedding_model()), Pooling(384, pooling_mode="cls")]).save(
        str(cls_pooled)
    )
    assert load_single_text_encoder(str(cls_pooled)) is None
    other = SentenceTransformerEmbedder(str(cls_pooled))
    one, batched = other(["Bob Smith"]), other(["Bob Smith", "someone else entirely"])
    assert np.allclose(one[0], batched[0], atol=1e-5)
    assert not np.allclose(one[0], embedder(["Bob Smith"])[0], atol=1e-3)  # CLS, not mean, pooling


def test_chroma_log_purge_reads_only_the_written_collection(tmp_path: Path, fake_embedder) -> None:
    """Chroma's per-write purge of its log runs on the (topic, seq_id) index, so a write does not
    scan what the other namespaces' collections keep in the log; a directory written without the
    index gets it when a store writes to it again, and the search still finds every record."""
    import sqlite3

    def purge_plan() -> str:
        purge = "EXPLAIN QUERY PLAN DELETE FROM embeddings_queue WHERE topic = ? AND seq_id < ?"
        with sqlite3.connect(tmp_path / "chroma.sqlite3") as db:
            return " ".join(str(row) for row in db.execute(purge, ("persistent://default/default/x", 10)))

    vs = store(tmp_path, fake_embedder)
    for ns in ("one", "two", "three"):
        vs.upsert([f"{ns}-{i}" for i in range(5)], ["red apple"] * 5,
                  [chunk_metadata(namespace=ns, document_id="d", observed_at=None)] * 5)  # fmt: skip
    assert "USING INDEX memory_graph_embeddings_queue_topic (topic=? AND seq_id<?)" in purge_plan()
    with sqlite3.connect(tmp_path / "chroma.sqlite3") as db:
        db.execute("DROP INDEX memory_graph_embeddings_queue_topic")
    vs.release_writes()
    vs.client.close()
    again = store(tmp_path, fake_embedder)
    q = fake_embedder(["red apple"])[0]
    assert len(again.query(q, namespace="one", k=10)) == 5
    assert "memory_graph_embeddings_queue_topic" not in purge_plan()  # a reader leaves Chroma's file as it is
    again.upsert(["one-5"], ["red apple"], [chunk_metadata(namespace="one", document_id="d", observed_at=None)])
    assert "memory_graph_embeddings_queue_topic" in purge_plan()
    assert sorted(i for i, _ in again.query(q, namespace="one", k=10)) == [f"one-{i}" for i in range(6)]


def test_vector_store_one_collection_per_namespace(tmp_path: Path, fake_embedder) -> None:
    """Each namespace's records go to a collection of its own, named validly from any namespace;
    a search in one asks only its collection; dropping a namespace removes its collection."""
    vs = store(tmp_path, fake_embedder)
    odd = ["user-42", "Üser 42!", "user_42", "x" * 300, "a/b..c"]
    ids = [f"c{i}" for i in range(len(odd))]
    vs.upsert(
        ids, ["red apple"] * len(odd), [chunk_metadata(namespace=ns, document_id="d", observed_at=None) for ns in odd]
    )
    names = {vs.collection_name(ns) for ns in odd}
    assert len(names) == len(odd)  # similar slugs, different hashes
    assert all(3 <= len(n) <= 512 and ".." not in n and n[0].isalnum() and n[-1].isalnum() for n in names)
    assert names == {c.name for c in vs.client.list_collections()}  # no shared collection
    assert vs.namespaces() == sorted(odd)
    q = fake_embedder(["red apple"])[0]
    for ns, cid in zip(odd, ids, strict=True):
        assert [i for i, _ in vs.query(q, namespace=ns, k=5)] == [cid]
        assert vs.count(ns) == 1 and vs.existing_ids(ids, namespace=ns) == {cid}
    assert vs.query(q, namespace="nobody", k=5) == [] and vs.count("nobody") == 0
    assert sorted(i for i, _ in vs.query(q, namespace=None, k=10)) == sorted(ids)
    vs.delete_namespace("user-42")
    assert vs.namespaces() == sorted(odd[1:]) and vs.count() == len(odd) - 1
    assert vs.collection_name("user-42") not in {c.name for c in vs.client.list_collections()}
    vs.delete(["c1"], namespace="user_42")  # another namespace's id: nothing happens
    assert vs.count("Üser 42!") == 1
