"""The vector index: one Chroma record per chunk, id = chunk id.

Chroma is an index that can always be rebuilt from the relational store. Embeddings are computed
here with the bundled sentence-transformer (never Chroma's default ONNX model, which it would
try to download); the same embedding function is registered with Chroma so a collection reopens
in a new process and stays usable from plain Chroma code. A turn of a conversation is embedded
led by its speaker's name (:func:`embedding_texts`); the stored document is the chunk's text.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from memory_graph.embeddings import DEFAULT_EMBEDDING_MODEL, load_sentence_transformer, load_single_text_encoder
from memory_graph.errors import ConfigError, MemoryGraphError, StoreLockedError, VectorStoreError
from memory_graph.locks import HeldLock, exclusive, holder_pid
from memory_graph.vocabulary import speaker_of

if TYPE_CHECKING:
    from memory_graph.store import ChunkRow

EMBEDDING_FUNCTION_NAME = "memory_graph_sentence_transformer"
_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$")
_UPSERT_BATCH = 1000

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
    ) -> list[tuple[str, float]]: ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def existing_ids(self, ids: Sequence[str]) -> set[str]: ...

    def iter_ids(self, *, batch_size: int = 5000) -> Iterator[list[str]]: ...

    def count(self, namespace: str | None = None) -> int: ...

    def claim_writes(self) -> None:
        """Make sure this process may write the index (before the SQL side of a write)."""
        ...

    def release_writes(self) -> None:
        """Give up what :meth:`claim_writes` took."""
        ...


class VectorStore:
    """Chunk vectors in a Chroma collection.

    Args:
        client: a ``chromadb`` client (persistent, HTTP or ephemeral).
        collection: the collection name.
        embedder: texts → normalised vectors; the bundled MiniLM by default. Unit tests of store
            logic may pass a deterministic one.
        embedding_model: recorded in the collection so its records can be reused safely.

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
    ) -> None:
        if not _COLLECTION_NAME.match(collection) or ".." in collection:
            raise ConfigError(
                f"collection name {collection!r} is invalid: use 3-512 letters, digits, '.', '_' or '-', "
                "starting and ending with a letter or digit"
            )
        self.client = client
        self.name = collection
        self.embedding_model = embedding_model
        self.embed: Embedder = embedder or SentenceTransformerEmbedder(embedding_model)
        self.path = _persist_dir(client)
        self._lock = HeldLock(_beside(self.path, ".lock")) if self.path is not None else None
        self._refresh_lock = threading.Lock()
        self._generation = self._read_generation()
        self.collection = self._open_collection()

    def _open_collection(self) -> Any:
        ef_class = _chroma_embedding_function_class()
        with chroma_errors(f"opening collection {self.name!r}"), _opening(self.path):
            return self.client.get_or_create_collection(
                self.name,
                embedding_function=ef_class(self.embedding_model),
                metadata={"hnsw:space": "cosine", "embedding_model": self.embedding_model},
            )

    # -- several processes on one persistent directory ----------------------------------------

    def claim_writes(self) -> None:
        """Take the directory's write lock (kept until :meth:`release_writes`), first reading
        what another process wrote before it let go.

        Raises:
            StoreLockedError: another process holds it.
        """
        if self._lock is None or self._lock.held:
            return
        if not self._lock.try_acquire():
            raise StoreLockedError(self.path, holder_pid(self._lock.path))
        self._refresh()

    def release_writes(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def _read_generation(self) -> bytes:
        if self.path is None:
            return b""
        try:
            return _beside(self.path, ".generation").read_bytes()
        except FileNotFoundError:
            return b""

    def _wrote(self) -> None:
        """Tell the directory's readers that it changed."""
        if self.path is not None:
            value = f"{os.getpid()}:{time.monotonic_ns()}".encode("ascii")
            _beside(self.path, ".generation").write_bytes(value)
            self._generation = value

    def _fresh(self) -> None:
        """Before a read: open the directory afresh if another process wrote it since."""
        if self._lock is not None and not self._lock.held_in_process():
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
            self.collection = self._open_collection()
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
    ) -> VectorStore:
        """Open a persistent directory (``path``) or a Chroma server (``host``/``port``)."""
        return cls(
            make_chroma_client(path=path, host=host, port=port),
            collection,
            embedder=embedder,
            embedding_model=embedding_model,
        )

    def upsert(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[dict[str, Any]],
        *,
        embeddings: np.ndarray | None = None,
    ) -> None:
        """Embed (unless ``embeddings`` are given) and upsert chunk records."""
        if not ids:
            return
        self.claim_writes()
        vectors = embeddings if embeddings is not None else self.embed(embedding_texts(texts, metadatas))
        with chroma_errors("writing vectors"):
            for i in range(0, len(ids), _UPSERT_BATCH):
                j = i + _UPSERT_BATCH
                self.collection.upsert(
                    ids=list(ids[i:j]),
                    embeddings=np.asarray(vectors[i:j], dtype=np.float32),
                    documents=list(texts[i:j]),
                    metadatas=[_clean_metadata(m) for m in metadatas[i:j]],
                )
        self._wrote()

    def query(
        self,
        embedding: np.ndarray,
        *,
        namespace: str | None,
        k: int,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[tuple[str, float]]:
        """Nearest chunks of one namespace (``None``: of the whole collection):
        ``(chunk_id, cosine similarity)``, best first. The filters go down to Chroma."""
        clauses: list[dict[str, Any]] = [] if namespace is None else [{"namespace": namespace}]
        if since is not None:
            clauses.append({"observed_ts": {"$gte": _timestamp(since)}})
        if until is not None:
            clauses.append({"observed_ts": {"$lt": _timestamp(until)}})
        where = None if not clauses else clauses[0] if len(clauses) == 1 else {"$and": clauses}
        self._fresh()
        try:
            with chroma_errors("vector search"):
                result = self._query(embedding, k, where)
        except VectorStoreError:
            # A reader may load the index in the moment a writer adds to it: read it afresh, once.
            if self._lock is None or self._lock.held_in_process():
                raise
            self._generation = b"?"
            self._refresh()
            with chroma_errors("vector search"):
                result = self._query(embedding, k, where)
        ids = result["ids"][0] if result["ids"] else []
        distances = result["distances"][0] if result.get("distances") else [0.0] * len(ids)
        return [(i, 1.0 - float(d)) for i, d in zip(ids, distances, strict=True)]

    def _query(self, embedding: np.ndarray, k: int, where: Any) -> Any:
        return self.collection.query(
            query_embeddings=np.asarray([embedding], dtype=np.float32),
            n_results=max(1, k),
            where=where,
            include=["distances"],
        )

    def delete(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        self.claim_writes()
        with chroma_errors("deleting vectors"):
            for i in range(0, len(ids), _UPSERT_BATCH):
                self.collection.delete(ids=list(ids[i : i + _UPSERT_BATCH]))
        self._wrote()

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        self._fresh()
        with chroma_errors("reading vector ids"):
            for i in range(0, len(ids), _UPSERT_BATCH):
                found.update(self.collection.get(ids=list(ids[i : i + _UPSERT_BATCH]), include=[])["ids"])
        return found

    def iter_ids(self, *, batch_size: int = 5000) -> Iterator[list[str]]:
        """Every record id in the collection, in batches."""
        offset = 0
        self._fresh()
        while True:
            with chroma_errors("listing vectors"):
                ids = self.collection.get(include=[], limit=batch_size, offset=offset)["ids"]
            if not ids:
                return
            yield list(ids)
            offset += len(ids)

    def count(self, namespace: str | None = None) -> int:
        self._fresh()
        with chroma_errors("counting vectors"):
            if namespace is None:
                return int(self.collection.count())
            return len(self.collection.get(where={"namespace": namespace}, include=[])["ids"])


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
    """Serialise creating a Chroma directory and its collection between processes."""
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
    *, namespace: str, document_id: str, observed_at: datetime | None, speaker: str | None = None
) -> dict[str, Any]:
    """The Chroma metadata of a chunk record (filters are pushed down on these)."""
    meta: dict[str, Any] = {"namespace": namespace, "document_id": document_id}
    if observed_at is not None:
        meta["observed_ts"] = _timestamp(observed_at)
    if speaker is not None:
        meta["speaker"] = speaker
    return meta


def stored_chunk_metadata(row: ChunkRow) -> dict[str, Any]:
    """:func:`chunk_metadata` of a chunk read back from the relational store."""
    return chunk_metadata(
        namespace=row.namespace,
        document_id=row.document_id,
        observed_at=row.observed_at,
        speaker=speaker_of(row.metadata),
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
