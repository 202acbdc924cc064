"""Request and response bodies of the HTTP API that are not the library's own result types.

Responses are the result types of :mod:`memory_graph.records` (same field names); requests take
the keyword names of the matching :class:`~memory_graph.MemoryManager` methods. Times are ISO
8601 strings, checked by the library as in-process (a bad one is a 422).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_TIME = "ISO 8601 date or datetime"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MemoryIn(Body):
    """One memory, as :meth:`MemoryManager.add` takes it."""

    text: str = Field(description="The memory's text.")
    metadata: dict[str, Any] | None = Field(default=None, description='Metadata; "speaker" resolves "I"/"my".')
    observed_at: str | None = Field(default=None, description=f"When it was said or written ({_TIME}).")
    external_id: str | None = Field(default=None, description="Your id; the same id with new text replaces it.")
    source: str | None = Field(default=None, description="Where it came from.")


class MemoriesIn(Body):
    """Many memories, as :meth:`MemoryManager.add_many` takes them: one bad row stores none."""

    memories: list[MemoryIn] = Field(max_length=10_000)


class SearchIn(Body):
    """The arguments of :meth:`MemoryManager.search` and :meth:`MemoryManager.explain`."""

    query: str
    k: int = Field(default=5, ge=1, le=100)
    since: str | None = Field(default=None, description=f"Only memories observed at or after this ({_TIME}).")
    until: str | None = Field(default=None, description=f"Only memories observed before this ({_TIME}).")
    as_of: str | None = Field(default=None, description=f"Answer as of this time ({_TIME}).")
    where: dict[str, Any] | None = Field(
        default=None,
        description='Only memories whose metadata matches: {"kind": "episodic"}, {"kind": {"$in": [...]}}, '
        'several keys (all must match) or {"$and": [...]}.',
    )


class ContextIn(SearchIn):
    """The arguments of :meth:`MemoryManager.context`."""

    k: int = Field(default=8, ge=1, le=100)
    max_tokens: int = Field(default=800, ge=1, le=100_000)


class ContextOut(BaseModel):
    context: str


class VerifyIn(Body):
    repair: bool = False


class KeyIn(Body):
    """A new API key: the namespaces it may touch, or ``admin`` for all of them and key management."""

    name: str = Field(min_length=1, max_length=200)
    namespaces: list[str] = Field(default_factory=list, max_length=1000)
    admin: bool = False


class KeyOut(BaseModel):
    id: str
    name: str
    namespaces: list[str]
    admin: bool
    source: str
    created_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="The key itself; shown only now, the server keeps its hash.")


class ErrorOut(BaseModel):
    detail: str = Field(description="What went wrong, in one line.")


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
