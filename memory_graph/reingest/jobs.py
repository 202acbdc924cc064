"""The re-ingest checkpoint: jobs and the batches that workers claim, in the target database.

A job is one run over one source (``reingest_jobs``); its records are cut into batches of
positions ``[start, stop)`` (``reingest_batches``). A worker claims the next pending batch,
stores its records, and marks it done with its counts, so a killed run resumes where it stopped
and any number of workers (processes or machines) can share a job:

- PostgreSQL: the claim is one ``UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED)``, so
  concurrent workers never wait on each other and never get the same batch.
- SQLite: the same ``UPDATE … RETURNING`` without the locking clause; SQLite has one writer at a
  time, so the statement is atomic on its own (a short write transaction).

A claim is a lease: a batch claimed longer ago than ``lease`` is handed out again (its worker is
presumed dead), and a run reclaims at once the batches of dead processes on its own host.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection, Engine

from memory_graph.schema import ReingestBatch, ReingestJob
from memory_graph.store.engine import Dialect, sql_errors, utcnow

#: How long a claim protects a batch; after that another worker may take it over.
DEFAULT_LEASE = timedelta(minutes=15)


def worker_name() -> str:
    """``host:pid`` of this process: how claims name their worker."""
    return f"{socket.gethostname()}:{os.getpid()}"


def job_key(*, namespace: str, source: str, fingerprint: str) -> str:
    """The stable prefix of the ids of the jobs over one source and namespace."""
    return hashlib.sha256(f"{namespace}\x00{source}\x00{fingerprint}".encode()).hexdigest()[:48]


@dataclass(frozen=True)
class Batch:
    """A claimed slice ``[start, stop)`` of a job's records."""

    id: int
    job_id: str
    batch_no: int
    start: int
    stop: int


@dataclass
class Job:
    """A job row and whether this run resumes it."""

    id: str
    namespace: str
    source: str
    total: int
    created_at: datetime
    finished_at: datetime | None
    report: dict[str, Any]
    resumed: bool = False


@dataclass
class BatchCounts:
    """What a batch did, as stored in its row (``problems`` holds per-record and summary notes)."""

    stored: int = 0
    skipped: int = 0
    failed: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class JobProgress:
    """Batches and records of a job by state."""

    total: int
    done_records: int
    done_batches: int
    pending_batches: int
    claimed_batches: int


class JobStore:
    """Jobs and batch claims in the target database (``reingest_jobs``, ``reingest_batches``).

    Args:
        engine: the engine of the target :class:`~memory_graph.store.GraphStore`.
        lease: how long a claim protects a batch from other workers.
    """

    def __init__(self, engine: Engine, *, lease: timedelta = DEFAULT_LEASE) -> None:
        self.engine = engine
        self.dialect = Dialect(engine.dialect.name)
        self.lease = lease

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        with sql_errors(doing, self.engine):
            yield

    @contextmanager
    def _write(self, doing: str) -> Iterator[Connection]:
        with self._errors(doing), self.engine.begin() as conn:
            yield conn

    # -- jobs --------------------------------------------------------------------------------

    def open_job(
        self,
        *,
        key: str,
        namespace: str,
        source: str,
        total: int,
        batch_size: int,
        meta: dict[str, Any] | None = None,
    ) -> Job:
        """The unfinished job with this key (resumed), or a new one with its batches.

        Job ids are ``<key>.<generation>``: every worker that starts on the same source computes
        the same id, so concurrent starts join one job instead of racing to create two.
        """
        with self._write("opening the re-ingest job") as conn:
            rows = conn.execute(select(_JOBS).where(ReingestJob.id.like(f"{key}.%"))).all()
            open_jobs = [r for r in rows if r.finished_at is None]
            if open_jobs:
                row = max(open_jobs, key=lambda r: r.created_at)
                return _job(row, resumed=True)
            generation = max((int(r.id.rsplit(".", 1)[1]) for r in rows), default=-1) + 1
            job_id = f"{key}.{generation}"
            conn.execute(
                self.dialect.insert(ReingestJob)
                .values(
                    id=job_id,
                    namespace=namespace,
                    source=source,
                    total=total,
                    created_at=utcnow(),
                    finished_at=None,
                    report={"batch_size": batch_size, **(meta or {})},
                )
                .on_conflict_do_nothing(index_elements=["id"])
            )
            batches = [
                {
                    "job_id": job_id,
                    "batch_no": no,
                    "start": start,
                    "stop": min(start + batch_size, total),
                    "status": "pending",
                    "stored": 0,
                    "skipped": 0,
                    "failed": 0,
                    "problems": [],
                }
                for no, start in enumerate(range(0, total, batch_size))
            ]
            stmt = self.dialect.insert(ReingestBatch).on_conflict_do_nothing(index_elements=["job_id", "batch_no"])
            for i in range(0, len(batches), 500):
                conn.execute(stmt, batches[i : i + 500])
            row = conn.execute(select(_JOBS).where(ReingestJob.id == job_id)).one()
            return _job(row, resumed=False)

    def job(self, job_id: str) -> Job | None:
        """The job with this id, or None."""
        with self._errors("reading the re-ingest job"), self.engine.connect() as conn:
            row = conn.execute(select(_JOBS).where(ReingestJob.id == job_id)).first()
        return None if row is None else _job(row)

    def finish(self, job_id: str, report: dict[str, Any]) -> None:
        """Close the job with its final report (a later run over the source starts a new job)."""
        with self._write("closing the re-ingest job") as conn:
            conn.execute(
                update(ReingestJob).where(ReingestJob.id == job_id).values(finished_at=utcnow(), report=report)
            )

    # -- batches -----------------------------------------------------------------------------

    def claim(self, job_id: str, *, worker: str) -> Batch | None:
        """Claim the next pending batch (or one whose lease ran out); None when none is left."""
        stale = utcnow() - self.lease
        candidate = (
            select(ReingestBatch.id)
            .where(
                ReingestBatch.job_id == job_id,
                (ReingestBatch.status == "pending")
                | ((ReingestBatch.status == "claimed") & (ReingestBatch.claimed_at < stale)),
            )
            .order_by(ReingestBatch.batch_no)
            .limit(1)
        )
        # On PostgreSQL, concurrent claimers skip the rows others hold instead of queueing behind them.
        candidate = self.dialect.skip_locked(candidate)
        stmt = (
            update(ReingestBatch)
            .where(ReingestBatch.id == candidate.scalar_subquery())
            .values(status="claimed", worker=worker, claimed_at=utcnow())
            .returning(ReingestBatch.id, ReingestBatch.batch_no, ReingestBatch.start, ReingestBatch.stop)
        )
        with self._write("claiming a re-ingest batch") as conn:
            row = conn.execute(stmt).first()
        return None if row is None else Batch(row.id, job_id, row.batch_no, row.start, row.stop)

    def complete(self, batch: Batch, counts: BatchCounts, *, worker: str) -> bool:
        """Mark a claimed batch done with its counts; False when another worker took it over."""
        with self._write("recording a re-ingest batch") as conn:
            result = conn.execute(
                update(ReingestBatch)
                .where(ReingestBatch.id == batch.id, ReingestBatch.worker == worker, ReingestBatch.status == "claimed")
                .values(
                    status="done",
                    done_at=utcnow(),
                    stored=counts.stored,
                    skipped=counts.skipped,
                    failed=counts.failed,
                    problems=counts.problems,
                )
            )
        return bool(result.rowcount)

    def release(self, batch: Batch, *, worker: str) -> None:
        """Give a claimed batch back (the worker stops without finishing it)."""
        with self._write("releasing a re-ingest batch") as conn:
            conn.execute(
                update(ReingestBatch)
                .where(ReingestBatch.id == batch.id, ReingestBatch.worker == worker, ReingestBatch.status == "claimed")
                .values(status="pending", worker=None, claimed_at=None)
            )

    def reclaim_dead(self, job_id: str, *, host: str | None = None, alive: Callable[[int], bool] | None = None) -> int:
        """Hand back the batches claimed by processes of ``host`` that no longer run.

        Returns:
            How many batches went back to pending.
        """
        host = host or socket.gethostname()
        alive = alive or pid_alive
        with self._write("reclaiming re-ingest batches") as conn:
            rows = conn.execute(
                select(ReingestBatch.id, ReingestBatch.worker).where(
                    ReingestBatch.job_id == job_id, ReingestBatch.status == "claimed"
                )
            ).all()
            dead = [r.id for r in rows if _dead_local(r.worker, host, alive)]
            if dead:
                conn.execute(
                    update(ReingestBatch)
                    .where(ReingestBatch.id.in_(dead), ReingestBatch.status == "claimed")
                    .values(status="pending", worker=None, claimed_at=None)
                )
        return len(dead)

    def progress(self, job_id: str) -> JobProgress:
        """How far a job is (one aggregate query)."""
        query = (
            select(
                ReingestBatch.status,
                func.count(),
                func.coalesce(func.sum(ReingestBatch.stop - ReingestBatch.start), 0),
            )
            .where(ReingestBatch.job_id == job_id)
            .group_by(ReingestBatch.status)
        )
        with self._errors("reading re-ingest progress"), self.engine.connect() as conn:
            rows = {r[0]: (int(r[1]), int(r[2])) for r in conn.execute(query)}
            total = conn.execute(select(ReingestJob.total).where(ReingestJob.id == job_id)).scalar_one_or_none() or 0
        return JobProgress(
            total=int(total),
            done_records=rows.get("done", (0, 0))[1],
            done_batches=rows.get("done", (0, 0))[0],
            pending_batches=rows.get("pending", (0, 0))[0],
            claimed_batches=rows.get("claimed", (0, 0))[0],
        )

    def batch_counts(self, job_id: str) -> list[BatchCounts]:
        """The counts of the job's finished batches, in batch order."""
        query = (
            select(ReingestBatch.stored, ReingestBatch.skipped, ReingestBatch.failed, ReingestBatch.problems)
            .where(ReingestBatch.job_id == job_id, ReingestBatch.status == "done")
            .order_by(ReingestBatch.batch_no)
        )
        with self._errors("reading re-ingest results"), self.engine.connect() as conn:
            return [BatchCounts(r.stored, r.skipped, r.failed, list(r.problems or [])) for r in conn.execute(query)]

    def jobs(self, *, source: str | None = None) -> list[Job]:
        """Every job (of one source), newest first."""
        query = select(_JOBS).order_by(ReingestJob.created_at.desc())
        if source is not None:
            query = query.where(ReingestJob.source == source)
        with self._errors("listing re-ingest jobs"), self.engine.connect() as conn:
            return [_job(r) for r in conn.execute(query)]


_JOBS = ReingestJob.__table__


def _job(row: Any, *, resumed: bool = False) -> Job:
    return Job(
        id=row.id,
        namespace=row.namespace,
        source=row.source,
        total=row.total,
        created_at=row.created_at,
        finished_at=row.finished_at,
        report=dict(row.report or {}),
        resumed=resumed,
    )


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host. A zombie (killed, not yet reaped by its
    parent: a worker whose coordinator was killed with it) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return True  # no /proc: trust kill()
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _dead_local(worker: str | None, host: str, alive: Callable[[int], bool]) -> bool:
    if not worker:
        return True
    name, _, pid = worker.rpartition(":")
    return name == host and pid.isdigit() and int(pid) != os.getpid() and not alive(int(pid))
