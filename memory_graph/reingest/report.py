"""The report of a re-ingest or import: every record of the source accounted for."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from memory_graph.reingest.jobs import BatchCounts, Job


class ProblemKind(StrEnum):
    """What a batch notes about its records (stored in ``reingest_batches.problems``)."""

    SKIPPED = "skipped"  # a record that cannot become a memory (per record, with its reason)
    FAILED = "failed"  # a record whose write failed (per record, with its reason)
    REPLACED = "replaced"  # a record whose text changed since an earlier run (per record)
    UNCHANGED = "unchanged"  # records already stored with the same text (a count)
    REUSED = "reused"  # records whose stored vector was reused (a count)


def problem(kind: ProblemKind, record_id: str | None, reason: str) -> dict[str, Any]:
    """A per-record note, as stored in a batch's ``problems``."""
    return {"id": record_id, "kind": kind.value, "reason": reason}


def tally(kind: ProblemKind, count: int) -> dict[str, Any]:
    """A count note, as stored in a batch's ``problems``."""
    return {"kind": kind.value, "count": count}


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
            if kind == ProblemKind.UNCHANGED:
                unchanged += n
                skipped_reasons["already stored"] += n
            elif kind == ProblemKind.REUSED:
                reused += n
            elif kind == ProblemKind.REPLACED:
                replaced.append(problem(ProblemKind.REPLACED, p.get("id"), p["reason"]))
            elif kind in (ProblemKind.SKIPPED, ProblemKind.FAILED):
                (skipped_reasons if kind == ProblemKind.SKIPPED else failed_reasons)[_reason_kind(p["reason"])] += n
                problems.append(problem(ProblemKind(kind), p.get("id"), p["reason"]))
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
