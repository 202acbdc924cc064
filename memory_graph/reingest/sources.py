"""Sources of a re-ingest: records at stable positions, read a slice at a time.

A source is opened from a picklable :class:`SourceSpec` (so a worker process can open it
too); its records keep their positions between runs, which is what a job's batches point at.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

#: Metadata keys read as the time a memory was observed (first present wins).
TIME_KEYS = ("observed_at", "timestamp", "created_at")
#: Vector sizes of the embedding models we know, by normalised name.
KNOWN_DIMS = {"all-minilm-l6-v2": 384, "all-minilm-l12-v2": 384, "all-mpnet-base-v2": 768}


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
                text_hash = (
                    hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest() if isinstance(text, str) else ""
                )
                # surrogatepass: a record that is not valid Unicode is reported by the job, not here.
                digest.update(f"{r.id}\x00{text_hash}\x00{r.problem or ''}\n".encode("utf-8", "surrogatepass"))
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
