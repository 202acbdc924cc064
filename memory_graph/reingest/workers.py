"""Worker processes of a re-ingest job.

``--workers N`` spawns N processes that claim batches from the job table. With an embedded
Chroma target (a directory only one process may open), only the coordinating process writes
vectors: the workers embed locally and send each write to it (:class:`RelayVectorStore`), and
wait until it is applied, so ``indexed_at`` is never set before the vectors exist. SQLite has a
single writer, so writes serialise there too; the speed-up comes from running extraction and
embedding in parallel.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from memory_graph.errors import InputError, MemoryGraphError, StoreError, VectorStoreError
from memory_graph.reingest.batch import RunOptions, one_line, work_on_job
from memory_graph.reingest.jobs import Job, JobStore
from memory_graph.reingest.sources import RecordSource, SourceSpec
from memory_graph.vector_store import Embedder, SentenceTransformerEmbedder, VectorIndex, embedding_texts

if TYPE_CHECKING:
    from memory_graph.config import Settings
    from memory_graph.manager import MemoryManager
    from memory_graph.reingest.runner import Progress


class RelayVectorStore:
    """A worker's vector index when the target Chroma is a directory only one process may open:
    it embeds here and sends each write to the coordinating process, waiting until it is applied
    (so ``indexed_at`` is only ever set after the vectors are really written). A worker only
    writes; its reads fail with :class:`VectorStoreError`."""

    def __init__(self, requests: Any, replies: Any, worker_no: int, *, embedding_model: str) -> None:
        self.embedding_model = embedding_model
        self.embed: Embedder = SentenceTransformerEmbedder(embedding_model)
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

    def delete(self, ids: Sequence[str], *, namespace: str | None = None) -> None:
        if ids:
            self._call("delete", (list(ids), namespace))

    def delete_namespace(self, namespace: str) -> int:
        raise self._cannot("delete a namespace")

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
        raise self._cannot("search")

    def existing_ids(self, ids: Sequence[str], *, namespace: str | None = None) -> set[str]:
        raise self._cannot("read vector ids")

    def iter_ids(self, *, batch_size: int = 5000) -> Iterator[list[str]]:
        raise self._cannot("list vectors")

    def iter_namespace_ids(self, *, batch_size: int = 5000) -> Iterator[tuple[str | None, list[str]]]:
        raise self._cannot("list vectors")

    def claim_writes(self) -> None:
        """The coordinator holds the directory's write lock for its workers."""

    def release_writes(self) -> None:
        pass

    def count(self, namespace: str | None = None) -> int:
        raise self._cannot("count")

    @staticmethod
    def _cannot(what: str) -> VectorStoreError:
        return VectorStoreError(f"a re-ingest worker's relay vector store cannot {what}; ask the coordinating process")

    def _call(self, op: str, payload: Any) -> None:
        self._requests.put((self._no, op, payload))
        status, message = self._replies.get()
        if status != "ok":
            raise VectorStoreError(message)


@dataclass(frozen=True)
class WorkerFailure:
    """Why a worker stopped, as it reports it to the coordinator: one line, and whether it was
    the input's fault (the source changed) rather than a store's."""

    message: str
    bad_input: bool = False


class SourceChangedError(InputError):
    """The source a worker opened is not the one its job was made from."""


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
    error: WorkerFailure | None = None
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
                    raise SourceChangedError(
                        f"{source.description}: the source changed since the job started; run again"
                    )
                jobs = JobStore(mm.graph.engine, lease=timedelta(seconds=args.lease_s))
                work_on_job(source, mm, jobs, args.job_id, args.options)
            finally:
                source.close()
    except KeyboardInterrupt:
        error = WorkerFailure("interrupted")
    except BaseException as exc:  # reported to the coordinator as one line
        error = WorkerFailure(one_line(exc), bad_input=isinstance(exc, SourceChangedError))
    requests.put((args.worker_no, "exit", error))


def run_processes(
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
    exited: dict[int, WorkerFailure | None] = {}
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
                        exited.setdefault(no, WorkerFailure(f"worker {no} exited with code {proc.exitcode}"))
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
    if progress is not None:
        progress(jobs.progress(job.id).done_records, len(source))
    failures = [(no, failure) for no, failure in sorted(exited.items()) if failure is not None]
    if failures:
        raise _worker_error(failures)


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


def _serve(vectors: VectorIndex, op: str, payload: Any) -> tuple[str, str | None]:
    try:
        if op == "upsert":
            ids, texts, metas, embeddings = payload
            vectors.upsert(ids, texts, metas, embeddings=embeddings)
        elif op == "delete":
            ids, namespace = payload
            vectors.delete(ids, namespace=namespace)
        else:
            return "error", f"unknown request {op!r}"
    except MemoryGraphError as exc:
        return "error", str(exc)
    return "ok", None


def _worker_error(failures: list[tuple[int, WorkerFailure]]) -> MemoryGraphError:
    errors = [f"worker {no}: {failure.message}" for no, failure in failures]
    message = "; ".join(errors[:3]) + (f" (and {len(errors) - 3} more)" if len(errors) > 3 else "")
    if any(failure.bad_input for _, failure in failures):
        return InputError(message)
    return StoreError(f"{message}; run the same command again to resume")
