"""Metadata filters of a search (``where=``): parsed and checked once, then pushed down to both
stores (:meth:`Dialect.metadata_match` for SQL, :func:`chroma_where` for Chroma).

A filter is a mapping of metadata keys to conditions, all of which must hold (an AND):

- ``{"kind": "episodic"}``: the key's value equals this one;
- ``{"kind": {"$eq": "episodic"}}``: the same;
- ``{"kind": {"$in": ["episodic", "semantic"]}}``: the value is one of these;
- ``{"$and": [{"kind": "episodic"}, {"lang": "en"}]}``: each of these filters.

Values are strings, numbers or booleans; a number equals the same number whether written as an
integer or not (``3 == 3.0``), and a boolean is never a number. A memory whose metadata lacks the
key, or holds a list or an object under it, does not match. Keys are 1-64 letters, digits, ``_``,
``-`` or ``.``, not starting with ``$``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from memory_graph.errors import InputError

Scalar = str | int | float | bool

#: What a memory's metadata key is stored under in its Chroma records (``meta.kind``), so that a
#: user's key never collides with the index's own (``namespace``, ``document_id``...).
CHROMA_PREFIX = "meta."
_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_OPERATORS = ("$eq", "$in")


@dataclass(frozen=True)
class MetadataFilter:
    """A checked ``where=`` filter: each clause is a key and the values it may hold (any one)."""

    clauses: tuple[tuple[str, tuple[Scalar, ...]], ...]


def filterable_key(key: object) -> bool:
    """Whether ``key`` can be filtered on (and so is copied into the vector index)."""
    return isinstance(key, str) and _KEY.match(key) is not None


def is_scalar(value: object) -> bool:
    """A value a filter compares: a string (without NUL, which PostgreSQL cannot hold), a
    boolean, a 64-bit integer (what SQLite and Chroma hold) or a finite float."""
    if isinstance(value, bool):
        return True
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return isinstance(value, float) and math.isfinite(value)


def parse_where(where: Mapping[str, Any] | None) -> MetadataFilter | None:
    """Check a ``where=`` filter (see the module docstring); ``None`` or ``{}``: no filter.

    Raises:
        InputError: the filter is malformed; the message says where, in one line.
    """
    if where is None:
        return None
    clauses: list[tuple[str, tuple[Scalar, ...]]] = []
    _collect(where, clauses)
    return MetadataFilter(tuple(clauses)) if clauses else None


def _collect(where: Any, clauses: list[tuple[str, tuple[Scalar, ...]]]) -> None:
    if not isinstance(where, Mapping):
        raise InputError(f"where must be a mapping of metadata keys to values, not {type(where).__name__}")
    for key, condition in where.items():
        if key == "$and":
            if not isinstance(condition, list) or not condition:
                raise InputError("where: '$and' takes a non-empty list of filters")
            for part in condition:
                _collect(part, clauses)
            continue
        if isinstance(key, str) and key.startswith("$"):
            raise InputError(f"where: unknown operator {key!r} at the top level; use '$and' or a metadata key")
        if not filterable_key(key):
            raise InputError(f"where: key {key!r} is invalid; use 1-64 letters, digits, '_', '-' or '.'")
        clauses.append((key, _values(key, condition)))


def _values(key: str, condition: Any) -> tuple[Scalar, ...]:
    if is_scalar(condition):
        return (condition,)
    if not isinstance(condition, Mapping) or len(condition) != 1:
        raise InputError(
            f"where: the condition on {key!r} must be a string, number or boolean, or one of "
            f"{{'$eq': value}}, {{'$in': [values]}}; got {condition!r:.80}"
        )
    ((operator, operand),) = condition.items()
    if operator not in _OPERATORS:
        raise InputError(f"where: unknown operator {operator!r} on {key!r}; supported: {', '.join(_OPERATORS)}")
    if operator == "$eq":
        if not is_scalar(operand):
            raise InputError(f"where: '$eq' on {key!r} takes a string, number or boolean, not {operand!r:.80}")
        return (operand,)
    if not isinstance(operand, list) or not operand or not all(is_scalar(v) for v in operand):
        raise InputError(f"where: '$in' on {key!r} takes a non-empty list of strings, numbers or booleans")
    return tuple(dict.fromkeys(operand))


def chroma_where(where: MetadataFilter) -> dict[str, Any]:
    """The filter as a Chroma ``where`` over the records' copies of the metadata. Chroma's
    ``$in`` takes values of one type, so values of several are an ``$or`` of one ``$in`` each."""
    parts: list[dict[str, Any]] = []
    for key, values in where.clauses:
        field = CHROMA_PREFIX + key
        kinds: dict[type, list[Scalar]] = {}
        for v in values:
            kinds.setdefault(type(v), []).append(v)
        ors = [{field: vs[0]} if len(vs) == 1 else {field: {"$in": vs}} for vs in kinds.values()]
        parts.append(ors[0] if len(ors) == 1 else {"$or": ors})
    return parts[0] if len(parts) == 1 else {"$and": parts}
