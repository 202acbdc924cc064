"""Entity merges: an alias points at its canonical entity (``merged_into``), recorded and undoable.

A merge moves no rows: it sets ``entities.merged_into`` and records itself in
``entity_merges``, so undoing it is clearing that pointer again. Reads resolve every entity
through its pointer (``coalesce(merged_into, id)``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from memory_graph.errors import ConfigError, NotFoundError
from memory_graph.records import Merge
from memory_graph.schema import Entity, EntityMerge
from memory_graph.store.engine import Dialect, batches, utcnow
from memory_graph.vocabulary import CONCEPT, UNNAMED_LABELS


def merge(conn: Connection, dialect: Dialect, entity_id: int, into_id: int, reason: str) -> int:
    """Make ``entity_id`` an alias of ``into_id``; returns the merge id.

    Raises:
        ConfigError: the entities are the same, in different namespaces, or already merged.
    """
    rows = {
        r.id: r
        for r in conn.execute(
            select(Entity.id, Entity.namespace, Entity.merged_into).where(Entity.id.in_([entity_id, into_id]))
        )
    }
    if entity_id == into_id or len(rows) != 2:
        raise ConfigError(f"cannot merge entity {entity_id} into {into_id}: both must exist and differ")
    if rows[entity_id].namespace != rows[into_id].namespace:
        raise ConfigError(f"cannot merge entities {entity_id} and {into_id} across namespaces")
    if rows[entity_id].merged_into is not None or rows[into_id].merged_into is not None:
        raise ConfigError(f"entity {entity_id} or {into_id} is already merged; undo that merge first")
    # Entities already merged into the alias follow it to the new canonical entity.
    conn.execute(update(Entity).where(Entity.merged_into == entity_id).values(merged_into=into_id))
    conn.execute(update(Entity).where(Entity.id == entity_id).values(merged_into=into_id))
    result = conn.execute(
        dialect.insert(EntityMerge).returning(EntityMerge.id),
        {
            "namespace": rows[entity_id].namespace,
            "entity_id": entity_id,
            "into_id": into_id,
            "reason": reason[:255],
            "created_at": utcnow(),
        },
    )
    return int(result.scalar_one())


def undo_merge(conn: Connection, merge_id: int) -> None:
    """Split a merged entity off again.

    Raises:
        NotFoundError: there is no such merge, or it was already undone.
    """
    found = conn.execute(select(EntityMerge).where(EntityMerge.id == merge_id, EntityMerge.undone_at.is_(None))).first()
    if found is None:
        raise NotFoundError("merge", merge_id)
    conn.execute(
        update(Entity).where(Entity.id == found.entity_id, Entity.merged_into == found.into_id).values(merged_into=None)
    )
    conn.execute(update(EntityMerge).where(EntityMerge.id == merge_id).values(undone_at=utcnow()))


def merges(conn: Connection, namespace: str) -> list[Merge]:
    """The merges of a namespace, newest first, with both entities' names."""
    alias, into = Entity.__table__.alias("a"), Entity.__table__.alias("i")
    query = (
        select(
            EntityMerge.id,
            EntityMerge.entity_id,
            alias.c.name.label("entity_name"),
            EntityMerge.into_id,
            into.c.name.label("into_name"),
            EntityMerge.reason,
            EntityMerge.created_at,
            EntityMerge.undone_at,
        )
        .join(alias, alias.c.id == EntityMerge.entity_id)
        .join(into, into.c.id == EntityMerge.into_id)
        .where(EntityMerge.namespace == namespace)
        .order_by(EntityMerge.id.desc())
    )
    return [Merge(**r._mapping) for r in conn.execute(query)]


def resolve_aliases(
    conn: Connection, dialect: Dialect, namespace: str, keys: Iterable[tuple[str, str]], labels: Iterable[str]
) -> list[int]:
    """Merge one-word names into the one longer name of the namespace they can only mean (see
    :meth:`GraphStore.resolve_aliases`); returns the merge ids."""
    keys = set(keys)
    wanted = {(label, key) for label, key in keys if label in set(labels)}
    merged: list[int] = []
    # A proper noun the NER missed in one memory ("Vantage Robotics" as a CONCEPT) is the named
    # entity another memory found, when exactly one named entity has that name.
    for batch in batches(sorted({key for _, key in keys})):
        same_key: dict[str, list[Any]] = defaultdict(list)
        for r in conn.execute(
            select(Entity.id, Entity.key, Entity.label).where(
                Entity.namespace == namespace, Entity.key.in_(batch), Entity.merged_into.is_(None)
            )
        ):
            same_key[r.key].append(r)
        for key, rows in same_key.items():
            named = [r for r in rows if r.label not in UNNAMED_LABELS]
            concepts = [r for r in rows if r.label == CONCEPT]
            if len(named) == 1 and concepts:
                for concept in concepts:
                    merged.append(
                        merge(conn, dialect, concept.id, named[0].id, f"same name as {named[0].label} '{key}'")
                    )
    short: set[tuple[str, str]] = set()
    for label, key in wanted:
        words = key.split()
        if len(words) == 1:
            short.add((label, key))
        elif len(words) > 1:
            short.update({(label, words[0]), (label, words[-1])})
    for label, word in sorted(short):
        if len(word) < 3:
            continue
        alias = conn.execute(
            select(Entity.id).where(
                Entity.namespace == namespace,
                Entity.label == label,
                Entity.key == word,
                Entity.merged_into.is_(None),
            )
        ).scalar()
        if alias is None:
            continue
        escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        candidates = list(
            conn.execute(
                select(Entity.id)
                .where(
                    Entity.namespace == namespace,
                    Entity.label == label,
                    Entity.merged_into.is_(None),
                    Entity.id != alias,
                    Entity.key.like(f"{escaped} %", escape="\\") | Entity.key.like(f"% {escaped}", escape="\\"),
                )
                .limit(2)
            ).scalars()
        )
        if len(candidates) == 1:
            merged.append(
                merge(conn, dialect, alias, candidates[0], f"unique {label.lower()} name containing '{word}'")
            )
    return merged
