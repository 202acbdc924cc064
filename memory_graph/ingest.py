"""The write path: validate, chunk, extract, store SQL, index vectors, confirm.

Order (``docs/architecture.md``, "Consistency between the two stores"): the document, its
chunks and its graph are written to SQL in one transaction; then the chunk vectors are upserted
under the chunk ids; then ``chunks.indexed_at`` is set. Every step is idempotent, so a retry after a failure
at any point is safe, and ``verify(repair=True)`` finishes what a crash interrupted.
"""

from __future__ import annotations

import hashlib
import json
import math
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from memory_graph.chunking import chunk_text, content_hash
from memory_graph.config import Settings
from memory_graph.errors import InputError
from memory_graph.extraction import Extractor
from memory_graph.records import ExtractedEntity, MemoryRecord
from memory_graph.store import ChunkWrite, DocumentWrite, GraphStore, WriteResult
from memory_graph.vector_store import VectorIndex, chunk_metadata, embedding_texts
from memory_graph.vocabulary import COOCCURRENCE, TURN_GAP, speaker_of

#: The keyword arguments of ``add()``, which are also the keys of ``add_many()`` rows.
ROW_KEYS = frozenset({"text", "namespace", "metadata", "observed_at", "external_id", "source"})


@dataclass
class MemoryInput:
    """One memory to store, validated."""

    text: str
    namespace: str
    metadata: dict[str, Any]
    observed_at: datetime
    external_id: str | None
    source: str | None


@dataclass(frozen=True)
class InputLimits:
    """The limits a memory's fields are checked against (from :class:`Settings`)."""

    max_chars: int = 200_000
    max_metadata_bytes: int = 65_536
    max_metadata_depth: int = 8

    @classmethod
    def of(cls, settings: Settings) -> InputLimits:
        return cls(settings.max_text_chars, settings.max_metadata_bytes, settings.max_metadata_depth)


#: The times accepted (``observed_at``, ``since``, ``until``, ``as_of``): far enough inside
#: ``datetime``'s range that the arithmetic on them (turn gaps, "next year" in a text) cannot overflow.
EARLIEST = datetime(1000, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
#: The longest ``external_id`` and ``source`` (the columns' sizes) and namespace.
MAX_ID_CHARS = 512
MAX_SOURCE_CHARS = 255
MAX_NAMESPACE_CHARS = 255


def check_chars(value: str, what: str) -> str:
    """``value`` if every database and the vector store can hold it: no NUL, no lone surrogate.

    Raises:
        InputError: it holds a NUL character or a lone surrogate (not valid Unicode).
    """
    nul = value.find("\x00")
    if nul >= 0:
        raise InputError(f"{what} contains a NUL character (at character {nul})")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"{what} is not valid Unicode (lone surrogate at character {exc.start})") from None
    return value


def check_string(value: Any, what: str, *, max_chars: int, setting: str | None = None) -> str:
    """A string field: a ``str`` of at most ``max_chars`` characters that the stores can hold.

    Raises:
        InputError: it is not a string, too long, or holds NUL or a lone surrogate.
    """
    if not isinstance(value, str):
        raise InputError(f"{what} must be a string, not {type(value).__name__}")
    if len(value) > max_chars:
        fix = f"; shorten it or raise {setting}" if setting else ""
        raise InputError(f"{what} has {len(value):,} characters, more than the limit of {max_chars:,}{fix}")
    return check_chars(value, what)


def check_namespace(namespace: Any) -> str:
    """A namespace: a non-blank string of at most 255 characters, no control characters.
    It is a key, never a path: ``"../x"`` is a namespace like any other.

    Raises:
        InputError: it is not one.
    """
    if not isinstance(namespace, str) or not namespace.strip() or len(namespace) > MAX_NAMESPACE_CHARS:
        shown = namespace if not isinstance(namespace, str) else namespace[:40] + ("..." if len(namespace) > 40 else "")
        raise InputError(f"namespace {shown!r} must be a non-empty string of at most {MAX_NAMESPACE_CHARS} characters")
    check_chars(namespace, "namespace")
    if any(unicodedata.category(c) == "Cc" for c in namespace):
        raise InputError(f"namespace {namespace!r} contains control characters")
    return namespace


def make_input(
    text: Any,
    *,
    namespace: Any,
    metadata: Mapping[str, Any] | None = None,
    observed_at: datetime | date | str | None = None,
    external_id: Any = None,
    source: Any = None,
    limits: InputLimits = InputLimits(),
    where: str = "text",
) -> MemoryInput:
    """Validate one memory's fields.

    Raises:
        InputError: the text is not a string, empty, too long or holds NUL or a lone surrogate;
            the metadata is not a JSON object within the limits; ``observed_at`` is not a date
            in range; the namespace, ``external_id`` or ``source`` is malformed.
    """
    if isinstance(text, str) and not text.strip():
        raise InputError(f"{where} is empty")
    check_string(text, where, max_chars=limits.max_chars, setting="MEMORY_GRAPH_MAX_TEXT_CHARS")
    if isinstance(external_id, bool) or not isinstance(external_id, (str, int, type(None))):
        raise InputError(f"external_id of {where} must be a string, not {type(external_id).__name__}")
    if external_id is not None:
        external_id = check_string(str(external_id), f"external_id of {where}", max_chars=MAX_ID_CHARS)
        if not external_id.strip():
            raise InputError(f"external_id of {where} is empty (leave it out for none)")
    if source is not None:
        check_string(source, f"source of {where}", max_chars=MAX_SOURCE_CHARS)
    return MemoryInput(
        text=text,
        namespace=check_namespace(namespace),
        metadata=check_metadata(metadata, where, limits),
        observed_at=parse_time(observed_at, what=f"observed_at of {where}") or datetime.now(UTC),
        external_id=external_id,
        source=source,
    )


def check_metadata(metadata: Any, where: str, limits: InputLimits = InputLimits()) -> dict[str, Any]:
    """Metadata as the JSON object it is stored as (dates become ISO strings).

    The walk is iterative and stops at the depth limit, so a deeply nested or self-containing
    value is refused rather than exhausting the stack.

    Raises:
        InputError: not a mapping; a key is not a string; a value is not JSON (sets, bytes,
            NaN, other objects); a string holds NUL or a lone surrogate; deeper than
            ``max_metadata_depth`` or larger than ``max_metadata_bytes``.
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InputError(f"metadata of {where} must be a mapping, not {type(metadata).__name__}")
    stack: list[tuple[Any, int, str]] = [(metadata, 1, "metadata")]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, (Mapping, list, tuple)):
            if depth > limits.max_metadata_depth:
                raise InputError(
                    f"metadata of {where} is nested deeper than the limit of {limits.max_metadata_depth} "
                    f"(at {path}); flatten it or raise MEMORY_GRAPH_MAX_METADATA_DEPTH"
                )
            if isinstance(value, Mapping):
                for key, item in value.items():
                    if not isinstance(key, str):
                        raise InputError(
                            f"metadata of {where} has the key {key!r} ({type(key).__name__}) at {path}; "
                            "keys must be strings"
                        )
                    check_chars(key, f"a key of {path} of {where}")
                    stack.append((item, depth + 1, f"{path}.{key}"))
            else:
                stack.extend((item, depth + 1, f"{path}[{i}]") for i, item in enumerate(value))
        elif isinstance(value, str):
            check_chars(value, f"{path} of {where}")
        elif isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{path} of {where} is {value!r}, which JSON cannot hold")
        elif not isinstance(value, (bool, int, float, datetime, date, type(None))):
            raise InputError(f"{path} of {where} is a {type(value).__name__}, not a JSON value")
    try:
        encoded = json.dumps(metadata, default=_json_default, ensure_ascii=False)
    except (TypeError, ValueError) as exc:  # e.g. an int too long to print
        raise InputError(f"metadata of {where} is not JSON-serialisable: {exc}") from None
    size = len(encoded.encode("utf-8"))
    if size > limits.max_metadata_bytes:
        raise InputError(
            f"metadata of {where} is {size:,} bytes of JSON, more than the limit of {limits.max_metadata_bytes:,}; "
            "raise MEMORY_GRAPH_MAX_METADATA_BYTES"
        )
    clean: dict[str, Any] = json.loads(encoded)
    return clean


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def parse_time(value: datetime | date | str | float | None, *, what: str = "time") -> datetime | None:
    """A timezone-aware UTC datetime from a datetime, date, ISO 8601 string or epoch seconds.

    A datetime or string without a timezone is taken as UTC.

    Raises:
        InputError: not a date/time, or outside :data:`EARLIEST` .. :data:`LATEST`.
    """
    if value is None or value == "":
        return None
    try:
        when = _to_datetime(value)
    except (OverflowError, OSError, ValueError):  # a time beyond datetime's range (a string's too)
        shown = value if not isinstance(value, str) or len(value) <= 60 else value[:57] + "..."
        raise InputError(
            f"{what} {shown!r} is out of range (between the years {EARLIEST.year} and {LATEST.year - 1})"
        ) from None
    if when is None:
        shown = value if not isinstance(value, str) or len(value) <= 60 else value[:57] + "..."
        raise InputError(f"{what} {shown!r} is not a date/time (use a datetime or an ISO 8601 string)")
    if not EARLIEST <= when < LATEST:
        raise InputError(
            f"{what} {when.isoformat()} is out of range (between the years {EARLIEST.year} and {LATEST.year - 1})"
        )
    return when


def _to_datetime(value: Any) -> datetime | None:
    """``value`` as an aware UTC datetime; None when it is no kind of time.

    Raises:
        OverflowError, OSError, ValueError: a time beyond what ``datetime`` holds.
    """
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        return _to_datetime(parsed)
    return None


def document_id(namespace: str, doc_key: str) -> str:
    return hashlib.sha256(f"{namespace}\x00{doc_key}".encode()).hexdigest()[:32]


def chunk_id(doc_id: str, ordinal: int, chunk_hash: str) -> str:
    return hashlib.sha256(f"{doc_id}\x00{ordinal}\x00{chunk_hash}".encode()).hexdigest()[:32]


def doc_key_of(item: MemoryInput, text_hash: str) -> str:
    return item.external_id if item.external_id is not None else f"sha256:{text_hash}"


def store_memories(
    items: Sequence[MemoryInput],
    *,
    graph: GraphStore,
    vectors: VectorIndex,
    extractor: Extractor,
    chunk_size: int,
    batch_size: int = 64,
    embeddings: Mapping[str, Any] | None = None,
    resolve_aliases: bool = True,
) -> list[MemoryRecord]:
    """Store validated memories (one SQL transaction for the batch) and return their records.

    Memories already stored with identical text are not extracted or embedded again. With
    ``resolve_aliases``, one-word names that can only mean one longer name of the namespace
    ("Bob" and "Bob Smith") are merged afterwards (recorded, undoable).
    ``embeddings`` maps a chunk's content hash to a vector already computed with the vector
    store's model (re-ingest reuses stored vectors this way); other chunks are embedded.
    """
    if not items:
        return []
    hashes = [content_hash(item.text) for item in items]
    keys = [doc_key_of(item, h) for item, h in zip(items, hashes, strict=True)]
    stored = _stored_hashes(graph, items, keys)

    writes: list[DocumentWrite] = []
    for item, text_hash, key in zip(items, hashes, keys, strict=True):
        doc_id = document_id(item.namespace, key)
        write = DocumentWrite(
            id=doc_id,
            namespace=item.namespace,
            doc_key=key,
            external_id=item.external_id,
            source=item.source,
            text=item.text,
            content_hash=text_hash,
            metadata=item.metadata,
            observed_at=item.observed_at,
        )
        if stored.get((item.namespace, key)) != text_hash:
            for piece in chunk_text(item.text, max_chars=chunk_size):
                piece_hash = content_hash(piece.text)
                write.chunks.append(
                    ChunkWrite(
                        chunk_id(doc_id, piece.ordinal, piece_hash),
                        piece.ordinal,
                        piece.start,
                        piece.end,
                        piece.text,
                        piece_hash,
                    )
                )
        writes.append(write)

    # Extraction parses every new chunk of the batch at once (nlp.pipe), then reads the chunks
    # in order: a turn's pronouns may stand for what the turn before it named.
    pending = [(w, c) for w in writes for c in w.chunks]
    docs = extractor.parse_many([c.text for _, c in pending], batch_size=batch_size)
    before = _turns_before(pending, graph)
    for i, ((write, chunk), doc) in enumerate(zip(pending, docs, strict=True)):
        chunk.extraction = extractor.from_doc(
            doc, speaker=speaker_of(write.metadata), observed_at=write.observed_at, antecedents=before(i)
        )

    results = graph.write_documents(writes)
    index_chunks(results, writes, graph=graph, vectors=vectors, embeddings=embeddings)
    if resolve_aliases:
        touched: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for write, chunk in pending:
            touched[write.namespace].update((e.label, e.key) for e in chunk.extraction.entities if not e.pronoun)
        for namespace, named in touched.items():
            graph.resolve_aliases(namespace, named)
    return build_records(results, writes, graph)


def _turns_before(
    pending: Sequence[tuple[DocumentWrite, ChunkWrite]], graph: GraphStore
) -> Callable[[int], list[ExtractedEntity]]:
    """For the ``i``-th pending chunk, the entities named in the turn before it, once the chunks
    before it are extracted: where the chunk opens a turn of a conversation (its memory names a
    speaker and a time), the latest earlier turn of the batch in its namespace at most
    :data:`TURN_GAP` before it, else the latest such turn stored. That turn's speaker is left
    out: a pronoun does not stand for the one spoken to."""
    last: dict[str, int] = {}  # namespace -> the last chunk of the latest memory of the batch so far
    previous: list[int | tuple[str, list[ExtractedEntity]] | None] = []
    for i, (write, chunk) in enumerate(pending):
        found: int | tuple[str, list[ExtractedEntity]] | None = None
        if chunk.ordinal == 0 and write.observed_at is not None and speaker_of(write.metadata):
            j = last.get(write.namespace)
            if j is not None and timedelta(0) <= write.observed_at - pending[j][0].observed_at <= TURN_GAP:
                found = j if speaker_of(pending[j][0].metadata) else None
            elif stored := graph.turn_before(write.namespace, write.observed_at, gap=TURN_GAP, besides=write.id):
                speaker, named = stored
                found = (speaker, [ExtractedEntity(name, label, key, name, 0, 0, 0, 0) for label, key, name in named])
        last[write.namespace] = i
        previous.append(found)

    def before(i: int) -> list[ExtractedEntity]:
        found = previous[i]
        if found is None:
            return []
        if isinstance(found, int):
            write, chunk = pending[found]
            found = (speaker_of(write.metadata) or "", chunk.extraction.entities)
        speaker, named = found
        return [e for e in named if e.name != speaker]

    return before


def _stored_hashes(graph: GraphStore, items: Sequence[MemoryInput], keys: Sequence[str]) -> dict[tuple[str, str], str]:
    by_namespace: dict[str, list[str]] = {}
    for item, key in zip(items, keys, strict=True):
        by_namespace.setdefault(item.namespace, []).append(key)
    found: dict[tuple[str, str], str] = {}
    for namespace, ns_keys in by_namespace.items():
        for key, text_hash in graph.content_hashes(namespace, ns_keys).items():
            found[(namespace, key)] = text_hash
    return found


def index_chunks(
    results: Sequence[WriteResult],
    writes: Sequence[DocumentWrite],
    *,
    graph: GraphStore,
    vectors: VectorIndex,
    embeddings: Mapping[str, Any] | None = None,
) -> None:
    """Second and third steps of a write: upsert the new vectors, then confirm them in SQL.

    ``embeddings``: precomputed vectors by chunk content hash (see :func:`store_memories`).
    """
    by_id = {w.id: w for w in writes}
    stale: dict[str, list[str]] = {}
    for r in results:
        if r.removed_chunk_ids:
            stale.setdefault(by_id[r.document_id].namespace, []).extend(r.removed_chunk_ids)
    for namespace, chunk_ids in stale.items():
        vectors.delete(chunk_ids, namespace=namespace)
    ids: list[str] = []
    texts: list[str] = []
    metas: list[dict[str, Any]] = []
    hashes: list[str] = []
    for result in results:
        if not result.created:
            continue
        write = by_id[result.document_id]
        meta = chunk_metadata(
            namespace=write.namespace,
            document_id=write.id,
            observed_at=write.observed_at,
            speaker=speaker_of(write.metadata),
            metadata=write.metadata,
        )
        for chunk in write.chunks:
            ids.append(chunk.id)
            texts.append(chunk.text)
            hashes.append(chunk.content_hash)
            metas.append(meta)
    vectors.upsert(ids, texts, metas, embeddings=with_precomputed(texts, metas, hashes, embeddings, vectors))
    graph.mark_indexed(ids)


def with_precomputed(
    texts: Sequence[str],
    metas: Sequence[Mapping[str, Any]],
    hashes: Sequence[str],
    embeddings: Mapping[str, Any] | None,
    vectors: VectorIndex,
) -> np.ndarray | None:
    """All vectors, precomputed ones reused and the rest embedded; None when none is precomputed.
    A precomputed vector is of the bare text: it is not reused where a speaker leads the text
    that is embedded (see :func:`~memory_graph.vector_store.embedding_texts`)."""
    to_embed = embedding_texts(texts, metas)
    usable = {i for i, h in enumerate(hashes) if embeddings and h in embeddings and to_embed[i] == texts[i]}
    if not usable:
        return None
    todo = [i for i in range(len(hashes)) if i not in usable]
    fresh = vectors.embed([to_embed[i] for i in todo]) if todo else None
    out: list[Any] = [embeddings[h] if i in usable else None for i, h in enumerate(hashes)]  # type: ignore[index]
    for j, i in enumerate(todo):
        out[i] = fresh[j]  # type: ignore[index]
    return np.asarray(out, dtype=np.float32)


def build_records(
    results: Sequence[WriteResult], writes: Sequence[DocumentWrite], graph: GraphStore
) -> list[MemoryRecord]:
    """MemoryRecords with the stored entities and relations (two batched queries)."""
    all_chunks = [cid for r in results for cid in r.chunk_ids]
    entities, relations = graph.chunk_context(all_chunks)
    by_id = {w.id: w for w in writes}
    records = []
    for result in results:
        write = by_id[result.document_id]
        seen_e: dict[int, Any] = {}
        seen_r: dict[int, Any] = {}
        for cid in result.chunk_ids:
            for e in entities.get(cid, []):
                seen_e.setdefault(e.id, e)
            for r in relations.get(cid, []):
                if r.predicate != COOCCURRENCE:  # a signal for search, not a stated relation
                    seen_r.setdefault(r.id, r)
        records.append(
            MemoryRecord(
                document_id=result.document_id,
                external_id=write.external_id,
                namespace=write.namespace,
                chunk_ids=list(result.chunk_ids),
                entities=list(seen_e.values()),
                relations=list(seen_r.values()),
                created=result.created,
            )
        )
    return records
