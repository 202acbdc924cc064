"""Typed rows the relational store returns: plain dataclasses, no queries.

The public result types (:mod:`memory_graph.records`) are built from these by the manager and
by retrieval; analysis turns lists of them into DataFrames.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy.engine import Row

from memory_graph.records import RelationRef


@dataclass
class ChunkRow:
    """A chunk joined with its document."""

    id: str
    document_id: str
    namespace: str
    text: str
    start: int
    end: int
    external_id: str | None
    metadata: dict[str, Any]
    observed_at: datetime | None
    created_at: datetime | None = None  # when it was written: memories of one time keep the order given


@dataclass
class DocumentRow:
    """A document and its chunks (``deleted``: a tombstone)."""

    id: str
    namespace: str
    external_id: str | None
    chunk_ids: list[str]
    deleted: bool


@dataclass(frozen=True)
class EntityRow:
    """An entity row as stored."""

    id: int
    namespace: str
    label: str
    key: str
    name: str
    attributes: dict[str, Any]
    mention_count: int
    first_seen: datetime | None
    last_seen: datetime | None

    @classmethod
    def of(cls, row: Row[Any]) -> EntityRow:
        """The entity of a result row that holds the ``entities`` columns."""
        e = row._mapping
        return cls(
            id=e["id"],
            namespace=e["namespace"],
            label=e["label"],
            key=e["key"],
            name=e["name"],
            attributes=dict(e["attributes"] or {}),
            mention_count=e["mention_count"],
            first_seen=e["first_seen"],
            last_seen=e["last_seen"],
        )


@dataclass(frozen=True)
class EntityMention:
    """Where an entity is mentioned, with the chunk that holds the mention (document offsets)."""

    chunk_id: str
    document_id: str
    text: str
    start: int
    end: int
    sent_start: int
    sent_end: int
    chunk_start: int
    chunk_text: str
    observed_at: datetime | None

    @property
    def sentence(self) -> str:
        """The sentence of the mention, cut from its chunk."""
        return self.chunk_text[max(0, self.sent_start - self.chunk_start) : self.sent_end - self.chunk_start]


@dataclass(frozen=True)
class EntityDetails:
    """Aliases, relations (with evidence), mentions and mention totals of one entity and of the
    rows that stand for it (merged aliases, same-name siblings)."""

    aliases: list[str]
    relations: list[RelationRef]
    mentions: list[EntityMention]
    mention_count: int
    first_seen: datetime | None
    last_seen: datetime | None


@dataclass(frozen=True)
class Neighbour:
    """A relation touching a (canonical) entity: ``entity`` is that one, ``other`` the far end."""

    relation_id: int
    entity: int
    other: int
    predicate: str
    weight: float


@dataclass(frozen=True)
class Edge:
    """A relation between two (canonical) entities, weighted by its evidence and confidence."""

    relation_id: int
    source: int
    target: int
    weight: float


@dataclass(frozen=True)
class RelationRow:
    """A relation as stored, with its first evidence sentence."""

    id: int
    namespace: str
    source_id: int
    predicate: str
    target_id: int
    count: int
    confidence: float
    first_seen: datetime | None
    last_seen: datetime | None
    evidence: str | None
    state: str | None = None  # a state's value (memory_graph.facts): its status and period
    status: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    surface: str | None = None  # as the first evidence says it (see RelationRef)
    source_phrase: str | None = None
    target_phrase: str | None = None


def phrase_in(sentence: str | None, sentence_start: int | None, start: int | None, end: int | None) -> str | None:
    """The words at document offsets ``start:end`` of a sentence that starts at ``sentence_start``."""
    if sentence is None or sentence_start is None or start is None or end is None:
        return None
    return sentence[start - sentence_start : end - sentence_start] or None


@dataclass(frozen=True)
class MentionRow:
    """A mention with its document and the document's observation time."""

    id: int
    namespace: str
    entity_id: int
    chunk_id: str
    document_id: str
    text: str
    start: int
    end: int
    observed_at: datetime | None


@dataclass(frozen=True)
class AliasRow:
    """A live surface form of an entity."""

    entity_id: int
    namespace: str
    alias: str
    alias_key: str
    count: int


@dataclass(frozen=True)
class RowCounts:
    """Row counts of the relational store (live documents only)."""

    documents: int
    chunks: int
    entities: int
    relations: int
    mentions: int


@dataclass(frozen=True)
class GraphProblems:
    """Dangling rows and counters that disagree with the rows they count."""

    dangling_mentions: int = 0
    dangling_relations: int = 0
    orphan_entities: int = 0
    count_mismatches: int = 0

    def any(self) -> bool:
        return any((self.dangling_mentions, self.dangling_relations, self.orphan_entities, self.count_mismatches))


class MemberRow(NamedTuple):
    """An entity row that a (canonical) entity stands for, with its own mention count."""

    id: int
    merged_into: int | None
    namespace: str
    key: str
    mention_count: int


class MemberRows(NamedTuple):
    """The rows one (canonical) entity stands for: those of its name, and those merged into them."""

    same_name: list[MemberRow]
    merged: list[MemberRow]
