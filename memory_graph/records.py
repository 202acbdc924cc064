"""Pure data: what extraction found in a text, and the result types of the public API.

The result types are frozen dataclasses that serialise to JSON; their field names are part of
the contract (``docs/architecture.md``, "Public API").
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import field
from datetime import date, datetime
from typing import Any


class Serialisable:
    """A dataclass that turns itself into JSON."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601 strings)."""
        return _jsonable(dataclasses.asdict(self))  # type: ignore[call-overload,no-any-return]

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


# -- what extraction found ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ExtractedEntity:
    """An entity mention; offsets are characters into the text given to the extractor."""

    text: str
    label: str
    key: str
    name: str  # the canonical name to store: the mention, or the speaker behind "I"/"my"
    start: int
    end: int
    sent_start: int
    sent_end: int
    pronoun: bool = False  # a pronoun standing for an entity named elsewhere: the speaker, an antecedent
    attributes: dict[str, str] = field(default_factory=dict, compare=False)  # e.g. a DATE's resolved value


@dataclasses.dataclass(frozen=True)
class ExtractedRelation:
    """A directed relation between two entities of the same :class:`Extraction` (by index)."""

    source: int
    predicate: str
    target: int
    pattern: str
    confidence: float
    sentence: str
    sent_start: int
    sent_end: int
    # A statement of a state (memory_graph.facts): which state, its role (hold, start, end, past,
    # cancel), its modality (asserted, planned), the times the text gives, and whether it
    # corrects the statement before it.
    state: str | None = None
    role: str | None = None
    modality: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    correction: bool = False
    # The relation as the sentence says it: the predicate as written ("was born in") and the
    # character spans of the full phrases of its two ends ("the first Prime Minister of Australia").
    surface: str = ""
    source_span: tuple[int, int] | None = None
    target_span: tuple[int, int] | None = None


@dataclasses.dataclass
class Extraction:
    """What the pipeline found in one text, and the version of the extractor that found it
    (stored on every relation, so re-ingest can find edges made by an older extractor)."""

    entities: list[ExtractedEntity] = field(default_factory=list)
    relations: list[ExtractedRelation] = field(default_factory=list)
    extractor_version: str = ""


# -- results of the public API ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EntityRef(Serialisable):
    """An entity, by id, canonical name and label."""

    id: int
    name: str
    label: str


@dataclasses.dataclass(frozen=True)
class RelationRef(Serialisable):
    """A relation with the sentence that supports it (for a state, the statement of it)."""

    id: int
    source: EntityRef
    predicate: str
    target: EntityRef
    evidence: str
    confidence: float
    # For a state (a predicate of one value at a time: "lives in"): the value's status at the
    # time asked about ("current", "former" or "planned") and the period it held or will hold.
    state: str | None = None
    status: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    # As the evidence says it: the relation's words ("was born in") and the full phrases of its
    # ends ("the first Prime Minister of Australia"); None for evidence stored before they were kept.
    surface: str | None = None
    source_phrase: str | None = None
    target_phrase: str | None = None

    @property
    def reading(self) -> str:
        """The relation as its evidence says it ("Bob is the CEO of Acme"), else in the graph's
        words ("Bob be ceo of Acme")."""
        words = (
            self.source_phrase or self.source.name,
            self.surface or self.predicate,
            self.target_phrase or self.target.name,
        )
        return " ".join(" ".join(words).split())


@dataclasses.dataclass(frozen=True)
class MemoryRecord(Serialisable):
    """What :meth:`MemoryManager.add` stored (or found already stored)."""

    document_id: str
    external_id: str | None
    namespace: str
    chunk_ids: list[str]
    entities: list[EntityRef]
    relations: list[RelationRef]
    created: bool = True  # False when an identical memory was already stored


@dataclasses.dataclass(frozen=True)
class MemoryHit(Serialisable):
    """One search result: a chunk, its score, why it was found, and its graph context."""

    chunk_id: str
    document_id: str
    external_id: str | None
    namespace: str
    text: str
    score: float
    reasons: list[str]
    entities: list[EntityRef]
    relations: list[RelationRef]  # those the chunk states (co-occurrence is no statement)
    metadata: dict[str, Any]
    observed_at: datetime | None


@dataclasses.dataclass(frozen=True)
class Mention(Serialisable):
    """Where an entity is mentioned: chunk, document offsets and the sentence."""

    chunk_id: str
    document_id: str
    text: str
    start: int
    end: int
    sentence: str
    observed_at: datetime | None


@dataclasses.dataclass(frozen=True)
class EntityView(Serialisable):
    """Everything known about one entity."""

    entity: EntityRef
    namespace: str
    aliases: list[str]
    mention_count: int
    first_seen: datetime | None
    last_seen: datetime | None
    attributes: dict[str, Any]
    relations: list[RelationRef]
    mentions: list[Mention]


@dataclasses.dataclass(frozen=True)
class Merge(Serialisable):
    """One alias resolution: ``entity_id`` ("Bob") was merged into ``into_id`` ("Bob Smith"),
    undone when ``undone_at`` is set."""

    id: int
    entity_id: int
    entity_name: str
    into_id: int
    into_name: str
    reason: str
    created_at: datetime | None
    undone_at: datetime | None


@dataclasses.dataclass(frozen=True)
class ConsistencyReport(Serialisable):
    """The result of :meth:`MemoryManager.verify`: problems found and, with ``repair``, fixed."""

    ok: bool
    chunks_without_vectors: int = 0
    vectors_without_chunks: int = 0
    unindexed_chunks: int = 0
    dangling_mentions: int = 0
    dangling_relations: int = 0
    orphan_entities: int = 0
    count_mismatches: int = 0
    repaired: bool = False


@dataclasses.dataclass(frozen=True)
class Stats(Serialisable):
    """Row counts, for one namespace or all."""

    namespace: str | None
    documents: int
    chunks: int
    entities: int
    relations: int
    mentions: int
    vectors: int


@dataclasses.dataclass(frozen=True)
class Forgotten(Serialisable):
    """What :meth:`MemoryManager.forget` removed of one namespace: rows of each table (documents
    count their tombstones too) and vectors. All zero when the namespace held nothing."""

    namespace: str
    documents: int = 0
    chunks: int = 0
    entities: int = 0
    aliases: int = 0
    mentions: int = 0
    relations: int = 0
    evidence: int = 0
    merges: int = 0
    reingest_jobs: int = 0
    vectors: int = 0
