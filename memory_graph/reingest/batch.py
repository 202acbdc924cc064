"""One batch of a re-ingest: records validated, stored (bad ones isolated and reported), counted."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from memory_graph.chunking import content_hash
from memory_graph.errors import InputError, MemoryGraphError, StoreError
from memory_graph.ingest import MemoryInput, doc_key_of, parse_time
from memory_graph.records import MemoryRecord
from memory_graph.reingest.jobs import BatchCounts, JobStore, worker_name
from memory_graph.reingest.report import ProblemKind, problem, tally
from memory_graph.reingest.sources import RecordSource, SourceRecord, VectorPolicy

if TYPE_CHECKING:
    from memory_graph.manager import MemoryManager
    from memory_graph.reingest.runner import Progress


@dataclass(frozen=True)
class RunOptions:
    """What every batch of a run is stored with: the target namespace and the vector policy."""

    namespace: str
    policy: VectorPolicy


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


def process_records(records: Sequence[SourceRecord], manager: MemoryManager, options: RunOptions) -> BatchCounts:
    """Validate and store one batch of records; bad ones are skipped, the rest go in.

    Raises:
        StoreError: a store is unavailable (the batch is left for a later run).
    """
    counts = BatchCounts()
    pairs = validate(records, manager, options.namespace, counts)
    if not pairs:
        return counts
    vectors, eligible = _reusable_vectors(pairs, manager, options.policy)
    keys = {rec.id: doc_key_of(item, content_hash(item.text)) for rec, item in pairs}
    before = manager.graph.content_hashes(options.namespace, list(keys.values()))
    outcomes = _store_isolating_failures(pairs, manager, vectors)
    unchanged = reused = 0
    unconfirmed = [cid for _, r, _ in outcomes if r is not None and not r.created for cid in r.chunk_ids]
    completed = manager.index_unconfirmed(unconfirmed)
    for (rec, item), record, error in outcomes:
        if record is None:
            counts.failed += 1
            counts.problems.append(problem(ProblemKind.FAILED, rec.id, error or "failed"))
        elif record.created or record.document_id in completed:
            counts.stored += 1
            reused += content_hash(item.text) in eligible and record.created
            if before.get(keys[rec.id], content_hash(item.text)) != content_hash(item.text):
                reason = "replaced the memory stored earlier under this id (its text differs)"
                counts.problems.append(problem(ProblemKind.REPLACED, rec.id, reason))
        else:
            unchanged += 1
    counts.skipped += unchanged
    if unchanged:
        counts.problems.append(tally(ProblemKind.UNCHANGED, unchanged))
    if reused:
        counts.problems.append(tally(ProblemKind.REUSED, int(reused)))
    return counts


def validate(
    records: Sequence[SourceRecord], manager: MemoryManager, namespace: str, counts: BatchCounts
) -> list[tuple[SourceRecord, MemoryInput]]:
    """The records that can become memories, validated; the others are counted as skipped."""
    pairs = []
    for rec in records:
        if rec.problem is not None or rec.row is None:
            counts.skipped += 1
            counts.problems.append(problem(ProblemKind.SKIPPED, rec.id, rec.problem or "unreadable record"))
            continue
        try:
            row = rec.row
            if "observed_at" in row:  # parsed here so the reason names the field, not the text
                row = {**row, "observed_at": parse_time(row["observed_at"], what="observed_at")}
            item = manager.validate_row(row, namespace=namespace, where="record")
        except InputError as exc:
            counts.skipped += 1
            counts.problems.append(problem(ProblemKind.SKIPPED, rec.id, str(exc)))
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
        stored = manager.add_validated(items, embeddings=vectors or None)
        return [(p, r, None) for p, r in zip(pairs, stored, strict=True)]
    except Exception as exc:  # retried record by record below
        if len(pairs) == 1:
            _raise_if_unavailable(exc, manager)
            return [(pairs[0], None, one_line(exc))]
    out: list[tuple[tuple[SourceRecord, MemoryInput], MemoryRecord | None, str | None]] = []
    for pair in pairs:
        try:
            out.append((pair, manager.add_validated([pair[1]], embeddings=vectors or None)[0], None))
        except Exception as exc:  # reported as a failed record
            _raise_if_unavailable(exc, manager)
            out.append((pair, None, one_line(exc)))
    return out


def _raise_if_unavailable(exc: Exception, manager: MemoryManager) -> None:
    """A store error while the database does not answer is an outage, not a bad record."""
    if not isinstance(exc, StoreError):
        return
    try:
        manager.graph.ping()
    except StoreError:
        raise exc from None


def one_line(exc: BaseException) -> str:
    """An error as one line of a report (its class named when it is not one of ours)."""
    text = " ".join(str(exc).split())
    return f"{exc.__class__.__name__}: {text}" if not isinstance(exc, MemoryGraphError) else text
