"""The vector index: one Chroma record per chunk, id = chunk id, in one collection per namespace.

A namespace's vectors live in a collection of their own (:func:`namespace_collection`: the
index's name, a readable slug of the namespace and a hash of it), so that a search in one
namespace asks only its own collection and costs what the namespace holds, whatever the others
hold (docs/architecture.md, "The vector layout"). Which namespaces have a collection is recorded
in the relational store (:class:`CollectionRegistry`, the ``vector_collections`` table) and in
each collection's own metadata. A store written before (every namespace in one shared
collection, filtered by a ``namespace`` metadata key) keeps working as it is until
:func:`split_shared_collection` (``memory-graph db upgrade``) moves its vectors.

Chroma is an index that can always be rebuilt from the relational store. Embeddings are computed
here with the bundled sentence-transformer (never Chroma's default ONNX model, which it would
try to download); the same embedding function is registered with Chroma so a collection reopens
in a new process and stays usable from plain Chroma code. A turn of a conversation is embedded
led by its speaker's name (:func:`embedding_texts`); the stored document is the chunk's text.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from memory_graph.embeddings import DEFAULT_EMBEDDING_MODEL, load_sentence_transformer, load_single_text_encoder
from memory_graph.errors import ConfigError, MemoryGraphError, StoreLockedError, VectorStoreError
from memory_graph.filters import CHROMA_PREFIX, filterable_key, is_scalar
from memory_graph.locks import HeldLock, exclusive, holder_pid
from memory_graph.vocabulary import speaker_of

if TYPE_CHECKING:
    from memory_graph.store import ChunkRow

logger = logging.getLogger(__name__)

EMBEDDING_FUNCTION_NAME = "memory_graph_sentence_transformer"
_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$")
_UPSERT_BATCH = 1000
#: Metadata keys of a namespace's collection: the index it belongs to and the namespace.
INDEX_KEY = "memory_graph_index"
NAMESPACE_KEY = "memory_graph_namespace"
_SLUG_CHARS = 40
_HASH_CHARS = 12

Embedder = Callable[[Sequence[str]], np.ndarray]


class SentenceTransformerEmbedder:
    """Normalised sentence-transformer embeddings, loaded on first use. One text (a query) goes
    through the traced model where there is one (:func:`load_single_text_encoder`)."""

    def __init__(self, model_name: str = DEFAULT_EMBEDDING_MODEL, *, batch_size: int = 64) -> None:
        self.model_name = model_name
        self.batch_size = batch_size
        self._lock = threading.Lock()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        model = load_sentence_transformer(self.model_name)
        with self._lock:
            if len(texts) == 1 and (encode_one := load_single_text_encoder(self.model_name)) is not None:
                return np.asarray(encode_one(texts[0]), dtype=np.float32)[None, :]
            return np.asarray(
                model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True),
                dtype=np.float32,
            )


def _chroma_embedding_function_class() -> type:
    """Register (once) the Chroma embedding function that wraps our embedder."""
    from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
    from chromadb.utils.embedding_functions import register_embedding_function

    global _EF_CLASS
    if _EF_CLASS is not None:
        return _EF_CLASS

    @register_embedding_function
    class MemoryGraphEmbeddingFunction(EmbeddingFunction[Documents]):
        def __init__(self, model_name: str = DEFAULT_EMBEDDING_MODEL) -> None:
            self.model_name = model_name
            self._embed = SentenceTransformerEmbedder(model_name)

        def __call__(self, input: Documents) -> Embeddings:
            return list(self._embed(list(input)))

        @staticmethod
        def name() -> str:
            return EMBEDDING_FUNCTION_NAME

        def default_space(self) -> Any:
            return "cosine"

        def get_config(self) -> dict[str, Any]:
            return {"model_name": self.model_name}

        @staticmethod
        def build_from_config(config: dict[str, Any]) -> MemoryGraphEmbeddingFunction:
            return MemoryGraphEmbeddingFunction(config.get("model_name", DEFAULT_EMBEDDING_MODEL))

    _EF_CLASS = MemoryGraphEmbeddingFunction
    return _EF_CLASS


_EF_CLASS: type | None = None


class VectorIndex(Protocol):
    """What the manager, ingestion, search and ``verify`` need of a vector index: chunk vectors
    under the chunk ids, with the metadata searches filter on. :class:`VectorStore` (Chroma) is
    the index; a re-ingest worker writes through a relay to it."""

    embedding_model: str
    embed: Embedder

    def upsert(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[dict[str, Any]],
        *,
        embeddings: np.ndarray | None = None,
    ) -> None: ...

    def query(
        self,
        embedding: np.ndarray,
        *,
        namespace: str | None,
        k: int,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> list[tuple[str, float]]: ...

    def delete(self, ids: Sequence[str], *, namespace: str | None = None) -> None: ...

    def existing_ids(self, ids: Sequence[str], *, namespace: str | None = None) -> set[str]: ...

    def iter_ids(self, *, batch_size: int = 5000) -> Iterator[list[str]]: ...

    def iter_namespace_ids(self, *, batch_size: int = 5000) -> Iterator[tuple[str | None, list[str]]]: ...

    def count(self, namespace: str | None = None) -> int: ...

    def delete_namespace(self, namespace: str) -> int: ...

    def claim_writes(self) -> None:
        """Make sure this process may write the index (before the SQL side of a write)."""
        ...

    def release_writes(self) -> None:
        """Give up what :meth:`claim_writes` took."""
        ...


class CollectionRegistry(Protocol):
    """Where the namespaces that have a collection are recorded: the relational store
    (:class:`~memory_graph.store.GraphStore`, table ``vector_collections``)."""

    def vector_collections(self, index: str) -> dict[str, str]:
        """namespace → collection name, for the collections of ``index``."""
        ...

    def register_vector_collection(self, index: str, namespace: str, collection: str) -> None:
        """Record a namespace's collection (idempotent)."""
        ...

    def unregister_vector_collection(self, index: str, namespace: str) -> None: ...


class ChromaRegistry:
    """The registry of a :class:`VectorStore` opened without a relational store: the collections'
    own metadata (:data:`INDEX_KEY`, :data:`NAMESPACE_KEY`), listed from Chroma."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def vector_collections(self, index: str) -> dict[str, str]:
        found: dict[str, str] = {}
        with chroma_errors("listing collections"):
            for collection in self.client.list_collections():
                meta = collection.metadata or {}
                if meta.get(INDEX_KEY) == index and isinstance(meta.get(NAMESPACE_KEY), str):
                    found[meta[NAMESPACE_KEY]] = collection.name
        return found

    def register_vector_collection(self, index: str, namespace: str, collection: str) -> None:
        """Nothing to do: the collection's metadata records it."""

    def unregister_vector_collection(self, index: str, namespace: str) -> None:
        """Nothing to do: the collection is gone."""


def namespace_collection(index: str, namespace: str) -> str:
    """The Chroma collection of ``namespace`` in the index ``index``: ``<index>-<slug>-<hash>``,
    where the slug is the namespace's letters and digits (at most 40, runs of others as one
    ``_``) for a person reading a listing, and the hash (12 hex digits of its SHA-256) keeps
    namespaces that slug alike apart. Always a valid Chroma name (3-512 characters of
    ``[A-Za-z0-9._-]``, alphanumeric at both ends) for a valid index name."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", namespace).strip("_")[:_SLUG_CHARS].strip("_")
    digest = hashlib.sha256(namespace.encode("utf-8")).hexdigest()[:_HASH_CHARS]
    return f"{index}-{slug}-{digest}" if slug else f"{index}-{digest}"


class VectorStore:
    """Chunk vectors in Chroma, one collection per namespace.

    Args:
        client: a ``chromadb`` client (persistent, HTTP or ephemeral).
        collection: the index's name; each namespace's collection is named after it
            (:func:`namespace_collection`). A store written before this layout has every
            namespace in the collection of exactly this name; while it is there, it is used as
            it was (filtered by namespace) until :func:`split_shared_collection` moves it.
        embedder: texts → normalised vectors; the bundled MiniLM by default. Unit tests of store
            logic may pass a deterministic one.
        embedding_model: recorded in the collections so their records can be reused safely.
        registry: where the namespaces with a collection are recorded; the manager passes its
            relational store. Without one, the collections' own metadata is listed.

    A persistent directory is written by one process at a time: the first write takes its
    lock (``<dir>.lock``, an flock, held until :meth:`release_writes`), and a write from another
    process meanwhile raises :class:`StoreLockedError` naming the holder. Other processes read it:
    each write bumps ``<dir>.generation``, and a reader that finds it changed opens the directory
    afresh before it reads, because a Chroma client keeps the index it loaded and would miss
    (or fail on) the writer's records (docs/architecture.md, "Several processes").
    """

    def __init__(
        self,
        client: Any,
        collection: str = "memory_graph",
        *,
        embedder: Embedder | None = None,
        embedding_model: str = DEFAULT_EMBEDDING_MODEL,
        registry: CollectionRegistry | None = None,
    ) -> None:
        # Room for "-<slug>-<hash>" after the index's name within Chroma's 512 characters.
        if not _COLLECTION_NAME.match(collection) or ".." in collection or len(collection) > 400:
            raise ConfigError(
                f"collection name {collection!r} is invalid: use 3-400 letters, digits, '.', '_' or '-', "
                "starting and ending with a letter or digit"
            )
        self.client = client
        self.name = collection
        self.embedding_model = embedding_model
        self.embed: Embedder = embedder or SentenceTransformerEmbedder(embedding_model)
        self.registry: CollectionRegistry = registry or ChromaRegistry(client)
        # Registered with every collection, so they reopen in plain Chroma code too.
        self.embedding_function = _chroma_embedding_function_class()(embedding_model)
        self._collections: dict[str, Any] = {}  # namespace → its collection, once opened
        self._lock = threading.Lock()
        self.path = _persist_dir(client)
        self._writer = HeldLock(_beside(self.path, ".lock")) if self.path is not None else None
        self._refresh_lock = threading.Lock()
        self._generation = self._read_generation()
        self.shared: Any = self._open_shared()  # the shared collection of a store written before this layout

    def _open_shared(self) -> Any:
        from chromadb.errors import NotFoundError

        with chroma_errors(f"opening collection {self.name!r}"):
            try:
                return self.client.get_collection(self.name, embedding_function=self.embedding_function)
            except NotFoundError:
                return None

    # -- several processes on one persistent directory ----------------------------------------

    def claim_writes(self) -> None:
        """Take the directory's write lock (kept until :meth:`release_writes`), first reading
        what another process wrote before it let go.

        Raises:
            StoreLockedError: another process holds it.
        """
        if self._writer is None or self._writer.held:
            return
        if not self._writer.try_acquire():
            raise StoreLockedError(self.path, holder_pid(self._writer.path))
        self._refresh()
        assert self.path is not None
        index_chroma_log(self.path)

    def release_writes(self) -> None:
        if self._writer is not None:
            self._writer.release()

    def _read_generation(self) -> bytes:
        if self.path is None:
            return b""
        try:
            return _beside(self.path, ".generation").read_bytes()
        except FileNotFoundError:
            return b""

    def signal_readers(self) -> None:
        """Tell the directory's readers that it changed."""
        if self.path is not None:
            value = f"{os.getpid()}:{time.monotonic_ns()}".encode("ascii")
            _beside(self.path, ".generation").write_bytes(value)
            self._generation = value

    def _fresh(self) -> None:
        """Before a read: open the directory afresh if another process wrote it since."""
        if self._writer is not None and not self._writer.held_in_process():
            self._refresh()

    def _refresh(self) -> None:
        with self._refresh_lock:
            generation = self._read_generation()
            if generation == self._generation:
                return
            assert self.path is not None
            # Chroma shares one System (the loaded index) between the clients of a directory in
            # a process, and a new client would get the stale one back: closing the last client
            # of the directory stops it. (Other open clients of it in this process keep it alive,
            # and the view stale: a reading process opens one store per directory.)
            with contextlib.suppress(Exception):
                self.client.close()
            self.client = make_chroma_client(path=self.path)
            if isinstance(self.registry, ChromaRegistry):
                self.registry.client = self.client
            with self._lock:
                self._collections.clear()
            self.shared = self._open_shared()  # another process may have upgraded the layout
            self._generation = generation

    @classmethod
    def open(
        cls,
        *,
        path: Path | None = None,
        host: str | None = None,
        port: int = 8000,
        collection: str = "memory_graph",
        embedder: Embedder | None = None,
        embedding_model: str = DEFAULT_EMBEDDING_MODEL,
        registry: CollectionRegistry | None = None,
    ) -> VectorStore:
        """Open a persistent directory (``path``) or a Chroma server (``host``/``port``)."""
        return cls(
            make_chroma_client(path=path, host=host, port=port),
            collection,
            embedder=embedder,
            embedding_model=embedding_model,
            registry=registry,
        )

    # -- the layout --------------------------------------------------------------------------

    @property
    def is_shared(self) -> bool:
        """True while the store is in the shared-collection layout written before."""
        return self.shared is not None

    def collection_name(self, namespace: str) -> str:
        return namespace_collection(self.name, namespace)

    def namespaces(self) -> list[str]:
        """The namespaces that have a collection (read from the registry each time, so that
        collections other processes created count)."""
        return sorted(self.registry.vector_collections(self.name))

    def collection_for(self, namespace: str, *, create: bool = False) -> Any:
        """The collection of ``namespace`` (the shared one in the old layout); ``None`` when it
        has none and ``create`` is false. Creating one records it in the registry first, so a
        collection is never there without its record."""
        if self.shared is not None:
            return self.shared
        found = self._collections.get(namespace)
        if found is not None:
            return found
        name = self.collection_name(namespace)
        from chromadb.errors import NotFoundError

        with self._lock, chroma_errors(f"opening the collection of namespace {namespace!r}"):
            if create:
                self.registry.register_vector_collection(self.name, namespace, name)
                with _opening(self.path):
                    found = self.client.get_or_create_collection(
                        name,
                        embedding_function=self.embedding_function,
                        metadata={
                            "hnsw:space": "cosine",
                            "embedding_model": self.embedding_model,
                            INDEX_KEY: self.name,
                            NAMESPACE_KEY: namespace,
                        },
                    )
            else:
                try:
                    found = self.client.get_collection(name, embedding_function=self.embedding_function)
                except NotFoundError:
                    return None
            self._collections[namespace] = found
        return found

    def _targets(self, namespace: str | None) -> list[tuple[str | None, Any]]:
        """The collections an operation on ``namespace`` (``None``: every namespace) touches."""
        if self.shared is not None:
            return [(None, self.shared)]
        if namespace is not None:
            found = self.collection_for(namespace)
            return [] if found is None else [(namespace, found)]
        out: list[tuple[str | None, Any]] = []
        for ns in self.namespaces():
            found = self.collection_for(ns)
            if found is not None:
                out.append((ns, found))
        return out

    def delete_namespace(self, namespace: str) -> int:
        """Remove every vector of ``namespace``, and say how many there were: its collection goes
        (in the old layout, its records of the shared one), then its record in the registry."""
        removed = self.count(namespace)
        self.claim_writes()
        if self.shared is not None:
            with chroma_errors(f"deleting the vectors of namespace {namespace!r}"):
                self.shared.delete(where={"namespace": namespace})
            self.signal_readers()
            return removed
        from chromadb.errors import NotFoundError

        with self._lock, chroma_errors(f"dropping the collection of namespace {namespace!r}"):
            self._collections.pop(namespace, None)
            with suppress(NotFoundError):
                self.client.delete_collection(self.collection_name(namespace))
            self.registry.unregister_vector_collection(self.name, namespace)
        self.signal_readers()
        return removed

    # -- records -----------------------------------------------------------------------------

    def upsert(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[dict[str, Any]],
        *,
        embeddings: np.ndarray | None = None,
    ) -> None:
        """Embed (unless ``embeddings`` are given) and upsert chunk records, each into the
        collection of its metadata's ``namespace``."""
        if not ids:
            return
        self.claim_writes()
        vectors = embeddings if embeddings is not None else self.embed(embedding_texts(texts, metadatas))
        groups: dict[str, list[int]] = {}
        for i, meta in enumerate(metadatas):
            groups.setdefault(str(meta.get("namespace", "")), []).append(i)
        for namespace, positions in groups.items():
            collection = self.collection_for(namespace, create=True)
            with chroma_errors("writing vectors"):
                for i in range(0, len(positions), _UPSERT_BATCH):
                    part = positions[i : i + _UPSERT_BATCH]
                    collection.upsert(
                        ids=[ids[p] for p in part],
                        embeddings=np.asarray([vectors[p] for p in part], dtype=np.float32),
                        documents=[texts[p] for p in part],
                        metadatas=[_clean_metadata(metadatas[p]) for p in part],
                    )
        self.signal_readers()

    def query(
        self,
        embedding: np.ndarray,
        *,
        namespace: str | None,
        k: int,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> list[tuple[str, float]]:
        """Nearest chunks of one namespace (``None``: of every namespace):
        ``(chunk_id, cosine similarity)``, best first. Only the namespace's collection is asked;
        the filters go down to Chroma; ``where`` is a Chroma filter of its own, on the records'
        metadata (:func:`memory_graph.filters.chroma_where`)."""
        clauses: list[dict[str, Any]] = []
        if self.shared is not None and namespace is not None:
            clauses.append({"namespace": namespace})
        if where:
            clauses.append(dict(where))
        if since is not None:
            clauses.append({"observed_ts": {"$gte": _timestamp(since)}})
        if until is not None:
            clauses.append({"observed_ts": {"$lt": _timestamp(until)}})
        where = None if not clauses else clauses[0] if len(clauses) == 1 else {"$and": clauses}
        self._fresh()
        try:
            with chroma_errors("vector search"):
                return self._query(embedding, namespace, k, where)
        except VectorStoreError:
            # A reader may load the index in the moment a writer adds to it: read it afresh, once.
            if self._writer is None or self._writer.held_in_process():
                raise
            self._generation = b"?"
            self._refresh()
            with chroma_errors("vector search"):
                return self._query(embedding, namespace, k, where)

    def _query(self, embedding: np.ndarray, namespace: str | None, k: int, where: Any) -> list[tuple[str, float]]:
        found: list[tuple[str, float]] = []
        for _, collection in self._targets(namespace):
            result = collection.query(
                query_embeddings=np.asarray([embedding], dtype=np.float32),
                n_results=max(1, k),
                where=where,
                include=["distances"],
            )
            ids = result["ids"][0] if result["ids"] else []
            distances = result["distances"][0] if result.get("distances") else [0.0] * len(ids)
            found += [(i, 1.0 - float(d)) for i, d in zip(ids, distances, strict=True)]
        found.sort(key=lambda hit: -hit[1])
        return found[: max(1, k)]

    def delete(self, ids: Sequence[str], *, namespace: str | None = None) -> None:
        """Delete records by id from the namespace's collection (``None``: from every one)."""
        if not ids:
            return
        self.claim_writes()
        with chroma_errors("deleting vectors"):
            for _, collection in self._targets(namespace):
                for i in range(0, len(ids), _UPSERT_BATCH):
                    collection.delete(ids=list(ids[i : i + _UPSERT_BATCH]))
        self.signal_readers()

    def existing_ids(self, ids: Sequence[str], *, namespace: str | None = None) -> set[str]:
        """Those of ``ids`` stored in the namespace's collection (``None``: in any)."""
        found: set[str] = set()
        self._fresh()
        with chroma_errors("reading vector ids"):
            for _, collection in self._targets(namespace):
                for i in range(0, len(ids), _UPSERT_BATCH):
                    found.update(collection.get(ids=list(ids[i : i + _UPSERT_BATCH]), include=[])["ids"])
        return found

    def iter_ids(self, *, batch_size: int = 5000) -> Iterator[list[str]]:
        """Every record id of every namespace, in batches."""
        for _, ids in self.iter_namespace_ids(batch_size=batch_size):
            yield ids

    def iter_namespace_ids(self, *, batch_size: int = 5000) -> Iterator[tuple[str | None, list[str]]]:
        """Every record id in batches, each with the namespace whose collection holds it
        (``None`` for the shared collection of the old layout, which holds any namespace)."""
        self._fresh()
        for namespace, collection in self._targets(None):
            offset = 0
            while True:
                with chroma_errors("listing vectors"):
                    ids = collection.get(include=[], limit=batch_size, offset=offset)["ids"]
                if not ids:
                    break
                yield namespace, list(ids)
                offset += len(ids)

    def count(self, namespace: str | None = None) -> int:
        self._fresh()
        with chroma_errors("counting vectors"):
            if self.shared is not None and namespace is not None:
                return len(self.shared.get(where={"namespace": namespace}, include=[])["ids"])
            return sum(int(collection.count()) for _, collection in self._targets(namespace))


def split_shared_collection(
    store: VectorStore, *, batch_size: int = 1000, progress: Callable[[int], None] | None = None
) -> int:
    """Move the vectors of a store written with one shared collection into one collection per
    namespace, without embedding anything again: the stored embeddings, documents and metadata
    are read from the shared collection in batches and added to the namespaces' collections;
    then the shared collection is deleted. Idempotent: interrupted, it is run again (upserts),
    and the shared collection only goes once every record is in its namespace's collection.
    Returns the number of records moved (0 when the store is in the new layout already).
    """
    shared = store.shared
    if shared is None:
        return 0
    store.claim_writes()
    moved = 0
    offset = 0
    store.shared = None  # from here on, writes go to the namespaces' collections
    try:
        while True:
            with chroma_errors("reading the shared collection"):
                got = shared.get(include=["embeddings", "documents", "metadatas"], limit=batch_size, offset=offset)
            if not got["ids"]:
                break
            metas = [dict(m or {}) for m in got["metadatas"]]
            store.upsert(
                list(got["ids"]),
                [d or "" for d in got["documents"]],
                metas,
                embeddings=np.asarray(got["embeddings"], dtype=np.float32),
            )
            moved += len(got["ids"])
            offset += len(got["ids"])
            if progress is not None:
                progress(len(got["ids"]))
        with chroma_errors("counting the moved vectors"):
            total = int(shared.count())
        if moved < total:
            raise VectorStoreError(f"moved {moved} of {total} vectors of the shared collection; run the upgrade again")
        with chroma_errors("deleting the shared collection"):
            store.client.delete_collection(shared.name)
        store.signal_readers()
    except BaseException:
        store.shared = shared
        raise
    return moved


def make_chroma_client(*, path: Path | None = None, host: str | None = None, port: int = 8000) -> Any:
    """A Chroma client with telemetry off: HTTP when ``host`` is set, else a persistent directory."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    # Chroma logs telemetry failures (there is no network) at error level; they mean nothing here.
    logging.getLogger("chromadb.telemetry.product.posthog").setLevel(logging.CRITICAL)
    settings = ChromaSettings(anonymized_telemetry=False)
    if not host and path is None:
        raise ConfigError("a Chroma path or host is needed")
    where = f"server {host}:{port}" if host else f"directory {path}"
    try:
        # chromadb raises plain Exception subclasses for connection problems.
        with chroma_errors(f"opening {where}", also=(Exception,)):
            if host:
                return chromadb.HttpClient(host=host, port=port, settings=settings)
            assert path is not None
            path.mkdir(parents=True, exist_ok=True)
            with _opening(path):  # two processes creating one directory at once
                return chromadb.PersistentClient(path=str(path), settings=settings)
    except VectorStoreError as exc:
        if isinstance(exc.__cause__, PermissionError):
            raise ConfigError(
                f"Chroma directory {path} is not writable: {exc.__cause__.strerror}; set MEMORY_GRAPH_DATA_DIR"
            ) from exc.__cause__
        raise


#: Chroma's write-ahead log, ``embeddings_queue``, keeps each collection's records until its
#: HNSW index is persisted (up to ``hnsw:sync_threshold`` of them), and after every write Chroma
#: purges the written collection's part with ``DELETE ... WHERE topic = ? AND seq_id < ?``. With
#: only the table's ``seq_id`` key, that scans the records every other collection keeps, so one
#: write costs more the more namespaces the store holds. An index on ``(topic, seq_id)`` keeps it
#: to the collection's own records; Chroma's queries are unchanged (SQLite picks the index).
_LOG_INDEX = "CREATE INDEX IF NOT EXISTS memory_graph_embeddings_queue_topic ON embeddings_queue (topic, seq_id)"


def index_chroma_log(path: Path) -> None:
    """Add the index of :data:`_LOG_INDEX` to a Chroma persistent directory; a no-op once it is
    there. A Chroma server's ``--path`` takes it too, with the server running or not."""
    import sqlite3

    database = path / "chroma.sqlite3"
    if not database.exists():
        return
    try:
        with contextlib.closing(sqlite3.connect(database, timeout=60)) as db:
            names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
            if "memory_graph_embeddings_queue_topic" not in names:
                with db:
                    db.execute(_LOG_INDEX)
    except sqlite3.Error as exc:  # the index saves time; without it every write still works
        logger.warning("could not index Chroma's log in %s: %s", path, exc)


def _persist_dir(client: Any) -> Path | None:
    """The directory of a persistent Chroma client; None for a server or an ephemeral client."""
    get_settings = getattr(client, "get_settings", None)
    settings = get_settings() if get_settings is not None else None
    if settings is None or not settings.is_persistent or not settings.persist_directory:
        return None
    return Path(settings.persist_directory)


def _beside(path: Path, suffix: str) -> Path:
    """``<dir><suffix>`` next to a Chroma directory (in the data directory by default)."""
    return path.parent / f"{path.name}{suffix}"


@contextmanager
def _opening(path: Path | None) -> Iterator[None]:
    """Serialise creating a Chroma directory and its collections between processes."""
    if path is None:
        yield
        return
    with exclusive(_beside(path, ".open.lock")):
        yield


@contextmanager
def chroma_errors(doing: str, *, also: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Map Chroma's errors raised inside the block (and those of the types in ``also``) to one-line
    :class:`VectorStoreError` s that say what was being done; our own errors pass through."""
    from chromadb.errors import ChromaError

    mapped: tuple[type[BaseException], ...] = (ChromaError, ValueError, OSError, RuntimeError, *also)
    try:
        yield
    except MemoryGraphError:
        raise
    except mapped as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise VectorStoreError(f"{doing} failed in Chroma: {reason}") from exc


def _timestamp(value: datetime) -> float:
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return value.timestamp()


def chunk_metadata(
    *,
    namespace: str,
    document_id: str,
    observed_at: datetime | None,
    speaker: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The Chroma metadata of a chunk record (filters are pushed down on these): the index's
    own fields, and a copy of the memory's metadata that ``where=`` filters can read (its keys
    prefixed, :data:`~memory_graph.filters.CHROMA_PREFIX`; strings, numbers and booleans only)."""
    meta: dict[str, Any] = {"namespace": namespace, "document_id": document_id}
    if observed_at is not None:
        meta["observed_ts"] = _timestamp(observed_at)
    if speaker is not None:
        meta["speaker"] = speaker
    for key, value in (metadata or {}).items():
        if filterable_key(key) and is_scalar(value):
            meta[CHROMA_PREFIX + key] = value
    return meta


def stored_chunk_metadata(row: ChunkRow) -> dict[str, Any]:
    """:func:`chunk_metadata` of a chunk read back from the relational store."""
    return chunk_metadata(
        namespace=row.namespace,
        document_id=row.document_id,
        observed_at=row.observed_at,
        speaker=speaker_of(row.metadata),
        metadata=row.metadata,
    )


def embedding_texts(texts: Sequence[str], metadatas: Sequence[Mapping[str, Any]]) -> list[str]:
    """What is embedded for each chunk: its text, led by the speaker's name for a turn of a
    conversation ("Maya: I just started a new job…"), so that a question naming the speaker
    finds what they said in the first person ("Where does Maya work?"). A text that names its
    speaker already is embedded as it is."""
    out = []
    for text, meta in zip(texts, metadatas, strict=True):
        speaker = meta.get("speaker")
        out.append(f"{speaker}: {text}" if speaker and speaker.casefold() not in text.casefold() else text)
    return out


def _clean_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """Chroma accepts str/int/float/bool (and non-empty single-type lists); drop the rest."""
    clean = {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool)) and v is not None}
    return clean or {"_": True}
