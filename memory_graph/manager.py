"""MemoryManager: the facade a chat backend, a re-ingest job or a notebook uses.

It composes the relational store (:class:`GraphStore`), the vector index (:class:`VectorStore`)
and the extractor (:class:`Extractor`); the logic lives in :mod:`memory_graph.ingest`,
:mod:`memory_graph.retrieval`, :mod:`memory_graph.context` and :mod:`memory_graph.consistency`.
"""

from __future__ import annotations

import gc
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any

from memory_graph import consistency
from memory_graph.config import Settings
from memory_graph.context import TokenCounter, approx_tokens, render_context
from memory_graph.errors import ConfigError, DocumentNotFoundError, EntityNotFoundError, InputError
from memory_graph.extraction import Extractor, normalize_key
from memory_graph.graph_store import GraphStore
from memory_graph.ingest import ROW_KEYS, MemoryInput, make_input, parse_time, store_memories
from memory_graph.records import (
    ConsistencyReport,
    EntityRef,
    EntityView,
    MemoryHit,
    MemoryRecord,
    Mention,
    Stats,
)
from memory_graph.retrieval import DEFAULT_SEARCH, HitExplanation, SearchConfig, explain_search, search_memories
from memory_graph.vector_store import VectorStore

Progress = Callable[[int], None]


class MemoryManager:
    """Entity-aware memory: add text, search it back with its graph context.

    Args:
        settings: where and how to store; ``Settings()`` (embedded defaults or ``MEMORY_GRAPH_*``)
            when omitted.
        graph: a ready :class:`GraphStore` instead of the one the settings describe.
        vectors: a ready :class:`VectorStore` instead of the one the settings describe.
        extractor: a ready :class:`Extractor`; by default the settings' spaCy pipeline, loaded
            on first use.
        search_config: signal weights and bounds for :meth:`search`.

    Safe to share between the threads of one process.

    Example:
        >>> with MemoryManager(Settings(data_dir="./.memory_graph")) as mm:  # doctest: +SKIP
        ...     mm.add("Alice joined Acme in Berlin.", namespace="user-42", metadata={"speaker": "Alice"})
        ...     hits = mm.search("Where does Alice work?", namespace="user-42", k=5)
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        graph: GraphStore | None = None,
        vectors: VectorStore | None = None,
        extractor: Extractor | None = None,
        search_config: SearchConfig = DEFAULT_SEARCH,
    ) -> None:
        self.settings = settings or Settings()
        if graph is None or vectors is None:
            _prepare_data_dir(self.settings)
        # An embedded SQLite file upgrades itself; a server database that is behind says so.
        url = self.settings.sqlalchemy_url
        self.graph = graph or GraphStore.from_url(url, auto_upgrade=url.startswith("sqlite"))
        try:
            self.vectors = vectors or VectorStore.open(
                path=self.settings.chroma_dir,
                host=self.settings.chroma_host,
                port=self.settings.chroma_port,
                collection=self.settings.collection,
                embedding_model=self.settings.embedding_model,
            )
        except BaseException:
            if graph is None:
                self.graph.close()
            raise
        self._extractor = extractor
        self._extractor_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self.search_config = search_config
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def extractor(self) -> Extractor:
        """The extractor, loading the configured spaCy pipeline on first use."""
        if self._extractor is None:
            with self._extractor_lock:
                if self._extractor is None:
                    self._extractor = Extractor.load(self.settings.spacy_model)
        return self._extractor

    def warm_up(self) -> None:
        """Load the spaCy pipeline and the embedder now instead of in the first ``add`` or
        ``search`` (seconds), then take every object alive out of the garbage collector's full
        passes (:func:`gc.freeze`, process-wide, after a last collection).

        A server calls this once at start-up. The libraries loaded leave about 600,000 objects
        that the collector would otherwise walk in each full pass: a pause of about 0.4 s inside
        whichever search or write it lands in. Frozen objects are still freed when their last
        reference goes; only reference cycles among them are no longer collected.
        """
        self.extractor.tokenize("warm up")
        self.vectors.embed(["warm up"])  # one text: also builds the single-text encoder
        gc.collect()
        gc.freeze()

    def close(self) -> None:
        """Release database connections. The manager cannot be used afterwards."""
        if not self._closed:
            self._closed = True
            self.graph.close()

    def __enter__(self) -> MemoryManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _namespace(self, namespace: str | None) -> str:
        return self.settings.namespace if namespace is None else namespace

    # -- writes ------------------------------------------------------------------------------

    def add(
        self,
        text: str,
        *,
        namespace: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        observed_at: datetime | date | str | None = None,
        external_id: str | None = None,
        source: str | None = None,
    ) -> MemoryRecord:
        """Store one memory: chunk it, extract its graph, index its vectors.

        Adding the same memory again (same ``external_id``, or same text when there is none)
        stores nothing twice; the same ``external_id`` with new text replaces the memory.
        ``metadata["speaker"]`` makes first-person pronouns refer to that person.

        Raises:
            InputError: the text is empty, too long or not valid Unicode, or a field is malformed.
        """
        item = make_input(
            text,
            namespace=self._namespace(namespace),
            metadata=metadata,
            observed_at=observed_at,
            external_id=external_id,
            source=source,
            max_chars=self.settings.max_text_chars,
        )
        return self._store([item])[0]

    def add_many(
        self,
        rows: Iterable[Mapping[str, Any]],
        *,
        namespace: str | None = None,
        batch_size: int | None = None,
        progress: Progress | None = None,
    ) -> list[MemoryRecord]:
        """Store many memories through the batch path (``nlp.pipe``, one transaction per batch).

        Each row is a dict with :meth:`add`'s keyword names (``text`` required). Every row is
        validated before anything is stored, so one bad row stores nothing.

        Raises:
            InputError: a row is malformed; the message names its position.
        """
        items = self.validate_rows(rows, namespace=namespace)
        size = batch_size or self.settings.batch_size
        records: list[MemoryRecord] = []
        for i in range(0, len(items), size):
            batch = items[i : i + size]
            records += self._store(batch)
            if progress is not None:
                progress(len(batch))
        return records

    def validate_rows(self, rows: Iterable[Mapping[str, Any]], *, namespace: str | None = None) -> list[MemoryInput]:
        """Check ``add_many`` rows without storing them (used by importers for their reports)."""
        items = []
        for position, row in enumerate(rows):
            items.append(self.validate_row(row, namespace=namespace, where=f"row {position}"))
        return items

    def validate_row(self, row: Mapping[str, Any], *, namespace: str | None = None, where: str = "row") -> MemoryInput:
        if not isinstance(row, Mapping):
            raise InputError(f"{where} must be a mapping with a 'text' key, not {type(row).__name__}")
        unknown = set(row) - ROW_KEYS
        if unknown:
            raise InputError(f"{where} has unknown keys {sorted(unknown)}; allowed: {sorted(ROW_KEYS)}")
        if "text" not in row:
            raise InputError(f"{where} has no 'text'")
        fields = dict(row)
        fields.setdefault("namespace", self._namespace(namespace))
        return make_input(
            fields.pop("text"), max_chars=self.settings.max_text_chars, where=f"text of {where}", **fields
        )

    def _store(self, items: list[MemoryInput]) -> list[MemoryRecord]:
        with self._write_lock:
            return store_memories(
                items,
                graph=self.graph,
                vectors=self.vectors,
                extractor=self.extractor,
                chunk_size=self.settings.chunk_size,
                batch_size=self.settings.batch_size,
                resolve_aliases=self.settings.resolve_aliases,
            )

    def delete(self, document_id: str) -> None:
        """Remove a memory from both stores (its chunks, vectors and graph contributions).

        Raises:
            DocumentNotFoundError: no live memory has this id.
        """
        with self._write_lock:
            deleted = self.graph.delete_document(document_id)
            if deleted is None:
                raise DocumentNotFoundError(document_id)
            self.vectors.delete(deleted.chunk_ids)

    # -- reads -------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        namespace: str | None = None,
        k: int = 5,
        since: datetime | date | str | None = None,
        until: datetime | date | str | None = None,
    ) -> list[MemoryHit]:
        """The ``k`` most relevant chunks of ``namespace`` for ``query``, with their graph context.

        ``since``/``until`` keep memories observed in ``[since, until)``.

        Raises:
            InputError: the query is empty or ``k`` is not positive.
        """
        return search_memories(query, **self._search_arguments(query, namespace, k, since, until))

    def _search_arguments(self, query: Any, namespace: str | None, k: Any, since: Any, until: Any) -> dict[str, Any]:
        """The checked keyword arguments that :meth:`search` and :meth:`explain` pass on."""
        if not isinstance(query, str) or not query.strip():
            raise InputError("query is empty")
        if not isinstance(k, int) or k < 1:
            raise InputError(f"k must be a positive integer, not {k!r}")
        return {
            "namespace": self._namespace(namespace),
            "k": k,
            "graph": self.graph,
            "vectors": self.vectors,
            "extractor": self.extractor,
            "since": parse_time(since, what="since"),
            "until": parse_time(until, what="until"),
            "config": self.search_config,
        }

    def explain(
        self,
        query: str,
        *,
        namespace: str | None = None,
        k: int = 5,
        since: datetime | date | str | None = None,
        until: datetime | date | str | None = None,
    ) -> list[HitExplanation]:
        """:meth:`search`'s hits with why each was found: per-signal ranks, the entities linked
        from the query, and the relations around them whose evidence the hit holds."""
        return explain_search(query, **self._search_arguments(query, namespace, k, since, until))

    def context(
        self,
        query: str,
        *,
        namespace: str | None = None,
        max_tokens: int = 800,
        k: int = 8,
        since: datetime | date | str | None = None,
        until: datetime | date | str | None = None,
        count_tokens: TokenCounter = approx_tokens,
    ) -> str:
        """Prompt-ready text: the hits for ``query`` and their relations, within ``max_tokens``."""
        hits = self.search(query, namespace=namespace, k=k, since=since, until=until)
        return render_context(hits, max_tokens=max_tokens, count_tokens=count_tokens)

    def entity(self, name: str, *, namespace: str | None = None) -> EntityView:
        """Everything known about the entity called ``name`` (its canonical name or an alias).

        Raises:
            EntityNotFoundError: no entity of the namespace has that name or alias.
        """
        ns = self._namespace(namespace)
        found = self.graph.find_entities(ns, [normalize_key(name)]) if name and name.strip() else []
        if not found:
            raise EntityNotFoundError(name, ns)
        entity = found[0]
        details = self.graph.entity_details(entity["id"])
        return EntityView(
            entity=EntityRef(entity["id"], entity["name"], entity["label"]),
            namespace=ns,
            aliases=details["aliases"],
            mention_count=details["mention_count"],
            first_seen=details["first_seen"] or entity["first_seen"],
            last_seen=details["last_seen"] or entity["last_seen"],
            attributes=entity["attributes"],
            relations=details["relations"],
            mentions=[
                Mention(
                    chunk_id=m["chunk_id"],
                    document_id=m["document_id"],
                    text=m["text"],
                    start=m["start"],
                    end=m["end"],
                    sentence=m["chunk_text"][
                        max(0, m["sent_start"] - m["chunk_start"]) : m["sent_end"] - m["chunk_start"]
                    ],
                    observed_at=m["observed_at"],
                )
                for m in details["mentions"]
            ],
        )

    def get(self, document_id: str) -> MemoryRecord:
        """The stored record of a memory.

        Raises:
            DocumentNotFoundError: no live memory has this id.
        """
        row = self.graph.document(document_id)
        if row is None or row.deleted:
            raise DocumentNotFoundError(document_id)
        entities, relations = self.graph.chunk_context(row.chunk_ids)
        return MemoryRecord(
            document_id=row.id,
            external_id=row.external_id,
            namespace=row.namespace,
            chunk_ids=row.chunk_ids,
            entities=list({e.id: e for cid in row.chunk_ids for e in entities.get(cid, [])}.values()),
            relations=list({r.id: r for cid in row.chunk_ids for r in relations.get(cid, [])}.values()),
            created=False,
        )

    def stats(self, namespace: str | None = None) -> Stats:
        """Row counts of both stores, for one namespace or all."""
        counts = self.graph.stats(namespace)
        return Stats(namespace=namespace, vectors=self.vectors.count(namespace), **counts)

    def verify(self, *, repair: bool = False) -> ConsistencyReport:
        """Check that both stores agree; with ``repair``, fix them from the SQL side."""
        with self._write_lock:
            return consistency.verify(self.graph, self.vectors, repair=repair)


def _prepare_data_dir(settings: Settings) -> None:
    needs_dir = settings.database_url is None or settings.chroma_host is None
    if not needs_dir:
        return
    path = settings.data_dir if settings.database_url is None else settings.chroma_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
        # A probe of its own: processes opening one data dir at once (re-ingest workers) must not
        # delete each other's.
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"data directory {path} is not writable ({exc.strerror or exc}); set MEMORY_GRAPH_DATA_DIR or --data-dir"
        ) from exc
