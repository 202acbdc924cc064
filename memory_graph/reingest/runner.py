"""Running a re-ingest job: open the source, open or resume the job, work on it, report.

How a run goes:

1. The source is opened and its records get stable positions (a Chroma collection: its ids,
   sorted).
2. A job and its batches are created in the target database (:mod:`memory_graph.reingest.jobs`),
   or the unfinished job over the same source is resumed. Workers (this process, or ``workers``
   spawned processes, :mod:`memory_graph.reingest.workers`) claim batches until none is left.
3. Each record becomes a memory: its id is the ``external_id``, its metadata is kept, it is
   chunked and extracted again (:mod:`memory_graph.reingest.batch`).
4. A record that cannot be stored (no text, a malformed field) is skipped and reported with its
   id and the reason; the rest goes in. Records already stored with the same text are skipped as
   "already stored", so a re-run stores nothing twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from memory_graph.chunking import content_hash
from memory_graph.errors import ConfigError
from memory_graph.ingest import doc_key_of
from memory_graph.reingest.batch import RunOptions, validate, work_on_job
from memory_graph.reingest.jobs import DEFAULT_LEASE, BatchCounts, JobStore, job_key
from memory_graph.reingest.report import ProblemKind, ReingestReport, summarize, tally
from memory_graph.reingest.sources import RecordSource, SourceSpec, vector_policy
from memory_graph.reingest.workers import run_processes

if TYPE_CHECKING:
    from memory_graph.manager import MemoryManager

#: ``progress(done, total)``: records finished so far (this job, all workers) and the total.
Progress = Callable[[int, int], None]


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
        spec: the source (:class:`~memory_graph.reingest.chroma.ChromaSpec`, or an importer's
            :class:`~memory_graph.reingest.importers.ImportSpec`).
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
            run_processes(spec, source, manager, jobs, job, options, workers=workers, lease=lease, progress=progress)
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
        pairs = validate(source.read(start, stop), manager, options.namespace, batch)
        hashes = [content_hash(item.text) for _, item in pairs]
        keys = [doc_key_of(item, h) for (_, item), h in zip(pairs, hashes, strict=True)]
        stored = manager.graph.content_hashes(options.namespace, keys)
        unchanged = sum(stored.get(k) == h for k, h in zip(keys, hashes, strict=True))
        batch.skipped += unchanged
        if unchanged:
            batch.problems.append(tally(ProblemKind.UNCHANGED, unchanged))
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
