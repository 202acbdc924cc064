"""Batch re-ingest: old Chroma collections (and the legacy stores of :mod:`memory_graph.importers`)
into the graph memory, resumable, idempotent, in parallel, with a report that accounts for every
record.

How a run goes:

1. The source is opened and its records get stable positions (a Chroma collection: its ids,
   sorted). A persist directory is copied to a temporary directory first, because the installed
   chromadb migrates the files of older releases in place when it opens them.
2. A job and its batches are created in the target database (:mod:`memory_graph.job_store`), or
   the unfinished job over the same source is resumed. Workers (this process, or ``workers``
   spawned processes) claim batches until none is left.
3. Each record becomes a memory: its id is the ``external_id``, its metadata is kept (plus
   ``source_collection``), it is chunked and extracted again. Its stored vector is reused only
   when the collection names the same embedding model as the target and the memory is one chunk
   identical to the stored document; otherwise it is embedded again.
4. A record that cannot be stored (no text, a malformed field) is skipped and reported with its
   id and the reason; the rest goes in. Records already stored with the same text are skipped as
   "already stored", so a re-run stores nothing twice.

With an embedded Chroma target (a directory) and several workers, only the coordinating process
opens the directory: workers embed locally and send their vector writes to it, and wait until
they are applied. SQLite has a single writer, so writes serialise there too; the speed-up comes
from running extraction and embedding in parallel.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
import queue
import re
import shutil
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from memory_graph.chunking import content_hash
from memory_graph.errors import ConfigError, InputError, MemoryGraphError, StoreError, VectorStoreError
from memory_graph.ingest import MemoryInput, doc_key_of, parse_time, store_memories
from memory_graph.job_store import DEFAULT_LEASE, BatchCounts, Job, JobStore, job_key, pid_alive, worker_name
from memory_graph.records import MemoryRecord
from memory_graph.vector_store import SentenceTransformerEmbedder, VectorStore, embedding_texts, stored_chunk_metadata

if TYPE_CHECKING:
    from memory_graph.config import Settings
    from memory_graph.manager import MemoryManager

#: Metadata keys read as the time a memory was observed (first present wins).
TIME_KEYS = ("observed_at", "timestamp", "created_at")
#: Vector sizes of the embedding models we know, by normalised name.
KNOWN_DIMS = {"all-minilm-l6-v2": 384, "all-minilm-l12-v2": 384, "all-mpnet-base-v2": 768}
#: Chroma's built-in embedding functions that are all-MiniLM-L6-v2 (the ONNX export of it).
_CHROMA_MINILM = {"default", "onnx_mini_lm_l6_v2"}
_ID_PAGE = 5000

#: ``progress(done, total)``: records finished so far (this job, all workers) and the total.
Progress = Callable[[int, int], None]


# -- records and sources ----------------------------------------------------------------------


@dataclass
class SourceRecord:
    """One record of a source: the ``add_many`` row it becomes, or why it cannot become one.

    Attributes:
        id: the record's id in its source (becomes the memory's ``external_id``).
        row: ``add_many`` row (``text``, ``external_id``, ``metadata``, …); None when unreadable.
        embedding: the vector stored with the record, when the source has one.
        problem: why the record cannot be stored (it is skipped and reported).
    """

    id: str
    row: dict[str, Any] | None
    embedding: Any = None
    problem: str | None = None


class RecordSource(Protocol):
    """Records at stable positions ``0 … len-1`` (what batches of a job point at)."""

    description: str
    fingerprint: str
    embedding_model: str | None
    embedding_dim: int | None
    notes: list[str]
    holds_vectors: bool

    def __len__(self) -> int: ...

    def read(self, start: int, stop: int, *, embeddings: bool = False) -> list[SourceRecord]: ...

    def close(self) -> None: ...


class SourceSpec(Protocol):
    """A picklable recipe that opens a :class:`RecordSource` (in a worker process too)."""

    def open(self) -> RecordSource: ...


@dataclass
class ListSource:
    """Records held in memory (the importers' sources)."""

    description: str
    records: list[SourceRecord]
    embedding_model: str | None = None
    embedding_dim: int | None = None
    fingerprint: str = ""
    notes: list[str] = field(default_factory=list)
    holds_vectors: bool = False

    def __post_init__(self) -> None:
        if not self.fingerprint:
            digest = hashlib.sha256()
            for r in self.records:
                text = (r.row or {}).get("text")
                digest.update(
                    f"{r.id}\x00{content_hash(text) if isinstance(text, str) else ''}\x00{r.problem or ''}\n".encode()
                )
            self.fingerprint = digest.hexdigest()

    def __len__(self) -> int:
        return len(self.records)

    def read(self, start: int, stop: int, *, embeddings: bool = False) -> list[SourceRecord]:
        return self.records[start:stop]

    def close(self) -> None:
        pass


def record_row(
    record_id: str,
    text: Any,
    metadata: Mapping[str, Any] | None,
    *,
    source: str,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``add_many`` row of a legacy record: its id as ``external_id``, its metadata kept.

    ``observed_at`` comes from the first of :data:`TIME_KEYS` in the metadata.
    """
    meta = dict(metadata or {})
    meta.update(extra or {})
    row: dict[str, Any] = {"text": text, "external_id": record_id, "metadata": meta, "source": source}
    for key in TIME_KEYS:
        if meta.get(key) not in (None, ""):
            row["observed_at"] = meta[key]
            break
    return row


# -- Chroma ------------------------------------------------------------------------------------


@dataclass
class ChromaSpec:
    """Where a Chroma collection is: a persist directory (``path``) or a server (``host``).

    Attributes:
        collection: the collection's name.
        path: the directory to open (already a private copy when ``copied``).
        host: a Chroma server instead of a directory.
        port: the server's port.
        label: the original location, for reports and the job key (the copy's path changes).
        source_model: the embedding model of the stored vectors, when the collection does not say.
    """

    collection: str
    path: Path | None = None
    host: str | None = None
    port: int = 8000
    label: str = ""
    source_model: str | None = None

    def open(self) -> ChromaSource:
        return ChromaSource(open_chroma(path=self.path, host=self.host, port=self.port, label=self.label), self)


class ChromaSource:
    """The records of one Chroma collection, in id order."""

    def __init__(self, client: Any, spec: ChromaSpec) -> None:
        from chromadb.errors import ChromaError

        self.spec = spec
        where = spec.label or str(spec.path or f"{spec.host}:{spec.port}")
        try:
            self.collection = client.get_collection(spec.collection, embedding_function=None)
        except (ChromaError, ValueError) as exc:
            names = sorted(list_collection_names(client))
            raise InputError(
                f"{where}: no collection {spec.collection!r} (collections: {', '.join(names) or 'none'})"
            ) from exc
        with _chroma_errors(f"{where}: reading collection {spec.collection!r}"):
            ids: list[str] = []
            while True:
                page = self.collection.get(include=[], limit=_ID_PAGE, offset=len(ids))["ids"]
                ids += page
                if len(page) < _ID_PAGE:
                    break
        self.ids = sorted(set(ids))
        self.description = f"chroma:{where}#{spec.collection}"
        self.fingerprint = hashlib.sha256("\n".join(self.ids).encode()).hexdigest()
        declared, dim = declared_embedding_model(self.collection)
        self.embedding_model = spec.source_model or declared
        self.embedding_dim = dim
        self.notes: list[str] = []
        self.holds_vectors = True
        self._where = where

    def __len__(self) -> int:
        return len(self.ids)

    def read(self, start: int, stop: int, *, embeddings: bool = False) -> list[SourceRecord]:
        ids = self.ids[start:stop]
        include = ["documents", "metadatas"] + (["embeddings"] if embeddings else [])
        with _chroma_errors(f"{self._where}: reading records of {self.spec.collection!r}"):
            got = self.collection.get(ids=ids, include=include)
        vectors = got.get("embeddings")
        found = {
            rid: (
                got["documents"][i] if got.get("documents") is not None else None,
                got["metadatas"][i] if got.get("metadatas") is not None else None,
                vectors[i] if vectors is not None and len(vectors) > i else None,
            )
            for i, rid in enumerate(got["ids"])
        }
        records = []
        extra = {"source_collection": self.spec.collection}
        for rid in ids:
            if rid not in found:
                records.append(SourceRecord(rid, None, problem="record disappeared from the collection during the run"))
                continue
            document, metadata, vector = found[rid]
            if document is None:
                records.append(SourceRecord(rid, None, problem="no document (the record holds only a vector)"))
                continue
            row = record_row(rid, document, metadata, source="chroma", extra=extra)
            records.append(SourceRecord(rid, row, embedding=vector))
        return records

    def close(self) -> None:
        pass


def open_chroma(*, path: Path | None = None, host: str | None = None, port: int = 8000, label: str = "") -> Any:
    """A Chroma client on a persist directory or a server; a one-line error naming the place.

    Raises:
        InputError: the directory is missing or not a Chroma persist directory.
        VectorStoreError: the server cannot be reached, or Chroma cannot open the directory.
    """
    from memory_graph.vector_store import make_chroma_client

    if host:
        return make_chroma_client(host=host, port=port)
    if path is None:
        raise ConfigError("give a Chroma persist directory (--path) or a server (--host/--port)")
    where = label or str(path)
    check_chroma_dir(Path(where) if label else path)
    try:
        return make_chroma_client(path=path)
    except VectorStoreError as exc:
        raise InputError(
            f"{where}: cannot be opened as a Chroma persist directory ({str(exc).split(': ', 1)[-1]})"
        ) from exc


def check_chroma_dir(path: Path) -> None:
    """Raise a one-line :class:`InputError` unless ``path`` is a readable Chroma persist directory."""
    if not path.exists():
        raise InputError(f"{path}: no such directory")
    if not path.is_dir():
        raise InputError(f"{path}: not a directory (give the Chroma persist directory, the one holding chroma.sqlite3)")
    db = path / "chroma.sqlite3"
    if not db.is_file():
        raise InputError(f"{path}: not a Chroma persist directory (no chroma.sqlite3 in it)")
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as exc:
        raise InputError(f"{db}: not a readable Chroma database ({exc})") from exc
    if "collections" not in tables:
        raise InputError(f"{db}: not a Chroma database (no collections table)")


def list_collection_names(client: Any) -> list[str]:
    """The names of a Chroma client's collections (chromadb 0.5 returned objects, 0.6+ names)."""
    with _chroma_errors("listing collections"):
        return [c if isinstance(c, str) else c.name for c in client.list_collections()]


@contextmanager
def private_copy(path: Path) -> Iterator[Path]:
    """A temporary copy of a persist directory, removed afterwards; the original is never opened
    by chromadb (which would migrate an older release's files in place)."""
    check_chroma_dir(path)
    _remove_stale_copies()
    tmp = Path(tempfile.mkdtemp(prefix=f"{_COPY_PREFIX}{os.getpid()}-"))
    try:
        copy = tmp / "chroma"
        try:
            shutil.copytree(path, copy)
        except OSError as exc:
            raise InputError(f"{path}: cannot copy the directory to {tmp} ({exc.strerror or exc})") from exc
        yield copy
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_COPY_PREFIX = "memory-graph-reingest-"


def _remove_stale_copies() -> None:
    """Remove the copies that killed runs of this host left behind (their process is gone)."""
    for old in Path(tempfile.gettempdir()).glob(f"{_COPY_PREFIX}*-*"):
        pid = old.name[len(_COPY_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)


@contextmanager
def _chroma_errors(doing: str) -> Iterator[None]:
    from chromadb.errors import ChromaError

    try:
        yield
    except (ChromaError, ValueError, OSError, RuntimeError) as exc:
        if isinstance(exc, MemoryGraphError):
            raise
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise VectorStoreError(f"{doing} failed: {reason}") from exc


def declared_embedding_model(collection: Any) -> tuple[str | None, int | None]:
    """The embedding model (and vector size) a collection says its vectors come from.

    Looks at the collection metadata (``embedding_model``, ``model_name``, ``model``) and at the
    embedding function recorded in its configuration (chromadb >= 0.6); Chroma's default function
    is the ONNX export of all-MiniLM-L6-v2.
    """
    meta = dict(getattr(collection, "metadata", None) or {})
    dim: int | None = None
    for key in ("embedding_dim", "embedding_dimension", "dimension", "dim"):
        value = meta.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            dim = value
            break
    for key in ("embedding_model", "embedding_model_name", "model_name", "model"):
        value = meta.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip(), dim
    config = getattr(collection, "configuration_json", None) or {}
    function = config.get("embedding_function") if isinstance(config, dict) else None
    if isinstance(function, dict):
        name = function.get("name")
        model = (function.get("config") or {}).get("model_name")
        if isinstance(model, str) and model:
            return model, dim
        if name in _CHROMA_MINILM:
            return "all-MiniLM-L6-v2", dim
    return None, dim


def model_key(name: str | None) -> str:
    """A model name without its hub organisation, lower-cased (``all-minilm-l6-v2``)."""
    if not name:
        return ""
    return name.strip().lower().removeprefix("sentence-transformers/").rstrip("/")


@dataclass(frozen=True)
class VectorPolicy:
    """Whether a source's stored vectors may be reused, and why (shown in the report)."""

    reuse: bool
    reason: str
    dim: int | None = None


def vector_policy(source: RecordSource, *, target_model: str, reembed: bool = False) -> VectorPolicy:
    """Reuse stored vectors only when the source's model is known to be the target's."""
    if not source.holds_vectors:
        return VectorPolicy(False, "embedded (the source holds no vectors)")
    if reembed:
        return VectorPolicy(False, "re-embedded (asked for)")
    if not source.embedding_model:
        return VectorPolicy(False, "re-embedded: the source does not name its embedding model (see --source-model)")
    if model_key(source.embedding_model) != model_key(target_model):
        return VectorPolicy(False, f"re-embedded: source model {source.embedding_model!r} is not {target_model!r}")
    dim = KNOWN_DIMS.get(model_key(target_model), source.embedding_dim)
    if dim is not None and source.embedding_dim is not None and dim != source.embedding_dim:
        return VectorPolicy(
            False, f"re-embedded: the source declares {source.embedding_dim} dimensions, the model has {dim}"
        )
    return VectorPolicy(
        True, f"stored vectors reused where the memory is one identical chunk ({source.embedding_model})", dim
    )


def reingest_chroma(
    manager: MemoryManager,
    *,
    path: Path | None = None,
    host: str | None = None,
    port: int = 8000,
    collections: Sequence[str] = (),
    all_collections: bool = False,
    source_model: str | None = None,
    reembed: bool = False,
    namespace: str | None = None,
    workers: int = 1,
    batch_size: int | None = None,
    dry_run: bool = False,
    progress: Callable[[str], Progress | None] | None = None,
) -> list[ReingestReport]:
    """Re-ingest Chroma collections from a persist directory (never changed) or a server.

    Args:
        manager: the target memory.
        path: a persist directory written by any chromadb release (0.4.x, 0.5.x, current); it is
            copied to a temporary directory and the copy is opened.
        host: a Chroma server instead (its API must match the installed chromadb client).
        port: the server's port.
        collections: the collections to re-ingest, in order.
        all_collections: re-ingest every collection instead.
        source_model: the embedding model of the stored vectors, when the collections do not say.
        reembed: never reuse stored vectors.
        namespace, workers, batch_size, dry_run: as for :func:`run_reingest`.
        progress: given a collection name, the progress callback of its job.

    Returns:
        One report per collection.

    Raises:
        ConfigError: the options contradict each other.
        InputError: the directory is missing or not a Chroma store, or a collection is unknown.

    Example:
        >>> reingest_chroma(mm, path=Path("old_chroma"), collections=["memories"])[0].stored  # doctest: +SKIP
        200
    """
    if (path is None) == (host is None):
        raise ConfigError("give either a Chroma persist directory (--path DIR) or a server (--host H --port P)")
    if bool(collections) == bool(all_collections):
        raise ConfigError("name the collections (--collection NAME) or use --all-collections, not both or neither")
    with private_copy(path) if path is not None else nullcontext(None) as copy:
        label = str(path.resolve()) if path is not None else f"{host}:{port}"
        client = open_chroma(path=copy, host=host, port=port, label=label)
        names = sorted(list_collection_names(client)) if all_collections else list(dict.fromkeys(collections))
        if not names:
            raise InputError(f"{label}: no collections in this Chroma store")
        _check_shared_ids(client, names, label=label, namespace=namespace or manager.settings.namespace)
        reports = []
        for name in names:
            spec = ChromaSpec(name, path=copy, host=host, port=port, label=label, source_model=source_model)
            reports.append(
                run_reingest(
                    spec,
                    manager=manager,
                    namespace=namespace,
                    workers=workers,
                    batch_size=batch_size,
                    dry_run=dry_run,
                    reembed=reembed,
                    progress=progress(name) if progress is not None else None,
                )
            )
        return reports


def _check_shared_ids(client: Any, names: Sequence[str], *, label: str, namespace: str) -> None:
    """Collections re-ingested into one namespace must not share ids: their memories would
    replace each other (the id is the memory's external id)."""
    if len(names) < 2:
        return
    seen: dict[str, str] = {}
    for name in names:
        for rid in ChromaSource(client, ChromaSpec(name, label=label)).ids:
            other = seen.setdefault(rid, name)
            if other != name:
                raise ConfigError(
                    f"{label}: collections {other!r} and {name!r} share ids (e.g. {rid!r}), so their memories would "
                    f"replace each other in namespace {namespace!r}; re-ingest them one at a time with different --namespace"
                )


# -- the report --------------------------------------------------------------------------------


@dataclass
class ReingestReport:
    """What a re-ingest or import did, accounting for every record of the source.

    ``read == stored + skipped + failed`` once the job is complete; ``skipped`` includes the
    records already stored with the same text (``unchanged``).
    """

    source: str
    namespace: str
    job_id: str | None
    dry_run: bool
    complete: bool
    read: int
    stored: int
    skipped: int
    failed: int
    unchanged: int
    would_store: int = 0
    replaced: int = 0
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    failed_reasons: dict[str, int] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)
    vectors: str = ""
    vectors_reused: int = 0
    notes: list[str] = field(default_factory=list)
    resumed: bool = False
    workers: int = 1
    processed: int = 0
    seconds: float = 0.0
    records_per_s: float = 0.0

    @property
    def accounted(self) -> bool:
        """Every record read is stored, skipped (with a reason) or failed (with a reason)."""
        return self.read == self.stored + self.skipped + self.failed + self.would_store

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "accounted": self.accounted}


def summarize(
    *,
    source: str,
    namespace: str,
    job: Job | None,
    total: int,
    counts: Sequence[BatchCounts],
    complete: bool,
    dry_run: bool = False,
    would_store: int = 0,
    vectors: str = "",
    notes: Sequence[str] = (),
    workers: int = 1,
    processed: int = 0,
    seconds: float = 0.0,
) -> ReingestReport:
    """Add up batch counts into a :class:`ReingestReport`."""
    skipped_reasons: Counter[str] = Counter()
    failed_reasons: Counter[str] = Counter()
    problems: list[dict[str, Any]] = []
    unchanged = reused = 0
    replaced: list[dict[str, Any]] = []
    for batch in counts:
        for p in batch.problems:
            n = int(p.get("count", 1))
            kind = p.get("kind")
            if kind == "unchanged":
                unchanged += n
                skipped_reasons["already stored"] += n
            elif kind == "reused":
                reused += n
            elif kind == "replaced":
                replaced.append({"id": p.get("id"), "kind": kind, "reason": p["reason"]})
            elif kind in ("skipped", "failed"):
                (skipped_reasons if kind == "skipped" else failed_reasons)[_reason_kind(p["reason"])] += n
                problems.append({"id": p.get("id"), "kind": kind, "reason": p["reason"]})
    return ReingestReport(
        source=source,
        namespace=namespace,
        job_id=job.id if job else None,
        dry_run=dry_run,
        complete=complete,
        read=total,
        stored=sum(b.stored for b in counts),
        skipped=sum(b.skipped for b in counts),
        failed=sum(b.failed for b in counts),
        unchanged=unchanged,
        would_store=would_store,
        skipped_reasons=dict(skipped_reasons.most_common()),
        failed_reasons=dict(failed_reasons.most_common()),
        problems=problems + replaced,
        replaced=len(replaced),
        vectors=vectors,
        vectors_reused=reused,
        notes=list(notes),
        resumed=bool(job and job.resumed),
        workers=workers,
        processed=processed,
        seconds=round(seconds, 3),
        records_per_s=round(processed / seconds, 2) if seconds > 0 else 0.0,
    )


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_LOCATION = re.compile(r"^\S+: ")


def _reason_kind(reason: str) -> str:
    """A reason without its location and the values in it, so equal problems count together."""
    return _QUOTED.sub("…", _LOCATION.sub("", reason))


# -- processing a batch ------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOptions:
    namespace: str
    policy: VectorPolicy


def process_records(records: Sequence[SourceRecord], manager: MemoryManager, options: RunOptions) -> BatchCounts:
    """Validate and store one batch of records; bad ones are skipped, the rest go in.

    Raises:
        StoreError: a store is unavailable (the batch is left for a later run).
    """
    counts = BatchCounts()
    pairs = _validate(records, manager, options.namespace, counts)
    if not pairs:
        return counts
    vectors, eligible = _reusable_vectors(pairs, manager, options.policy)
    keys = {rec.id: doc_key_of(item, content_hash(item.text)) for rec, item in pairs}
    before = manager.graph.content_hashes(options.namespace, list(keys.values()))
    outcomes = _store_isolating_failures(pairs, manager, vectors)
    unchanged = reused = 0
    completed = _index_unconfirmed(manager, [r for _, r, _ in outcomes if r is not None and not r.created])
    for (rec, item), record, error in outcomes:
        if record is None:
            counts.failed += 1
            counts.problems.append({"id": rec.id, "kind": "failed", "reason": error})
        elif record.created or record.document_id in completed:
            counts.stored += 1
            reused += content_hash(item.text) in eligible and record.created
            if before.get(keys[rec.id], content_hash(item.text)) != content_hash(item.text):
                reason = "replaced the memory stored earlier under this id (its text differs)"
                counts.problems.append({"id": rec.id, "kind": "replaced", "reason": reason})
        else:
            unchanged += 1
    counts.skipped += unchanged
    if unchanged:
        counts.problems.append({"kind": "unchanged", "count": unchanged})
    if reused:
        counts.problems.append({"kind": "reused", "count": int(reused)})
    return counts


def _validate(
    records: Sequence[SourceRecord], manager: MemoryManager, namespace: str, counts: BatchCounts
) -> list[tuple[SourceRecord, MemoryInput]]:
    pairs = []
    for rec in records:
        if rec.problem is not None or rec.row is None:
            counts.skipped += 1
            counts.problems.append({"id": rec.id, "kind": "skipped", "reason": rec.problem or "unreadable record"})
            continue
        try:
            row = rec.row
            if "observed_at" in row:  # parsed here so the reason names the field, not the text
                row = {**row, "observed_at": parse_time(row["observed_at"], what="observed_at")}
            item = manager.validate_row(row, namespace=namespace, where="record")
        except InputError as exc:
            counts.skipped += 1
            counts.problems.append({"id": rec.id, "kind": "skipped", "reason": str(exc)})
            continue
        pairs.append((rec, item))
    return pairs


def _reusable_vectors(
    pairs: Sequence[tuple[SourceRecord, MemoryInput]], manager: MemoryManager, policy: VectorPolicy
) -> tuple[dict[str, np.ndarray], set[str]]:
    """Stored vectors by content hash, for memories that will be one chunk equal to the record."""
    if not policy.reuse:
        return {}, set()
    chunk_size = manager.settings.chunk_size
    vectors: dict[str, np.ndarray] = {}
    for rec, item in pairs:
        if rec.embedding is None or item.text != item.text.strip() or len(item.text) > chunk_size:
            continue
        vector = np.asarray(rec.embedding, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(vector))
        if (policy.dim is not None and vector.shape[0] != policy.dim) or not math.isfinite(norm) or norm == 0.0:
            continue
        vectors[content_hash(item.text)] = vector / norm
    return vectors, set(vectors)


def _store_isolating_failures(
    pairs: Sequence[tuple[SourceRecord, MemoryInput]], manager: MemoryManager, vectors: Mapping[str, np.ndarray]
) -> list[tuple[tuple[SourceRecord, MemoryInput], MemoryRecord | None, str | None]]:
    """Store a batch; when it fails, store its records one by one to isolate the bad ones."""
    items = [item for _, item in pairs]
    try:
        return [(p, r, None) for p, r in zip(pairs, _store(manager, items, vectors), strict=True)]
    except Exception as exc:  # retried record by record below
        if len(pairs) == 1:
            _raise_if_unavailable(exc, manager)
            return [(pairs[0], None, _one_line(exc))]
    out: list[tuple[tuple[SourceRecord, MemoryInput], MemoryRecord | None, str | None]] = []
    for pair in pairs:
        try:
            out.append((pair, _store(manager, [pair[1]], vectors)[0], None))
        except Exception as exc:  # reported as a failed record
            _raise_if_unavailable(exc, manager)
            out.append((pair, None, _one_line(exc)))
    return out


def _store(manager: MemoryManager, items: list[MemoryInput], vectors: Mapping[str, np.ndarray]) -> list[MemoryRecord]:
    # The manager's write lock keeps this safe beside other threads using the same manager.
    with manager._write_lock:
        return store_memories(
            items,
            graph=manager.graph,
            vectors=manager.vectors,
            extractor=manager.extractor,
            chunk_size=manager.settings.chunk_size,
            batch_size=manager.settings.batch_size,
            embeddings=vectors or None,
            resolve_aliases=manager.settings.resolve_aliases,
        )


def _raise_if_unavailable(exc: Exception, manager: MemoryManager) -> None:
    """A store error while the database does not answer is an outage, not a bad record."""
    if not isinstance(exc, StoreError):
        return
    try:
        manager.graph.content_hashes(manager.settings.namespace, ["-"])
    except StoreError:
        raise exc from None


def _index_unconfirmed(manager: MemoryManager, records: Sequence[MemoryRecord]) -> set[str]:
    """Finish memories an interrupted run wrote to SQL but not to the vector index."""
    chunk_ids = [cid for r in records for cid in r.chunk_ids]
    if not chunk_ids:
        return set()
    rows = manager.graph.chunks_to_index(chunk_ids)
    if not rows:
        return set()
    with manager._write_lock:
        manager.vectors.upsert(
            [r.id for r in rows],
            [r.text for r in rows],
            [stored_chunk_metadata(r) for r in rows],
        )
        manager.graph.mark_indexed([r.id for r in rows])
    return {r.document_id for r in rows}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{exc.__class__.__name__}: {text}" if not isinstance(exc, MemoryGraphError) else text


# -- running a job -----------------------------------------------------------------------------


def run_reingest(
    spec: SourceSpec,
    *,
    manager: MemoryManager,
    namespace: str | None = None,
    workers: int = 1,
    batch_size: int | None = None,
    dry_run: bool = False,
    reembed: bool = False,
    lease: timedelta = DEFAULT_LEASE,
    progress: Progress | None = None,
) -> ReingestReport:
    """Re-ingest every record of a source into ``manager``'s stores, as a resumable job.

    Args:
        spec: the source (:class:`ChromaSpec`, or an importer's spec).
        manager: the target memory; its settings also configure worker processes.
        namespace: target namespace; the settings' default when omitted.
        workers: processes claiming batches; 1 runs in this process.
        batch_size: records per batch (the unit of claims and checkpoints).
        dry_run: read and check everything, store nothing (not even the job).
        reembed: never reuse stored vectors.
        lease: after this long a claimed batch is handed to another worker.
        progress: called with (records done, total) as batches finish.

    Returns:
        The report of the whole job (earlier runs of a resumed job included).

    Raises:
        InputError: the source cannot be read.
        StoreError: a target store failed; run again to resume.

    Example:
        >>> spec = ChromaSpec("memories", path=Path("old_chroma"))  # doctest: +SKIP
        >>> run_reingest(spec, manager=mm, namespace="legacy").stored  # doctest: +SKIP
        200
    """
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, not {workers}")
    ns = namespace or manager.settings.namespace
    size = batch_size or manager.settings.batch_size
    if size < 1:
        raise ConfigError(f"batch size must be at least 1, not {size}")
    started = time.perf_counter()
    source = spec.open()
    try:
        policy = vector_policy(source, target_model=manager.vectors.embedding_model, reembed=reembed)
        options = RunOptions(ns, policy)
        if dry_run:
            return _dry_run(source, manager, options, size, progress, started)
        jobs = JobStore(manager.graph.engine, lease=lease)
        job = jobs.open_job(
            key=job_key(namespace=ns, source=source.description, fingerprint=source.fingerprint),
            namespace=ns,
            source=source.description,
            total=len(source),
            batch_size=size,
            meta={"fingerprint": source.fingerprint},
        )
        if job.resumed:
            jobs.reclaim_dead(job.id)
        before = jobs.progress(job.id).done_records
        if progress is not None:
            progress(before, len(source))
        if workers == 1:
            work_on_job(source, manager, jobs, job.id, options, progress=progress)
        else:
            _run_processes(spec, source, manager, jobs, job, options, workers=workers, lease=lease, progress=progress)
        state = jobs.progress(job.id)
        complete = state.pending_batches == 0 and state.claimed_batches == 0
        report = summarize(
            source=source.description,
            namespace=ns,
            job=job,
            total=len(source),
            counts=jobs.batch_counts(job.id),
            complete=complete,
            vectors=policy.reason,
            notes=source.notes,
            workers=workers,
            processed=state.done_records - before,
            seconds=time.perf_counter() - started,
        )
        if complete:
            jobs.finish(job.id, {**job.report, **report.to_dict(), "problems": report.problems[:1000]})
        return report
    finally:
        source.close()


def work_on_job(
    source: RecordSource,
    manager: MemoryManager,
    jobs: JobStore,
    job_id: str,
    options: RunOptions,
    *,
    progress: Progress | None = None,
) -> int:
    """Claim and process batches until none is left (one worker's loop).

    Returns:
        How many records this worker processed.
    """
    me = worker_name()
    done = 0
    state = jobs.progress(job_id) if progress is not None else None
    finished = state.done_records if state else 0
    while (batch := jobs.claim(job_id, worker=me)) is not None:
        try:
            records = source.read(batch.start, batch.stop, embeddings=options.policy.reuse)
            counts = process_records(records, manager, options)
        except BaseException:
            with suppress(MemoryGraphError):
                jobs.release(batch, worker=me)
            raise
        jobs.complete(batch, counts, worker=me)
        done += batch.stop - batch.start
        finished += batch.stop - batch.start
        if progress is not None:
            progress(finished, len(source))
    return done


def _dry_run(
    source: RecordSource,
    manager: MemoryManager,
    options: RunOptions,
    size: int,
    progress: Progress | None,
    started: float,
) -> ReingestReport:
    """Read and check every record; count what would be stored (nothing is written)."""
    counts: list[BatchCounts] = []
    would_store = 0
    for start in range(0, len(source), size):
        stop = min(start + size, len(source))
        batch = BatchCounts()
        pairs = _validate(source.read(start, stop), manager, options.namespace, batch)
        hashes = [content_hash(item.text) for _, item in pairs]
        keys = [doc_key_of(item, h) for (_, item), h in zip(pairs, hashes, strict=True)]
        stored = manager.graph.content_hashes(options.namespace, keys)
        unchanged = sum(stored.get(k) == h for k, h in zip(keys, hashes, strict=True))
        batch.skipped += unchanged
        if unchanged:
            batch.problems.append({"kind": "unchanged", "count": unchanged})
        would_store += len(pairs) - unchanged
        counts.append(batch)
        if progress is not None:
            progress(stop, len(source))
    return summarize(
        source=source.description,
        namespace=options.namespace,
        job=None,
        total=len(source),
        counts=counts,
        complete=True,
        dry_run=True,
        would_store=would_store,
        vectors=options.policy.reason,
        notes=source.notes,
        processed=len(source),
        seconds=time.perf_counter() - started,
    )


# -- worker processes --------------------------------------------------------------------------


class RelayVectorStore(VectorStore):
    """A worker's vector store when the target Chroma is a directory only one process may open:
    it embeds here and sends each write to the coordinating process, waiting until it is applied
    (so ``indexed_at`` is only ever set after the vectors are really written)."""

    def __init__(self, requests: Any, replies: Any, worker_no: int, *, embedding_model: str) -> None:
        self.client = None
        self.name = "relay"
        self.embedding_model = embedding_model
        self.embed = SentenceTransformerEmbedder(embedding_model)
        self._requests = requests
        self._replies = replies
        self._no = worker_no

    def upsert(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[dict[str, Any]],
        *,
        embeddings: np.ndarray | None = None,
    ) -> None:
        if not ids:
            return
        vectors = embeddings if embeddings is not None else self.embed(embedding_texts(texts, metadatas))
        self._call("upsert", (list(ids), list(texts), list(metadatas), np.asarray(vectors, dtype=np.float32)))

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self._call("delete", list(ids))

    def count(self, namespace: str | None = None) -> int:
        raise VectorStoreError("a worker's relay vector store cannot count; ask the coordinating process")

    def _call(self, op: str, payload: Any) -> None:
        self._requests.put((self._no, op, payload))
        status, message = self._replies.get()
        if status != "ok":
            raise VectorStoreError(message)


@dataclass
class WorkerArgs:
    """What a worker process needs (pickled into it)."""

    worker_no: int
    settings: Settings
    spec: SourceSpec
    job_id: str
    fingerprint: str
    options: RunOptions
    relay: bool
    threads: int
    lease_s: float


def _worker_main(args: WorkerArgs, requests: Any, replies: Any) -> None:
    """Entry point of a worker process: open the stores and the source, claim batches."""
    error: str | None = None
    try:
        import torch

        torch.set_num_threads(args.threads)  # N workers on N cores: do not oversubscribe
        from memory_graph.manager import MemoryManager

        vectors = (
            RelayVectorStore(requests, replies, args.worker_no, embedding_model=args.settings.embedding_model)
            if args.relay
            else None
        )
        with MemoryManager(args.settings, vectors=vectors) as mm:
            source = args.spec.open()
            try:
                if source.fingerprint != args.fingerprint:
                    raise InputError(f"{source.description}: the source changed since the job started; run again")
                jobs = JobStore(mm.graph.engine, lease=timedelta(seconds=args.lease_s))
                work_on_job(source, mm, jobs, args.job_id, args.options)
            finally:
                source.close()
    except KeyboardInterrupt:
        error = "interrupted"
    except BaseException as exc:  # reported to the coordinator as one line
        error = _one_line(exc)
    requests.put((args.worker_no, "exit", error))


def _run_processes(
    spec: SourceSpec,
    source: RecordSource,
    manager: MemoryManager,
    jobs: JobStore,
    job: Job,
    options: RunOptions,
    *,
    workers: int,
    lease: timedelta,
    progress: Progress | None,
) -> None:
    """Spawn worker processes on the job and serve their vector writes until they finish."""
    ctx = multiprocessing.get_context("spawn")
    requests = ctx.Queue()
    replies = [ctx.Queue() for _ in range(workers)]
    relay = manager.settings.chroma_host is None
    threads = max(1, (os.cpu_count() or 1) // workers)
    procs = []
    for no in range(workers):
        args = WorkerArgs(
            no, manager.settings, spec, job.id, source.fingerprint, options, relay, threads, lease.total_seconds()
        )
        proc = ctx.Process(
            target=_worker_main, args=(args, requests, replies[no]), name=f"reingest-worker-{no}", daemon=True
        )
        proc.start()
        procs.append(proc)
    exited: dict[int, str | None] = {}
    last_poll = 0.0
    try:
        while len(exited) < workers:
            for message in _drain(requests, timeout=0.2):
                no, op, payload = message
                if op == "exit":
                    exited[no] = payload
                else:
                    replies[no].put(_serve(manager.vectors, op, payload))
            now = time.monotonic()
            if now - last_poll >= 0.5:
                last_poll = now
                if progress is not None:
                    progress(jobs.progress(job.id).done_records, len(source))
                for no, proc in enumerate(procs):
                    if no not in exited and not proc.is_alive():
                        for message in _drain(requests, timeout=0.2):  # its last words may be in flight
                            if message[1] == "exit":
                                exited[message[0]] = message[2]
                            else:
                                replies[message[0]].put(_serve(manager.vectors, message[1], message[2]))
                        exited.setdefault(no, f"worker {no} exited with code {proc.exitcode}")
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
    if progress is not None:
        progress(jobs.progress(job.id).done_records, len(source))
    errors = [f"worker {no}: {message}" for no, message in sorted(exited.items()) if message]
    if errors:
        raise _worker_error(errors)


def _drain(requests: Any, *, timeout: float) -> Iterator[Any]:
    try:
        yield requests.get(timeout=timeout)
    except queue.Empty:
        return
    while True:
        try:
            yield requests.get_nowait()
        except queue.Empty:
            return


def _serve(vectors: VectorStore, op: str, payload: Any) -> tuple[str, str | None]:
    try:
        if op == "upsert":
            ids, texts, metas, embeddings = payload
            vectors.upsert(ids, texts, metas, embeddings=embeddings)
        elif op == "delete":
            vectors.delete(payload)
        else:
            return "error", f"unknown request {op!r}"
    except MemoryGraphError as exc:
        return "error", str(exc)
    return "ok", None


def _worker_error(errors: list[str]) -> MemoryGraphError:
    message = "; ".join(errors[:3]) + (f" (and {len(errors) - 3} more)" if len(errors) > 3 else "")
    if any("source changed" in e for e in errors):
        return InputError(message)
    return StoreError(f"{message}; run the same command again to resume")
