"""MemoryManager: the facade a chat backend, a re-ingest job or a notebook uses.

It composes the relational store (:class:`GraphStore`), the vector index (:class:`VectorStore`)
and the extractor (:class:`Extractor`); the logic lives in :mod:`memory_graph.ingest`,
:mod:`memory_graph.retrieval`, :mod:`memory_graph.context` and :mod:`memory_graph.consistency`.
It is the one object a user needs: nothing outside this module touches its private state.
"""

from __future__ import annotations

import dataclasses
import gc
import numbers
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

from memory_graph import consistency
from memory_graph.config import Settings
from memory_graph.context import TokenCounter, approx_tokens, render_context
from memory_graph.errors import ConfigError, DocumentNotFoundError, EntityNotFoundError, InputError, NotFoundError
from memory_graph.extraction import Extractor
from memory_graph.filters import MetadataFilter, parse_where
from memory_graph.ingest import (
    ROW_KEYS,
    InputLimits,
    MemoryInput,
    check_chars,
    check_namespace,
    check_string,
    make_input,
    parse_time,
    store_memories,
)
from memory_graph.records import (
    ConsistencyReport,
    EntityRef,
    EntityView,
    Forgotten,
    MemoryHit,
    MemoryRecord,
    Mention,
    Merge,
    Stats,
)
from memory_graph.retrieval import DEFAULT_SEARCH, HitExplanation, SearchConfig, Searcher, states
from memory_graph.store import DocumentRow, GraphStore
from memory_graph.vector_store import ChromaRegistry, VectorIndex, VectorStore, split_shared_collection
from memory_graph.vocabulary import COOCCURRENCE, normalize_key

Progress = Callable[[int], None]


class MemoryManager:
    """Entity-aware memory: add text, search it back with its graph context.

    Args:
        settings: where and how to store; ``Settings()`` (embedded defaults or ``MEMORY_GRAPH_*``)
            when omitted.
        graph: a ready :class:`GraphStore` instead of the one the settings describe.
        vectors: a ready vector index (a :class:`VectorStore`) instead of the one the settings describe.
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
        vectors: VectorIndex | None = None,
        extractor: Extractor | None = None,
        search_config: SearchConfig = DEFAULT_SEARCH,
    ) -> None:
        self.settings = settings or Settings()
        if graph is None or vectors is None:
            prepare_data_dir(self.settings)
        # An embedded SQLite file upgrades itself; a server database that is behind says so.
        url = self.settings.sqlalchemy_url
        self.graph = graph or GraphStore.from_url(
            url, auto_upgrade=url.startswith("sqlite"), sqlite_synchronous=self.settings.sqlite_synchronous
        )
        try:
            self.vectors = vectors or VectorStore.open(
                path=self.settings.chroma_dir,
                host=self.settings.chroma_host,
                port=self.settings.chroma_port,
                collection=self.settings.collection,
                embedding_model=self.settings.embedding_model,
                registry=self.graph,
            )
        except BaseException:
            if graph is None:
                self.graph.close()
            raise
        if isinstance(self.vectors, VectorStore) and isinstance(self.vectors.registry, ChromaRegistry):
            # A store built without one records its namespaces' collections in this manager's.
            self.vectors.registry = self.graph
        self._extractor = extractor
        self._extractor_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._search_config = search_config
        self._searcher: Searcher | None = None
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

    @property
    def searcher(self) -> Searcher:
        """The :class:`Searcher` behind :meth:`search` and :meth:`explain`."""
        if self._searcher is None:
            extractor = self.extractor
            with self._extractor_lock:
                if self._searcher is None:
                    self._searcher = Searcher(self.graph, self.vectors, extractor, self._search_config)
        return self._searcher

    @property
    def search_config(self) -> SearchConfig:
        """Signal weights and bounds of :meth:`search`; assign a new one to change them."""
        return self._search_config

    @search_config.setter
    def search_config(self, config: SearchConfig) -> None:
        self._search_config = config
        if self._searcher is not None:
            self._searcher.config = config

    def warm_up(self) -> None:
        """Load the spaCy pipeline and the embedder now instead of in the first ``add`` or
        ``search`` (seconds), then take every object alive out of the garbage collector's full
        passes (:func:`gc.freeze`, process-wide, after a last collection).

        A server calls this once at start-up. The libraries loaded leave hundreds of thousands of
        objects that the collector would otherwise walk in each full pass: a pause inside
        whichever search or write it lands in (docs/performance.md, "Garbage collection").
        Frozen objects are still freed when their last reference goes; only reference cycles
        among them are no longer collected.
        """
        self.extractor.tokenize("warm up")
        self.vectors.embed(["warm up"])  # one text: also builds the single-text encoder
        gc.collect()
        gc.freeze()

    def close(self) -> None:
        """Release database connections. The manager cannot be used afterwards."""
        if not self._closed:
            self._closed = True
            self.vectors.release_writes()
            self.graph.close()

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One write of this manager: after this process's other writes, and only while this
        process may write the vector index (an embedded directory has one writing process:
        :meth:`VectorIndex.claim_writes` raises :class:`StoreLockedError` before anything changes)."""
        with self._write_lock:
            self.vectors.claim_writes()
            yield

    def __enter__(self) -> MemoryManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _namespace(self, namespace: str | None) -> str:
        """The namespace given, checked, or the settings' one when none is given."""
        return check_namespace(self.settings.namespace if namespace is None else namespace)

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
            limits=InputLimits.of(self.settings),
        )
        return self.add_validated([item])[0]

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
        if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Iterable):
            raise InputError(f"rows must be an iterable of mappings, not {type(rows).__name__}")
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise InputError(f"batch_size must be a positive integer, not {batch_size!r}")
        items = self.validate_rows(rows, namespace=namespace)
        size = batch_size or self.settings.batch_size
        records: list[MemoryRecord] = []
        for i in range(0, len(items), size):
            batch = items[i : i + size]
            records += self.add_validated(batch)
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
        """Check one ``add_many`` row; ``where`` names it in the error.

        Raises:
            InputError: the row is malformed.
        """
        if not isinstance(row, Mapping):
            raise InputError(f"{where} must be a mapping with a 'text' key, not {type(row).__name__}")
        unknown = set(row) - ROW_KEYS
        if unknown:
            raise InputError(f"{where} has unknown keys {sorted(unknown, key=repr)}; allowed: {sorted(ROW_KEYS)}")
        if "text" not in row:
            raise InputError(f"{where} has no 'text'")
        fields = dict(row)
        fields["namespace"] = self._namespace(namespace if fields.get("namespace") is None else fields["namespace"])
        return make_input(fields.pop("text"), limits=InputLimits.of(self.settings), where=f"text of {where}", **fields)

    def add_validated(
        self, items: Sequence[MemoryInput], *, embeddings: Mapping[str, np.ndarray] | None = None
    ) -> list[MemoryRecord]:
        """Store memories already checked by :meth:`validate_row` as one batch (one SQL
        transaction; the batch path of :meth:`add_many`, which re-ingest uses).

        ``embeddings`` maps a chunk's content hash to a vector already computed with the vector
        store's model (a re-ingest reuses the stored vectors this way); other chunks are embedded.
        """
        with self._writing():
            return store_memories(
                items,
                graph=self.graph,
                vectors=self.vectors,
                extractor=self.extractor,
                chunk_size=self.settings.chunk_size,
                batch_size=self.settings.batch_size,
                embeddings=embeddings,
                resolve_aliases=self.settings.resolve_aliases,
            )

    def index_unconfirmed(self, chunk_ids: Sequence[str]) -> set[str]:
        """Finish memories an interrupted write stored in SQL but whose vectors it did not
        confirm: index those of ``chunk_ids`` again from their SQL rows. Returns the ids of the
        documents finished so."""
        rows = self.graph.chunks_to_index(chunk_ids) if chunk_ids else []
        if not rows:
            return set()
        with self._writing():
            consistency.reindex(self.graph, self.vectors, rows)
        return {r.document_id for r in rows}

    def delete(self, memory_id: str, *, namespace: str | None = None) -> None:
        """Remove a memory from both stores (its chunks, vectors and graph contributions).

        ``memory_id`` is found as :meth:`get` finds it: the memory's ``document_id``, else its
        ``external_id`` in ``namespace`` (the default namespace when omitted), so
        ``mm.add(text, external_id="m2"); mm.delete("m2")`` works.

        Raises:
            DocumentNotFoundError: no live memory has this id; nothing changes.
        """
        with self._writing():
            deleted = self.graph.delete_document(self._resolve(memory_id, namespace).id)
            if deleted is None:
                raise DocumentNotFoundError(memory_id, self._namespace(namespace))
            self.vectors.delete(deleted.chunk_ids, namespace=deleted.namespace)

    def forget(self, namespace: str) -> Forgotten:
        """Remove every row and every vector of ``namespace`` (a user who leaves): its memories
        with their tombstones, chunks, keyword index, entities, aliases, mentions, relations,
        evidence, merges and re-ingest jobs, then the namespace's records in the vector index.

        Returns what was removed; a namespace that holds nothing gives all counts zero and
        changes nothing. It is idempotent: after a failure between the two stores, calling it
        again removes what is left.

        Raises:
            InputError: ``namespace`` is not a non-empty string.
        """
        if not isinstance(namespace, str) or not namespace.strip():
            raise InputError(f"namespace {namespace!r} must be a non-empty string")
        with self._writing():
            counts, chunk_ids = self.graph.forget_namespace(namespace)
            vectors = self.vectors.delete_namespace(namespace)
            # Records of these chunks written without the namespace in their metadata, if any.
            stray = self.vectors.existing_ids(chunk_ids) if chunk_ids else set()
            self.vectors.delete(sorted(stray))
        return Forgotten(namespace=namespace, vectors=vectors + len(stray), **counts)

    def _resolve(self, memory_id: Any, namespace: str | None) -> DocumentRow:
        """The live document :meth:`get` and :meth:`delete` mean by ``memory_id``: a memory's
        own id (of ``namespace`` when one is given), else the live memory whose external id it is
        in ``namespace`` (the default one when omitted)."""
        ns = self._namespace(namespace)
        if not isinstance(memory_id, str):
            raise InputError(f"memory id must be a string, not {type(memory_id).__name__}")
        try:
            check_chars(memory_id, "memory id")
        except InputError:
            raise DocumentNotFoundError(memory_id, ns) from None  # no stored id holds such characters
        if not memory_id:
            raise DocumentNotFoundError(memory_id, ns)
        row = self.graph.document(memory_id) if _could_be_document_id(memory_id) else None
        if row is not None and not row.deleted and (namespace is None or row.namespace == namespace):
            return row
        # The external id is the document's key; a key is also "sha256:<hash>" for a memory
        # added without one, which is no external id of the caller's.
        found = self.graph.document_ids_by_key(ns, [memory_id]).get(memory_id)
        row = self.graph.document(found) if found is not None else None
        if row is None or row.deleted or row.external_id != memory_id:
            raise DocumentNotFoundError(memory_id, ns)
        return row

    # -- reads -------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        namespace: str | None = None,
        k: int = 5,
        since: datetime | date | str | None = None,
        until: datetime | date | str | None = None,
        as_of: datetime | date | str | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> list[MemoryHit]:
        """The ``k`` most relevant chunks of ``namespace`` for ``query``, with their graph context.

        ``since``/``until`` keep memories observed in ``[since, until)``; ``where`` keeps those
        whose metadata matches it: ``{"kind": "episodic"}``, ``{"kind": {"$in": [...]}}``, several
        keys (all must match) or ``{"$and": [...]}`` (:mod:`memory_graph.filters`). A filter that no
        memory matches, a key none has included, gives no hits. A question about a
        value that changes (where someone lives, works...: :data:`memory_graph.facts.STATES`)
        puts first the memories that state the value it asks for: the current one, or the one
        before ("used to"), or the one at a date it names; ``as_of`` answers as of that date. The
        states of each hit's relations carry their status (current, former, planned) then.

        Raises:
            InputError: the query is empty, longer than ``max_query_chars`` or not valid Unicode;
                ``k`` is not an integer from 1 to ``max_k``; a time is not a date in range; ``where``
                is malformed (an unknown operator, a value that is not a string, number or boolean).
        """
        ns, since_at, until_at, metadata = self._search_scope(query, namespace, k, since, until, where)
        as_of_at = parse_time(as_of, what="as_of")
        return self.searcher.search(
            query, namespace=ns, k=k, since=since_at, until=until_at, as_of=as_of_at, where=metadata
        )

    def _search_scope(
        self, query: Any, namespace: str | None, k: Any, since: Any, until: Any, where: Any
    ) -> tuple[str, datetime | None, datetime | None, MetadataFilter | None]:
        """The checked namespace, time window and filter of :meth:`search` and :meth:`explain`."""
        if isinstance(query, str) and not query.strip():
            raise InputError("query is empty")
        check_string(query, "query", max_chars=self.settings.max_query_chars, setting="MEMORY_GRAPH_MAX_QUERY_CHARS")
        check_k(k, self.settings.max_k)
        since_at, until_at = parse_time(since, what="since"), parse_time(until, what="until")
        return self._namespace(namespace), since_at, until_at, parse_where(where)

    def explain(
        self,
        query: str,
        *,
        namespace: str | None = None,
        k: int = 5,
        since: datetime | date | str | None = None,
        until: datetime | date | str | None = None,
        as_of: datetime | date | str | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> list[HitExplanation]:
        """:meth:`search`'s hits with why each was found: per-signal ranks, the entities linked
        from the query, and the relations around them whose evidence the hit holds."""
        ns, since_at, until_at, metadata = self._search_scope(query, namespace, k, since, until, where)
        as_of_at = parse_time(as_of, what="as_of")
        return self.searcher.explain(
            query, namespace=ns, k=k, since=since_at, until=until_at, as_of=as_of_at, where=metadata
        )

    def context(
        self,
        query: str,
        *,
        namespace: str | None = None,
        max_tokens: int = 800,
        k: int = 8,
        since: datetime | date | str | None = None,
        until: datetime | date | str | None = None,
        as_of: datetime | date | str | None = None,
        where: Mapping[str, Any] | None = None,
        count_tokens: TokenCounter = approx_tokens,
    ) -> str:
        """Prompt-ready text: the hits for ``query`` and their relations, within ``max_tokens``.
        A replaced value is marked as replaced, so that a reader does not take it for current.
        ``where`` filters on metadata as in :meth:`search`."""
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise InputError(f"max_tokens must be a positive integer, not {max_tokens!r}")
        hits = self.search(query, namespace=namespace, k=k, since=since, until=until, as_of=as_of, where=where)
        return render_context(hits, max_tokens=max_tokens, count_tokens=count_tokens)

    def entity(
        self, name: str, *, namespace: str | None = None, as_of: datetime | date | str | None = None
    ) -> EntityView:
        """Everything known about the entity called ``name`` (its canonical name or an alias).

        Its relations come current values first, then planned ones, the other relations, and
        former values last, each state with its status and period as of ``as_of`` (else now).

        Raises:
            EntityNotFoundError: no entity of the namespace has that name or alias.
        """
        ns = self._namespace(namespace)
        check_string(name, "entity name", max_chars=self.settings.max_query_chars)
        found = self.graph.find_entities(ns, [normalize_key(name)]) if name.strip() else []
        if not found:
            raise EntityNotFoundError(name, ns)
        entity = found[0]
        details = self.graph.entity_details(entity.id)
        when = parse_time(as_of, what="as_of") or datetime.now(UTC)
        relations = states.annotate({"": details.relations}, graph=self.graph, namespace=ns, when=when)[""]
        return EntityView(
            entity=EntityRef(entity.id, entity.name, entity.label),
            namespace=ns,
            aliases=details.aliases,
            mention_count=details.mention_count,
            first_seen=details.first_seen or entity.first_seen,
            last_seen=details.last_seen or entity.last_seen,
            attributes=entity.attributes,
            relations=states.by_status(relations),
            mentions=[
                Mention(
                    chunk_id=m.chunk_id,
                    document_id=m.document_id,
                    text=m.text,
                    start=m.start,
                    end=m.end,
                    sentence=m.sentence,
                    observed_at=m.observed_at,
                )
                for m in details.mentions
            ],
        )

    def merges(self, namespace: str | None = None) -> list[Merge]:
        """The entity merges of a namespace ("Bob" into "Bob Smith" at ingest), newest first."""
        return self.graph.merges(self._namespace(namespace))

    def undo_merge(self, merge_id: int) -> None:
        """Split a merged entity off again: its mentions and relations are its own once more.

        Raises:
            NotFoundError: there is no such merge, or it was already undone.
        """
        if isinstance(merge_id, bool) or not isinstance(merge_id, int):
            raise InputError(f"merge id must be an integer, not {type(merge_id).__name__}")
        if not 0 < merge_id < 2**63:  # no merge has it (and the database could not compare it)
            raise NotFoundError("merge", merge_id)
        with self._writing():
            self.graph.undo_merge(merge_id)

    def get(self, memory_id: str, *, namespace: str | None = None) -> MemoryRecord:
        """The stored record of a memory.

        ``memory_id`` is the memory's ``document_id`` (``MemoryRecord.document_id``), else the
        ``external_id`` it was added with, looked up in ``namespace`` (the default namespace
        when omitted). A document id is matched first; given a ``namespace``, only a memory of
        that namespace matches.

        Raises:
            DocumentNotFoundError: no live memory has this id.
        """
        row = self._resolve(memory_id, namespace)
        entities, relations = self.graph.chunk_context(row.chunk_ids)
        return MemoryRecord(
            document_id=row.id,
            external_id=row.external_id,
            namespace=row.namespace,
            chunk_ids=row.chunk_ids,
            entities=list({e.id: e for cid in row.chunk_ids for e in entities.get(cid, [])}.values()),
            relations=list(
                {
                    r.id: r for cid in row.chunk_ids for r in relations.get(cid, []) if r.predicate != COOCCURRENCE
                }.values()
            ),
            created=False,
        )

    def stats(self, namespace: str | None = None) -> Stats:
        """Row counts of both stores, for one namespace or all."""
        counts = self.graph.stats(None if namespace is None else check_namespace(namespace))
        return Stats(namespace=namespace, vectors=self.vectors.count(namespace), **dataclasses.asdict(counts))

    def upgrade_vectors(self, *, progress: Progress | None = None) -> int:
        """Move the vectors of a store written with one shared Chroma collection into one
        collection per namespace, reusing the stored embeddings (``memory-graph db upgrade``).
        Returns the number moved: 0 when the store has the per-namespace layout already."""
        if not isinstance(self.vectors, VectorStore):
            return 0
        with self._writing():
            return split_shared_collection(self.vectors, progress=progress)

    def verify(self, *, repair: bool = False) -> ConsistencyReport:
        """Check that both stores agree; with ``repair``, fix them from the SQL side."""
        if not repair:  # a reader may verify: no write lock across processes
            with self._write_lock:
                return consistency.verify(self.graph, self.vectors)
        with self._writing():
            return consistency.verify(self.graph, self.vectors, repair=True)


def check_k(k: Any, max_k: int) -> int:
    """``k``: an integer (not a bool) from 1 to ``max_k``.

    Raises:
        InputError: it is not.
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise InputError(f"k must be an integer, not {type(k).__name__} {k!r}")
    value = int(k)
    if not 1 <= value <= max_k:
        raise InputError(f"k is {value}; it must be from 1 to the limit of {max_k:,} (MEMORY_GRAPH_MAX_K)")
    return value


def _could_be_document_id(document_id: Any) -> bool:
    """Whether a stored document could have this id (a string of at most 64 characters that the
    database can compare); anything else names no document.

    Raises:
        InputError: the id is not a string.
    """
    if not isinstance(document_id, str):
        raise InputError(f"document id must be a string, not {type(document_id).__name__}")
    try:
        check_chars(document_id, "document id")
    except InputError:
        return False
    return 0 < len(document_id) <= 64


def prepare_data_dir(settings: Settings) -> None:
    """Create the data directory the settings' embedded stores live in, and check it is writable.

    Raises:
        ConfigError: the directory cannot be created or written.
    """
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
