"""Result types of the public API: plain frozen dataclasses that serialise to JSON.

Field names are part of the contract (``../DESIGN.md``, "Public API").
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any


class _Serialisable:
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


@dataclasses.dataclass(frozen=True)
class EntityRef(_Serialisable):
    """An entity, by id, canonical name and label."""

    id: int
    name: str
    label: str


@dataclasses.dataclass(frozen=True)
class RelationRef(_Serialisable):
    """A relation with the sentence that supports it."""

    id: int
    source: EntityRef
    predicate: str
    target: EntityRef
    evidence: str
    confidence: float


@dataclasses.dataclass(frozen=True)
class MemoryRecord(_Serialisable):
    """What :meth:`MemoryManager.add` stored (or found already stored)."""

    document_id: str
    external_id: str | None
    namespace: str
    chunk_ids: list[str]
    entities: list[EntityRef]
    relations: list[RelationRef]
    created: bool = True  # False when an identical memory was already stored


@dataclasses.dataclass(frozen=True)
class MemoryHit(_Serialisable):
    """One search result: a chunk, its score, why it was found, and its graph context."""

    chunk_id: str
    document_id: str
    external_id: str | None
    namespace: str
    text: str
    score: float
    reasons: list[str]
    entities: list[EntityRef]
    relations: list[RelationRef]
    metadata: dict[str, Any]
    observed_at: datetime | None


@dataclasses.dataclass(frozen=True)
class Mention(_Serialisable):
    """Where an entity is mentioned: chunk, document offsets and the sentence."""

    chunk_id: str
    document_id: str
    text: str
    start: int
    end: int
    sentence: str
    observed_at: datetime | None


@dataclasses.dataclass(frozen=True)
class EntityView(_Serialisable):
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
class ConsistencyReport(_Serialisable):
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
class Stats(_Serialisable):
    """Row counts, for one namespace or all."""

    namespace: str | None
    documents: int
    chunks: int
    entities: int
    relations: int
    mentions: int
    vectors: int


#: Turns of a conversation further apart than this belong to different conversations.
TURN_GAP = timedelta(minutes=30)


def speaker_of(metadata: Mapping[str, Any]) -> str | None:
    """The speaker a memory's metadata names (``{"speaker": "Maya"}``), if any."""
    speaker = metadata.get("speaker")
    return speaker.strip() if isinstance(speaker, str) and speaker.strip() else None
