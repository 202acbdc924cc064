"""The reads only search makes: keyword search, entity lookups by name and date, the chunks and
relations around entities, and a conversation's next turns.

Each read is one statement (or one per batch of ids) on the relational store's connection for
the search (:meth:`GraphStore.reading`), and stays on index ranges: a query plan test holds the
conversation reads to the ``(namespace, observed_at)`` index. The statements are built once, at
import, or once per shape (:func:`functools.cache`): building one costs more than running it.
"""

from __future__ import annotations

import difflib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import cache
from typing import Any, TypeAlias

from sqlalchemy import bindparam, case, func, or_, select, text, union, union_all
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.expression import Select

from memory_graph.filters import MetadataFilter
from memory_graph.schema import Chunk, Document, Entity, EntityAlias, Mention, Relation, RelationEvidence
from memory_graph.store import GraphStore
from memory_graph.store.engine import batches
from memory_graph.store.reads import CANONICAL_ID, IDS, group_members, member_rows, restrict
from memory_graph.store.rows import ChunkRow, Edge, EntityRow, MemberRows, Neighbour
from memory_graph.vocabulary import CONCEPT, DATE, PRONOUNS, normalize_key, speaker_of

#: A SELECT of any columns.
Rows: TypeAlias = Select[*tuple[Any, ...]]

_NAMESPACES_OF = select(Chunk.namespace).where(Chunk.id.in_(IDS))
# A namespace's chunk count, and whether another namespace holds chunks (two index probes, not a count).
_NAMESPACE_CHUNKS = select(
    select(func.count()).select_from(Chunk).where(Chunk.namespace == bindparam("ns")).scalar_subquery(),
    or_(
        select(Chunk.id).where(Chunk.namespace < bindparam("ns")).exists(),
        select(Chunk.id).where(Chunk.namespace > bindparam("ns")).exists(),
    ),
)
_KEYS: BindParameter[Any] = bindparam("keys", expanding=True)
_MATCHED = union(
    select(Entity.key.label("k"), CANONICAL_ID.label("cid")).where(
        Entity.namespace == bindparam("ns"), Entity.key.in_(_KEYS)
    ),
    select(EntityAlias.alias_key.label("k"), CANONICAL_ID.label("cid"))
    .join(Entity, Entity.id == EntityAlias.entity_id)
    .where(EntityAlias.namespace == bindparam("ns"), EntityAlias.alias_key.in_(_KEYS), EntityAlias.count > 0),
).subquery()
_MATCH_KEYS = (
    select(_MATCHED.c.k, *Entity.__table__.c)
    .join(Entity, Entity.id == _MATCHED.c.cid)
    .order_by(Entity.mention_count.desc(), Entity.id)
)
_NAMES_FROM = (
    select(Entity)
    .where(
        Entity.namespace == bindparam("ns"),
        Entity.key >= bindparam("low"),
        Entity.key < bindparam("high"),
        Entity.merged_into.is_(None),
        Entity.label.not_in((CONCEPT, DATE)),
    )
    .order_by(Entity.mention_count.desc(), Entity.id)
    .limit(bindparam("limit"))
)
_DATES = (
    select(Entity)
    .where(
        Entity.namespace == bindparam("ns"),
        Entity.label == DATE,
        Entity.merged_into.is_(None),
        Entity.key.in_(_KEYS),
    )
    .order_by(Entity.key)
    .limit(100)
)
_RELATIONS_AMONG = select(
    Relation.id, Relation.source_id, Relation.target_id, (Relation.count * Relation.confidence).label("w")
).where(Relation.namespace == bindparam("ns"), Relation.source_id.in_(IDS), Relation.target_id.in_(IDS))
# A mention that names its entity: no pronoun ("I" standing for the speaker of a turn, "she"
# for the person named before).
_NAMES = func.lower(Mention.text).not_in(sorted(PRONOUNS))
# ``(chunk_id, canonical entity id, in first sentence)`` for the chunks ``:ids``, of the entities
# with a label among ``:labels`` (a turn's speaker behind its "I" among them).
_CHUNK_MENTIONS = (
    select(
        Mention.chunk_id,
        CANONICAL_ID.label("eid"),
        func.max(case((Mention.sent_start == Chunk.start, 1), else_=0)).label("first"),
    )
    .join(Entity, Entity.id == Mention.entity_id)
    .join(Chunk, Chunk.id == Mention.chunk_id)
    .where(Mention.chunk_id.in_(IDS), Entity.label.in_(bindparam("labels", expanding=True)))
    .group_by(Mention.chunk_id, CANONICAL_ID)
    .order_by(Mention.chunk_id, CANONICAL_ID)  # the same order however the chunks are batched
)
# The chunks among ``:ids`` that name an entity with a label among ``:labels`` other than the
# canonical ids ``:besides``: each chunk's mentions are read only up to the first such.
_NAMING = select(Chunk.id).where(
    Chunk.id.in_(IDS),
    select(Mention.id)
    .join(Entity, Entity.id == Mention.entity_id)
    .where(
        Mention.chunk_id == Chunk.id,
        _NAMES,
        Entity.label.in_(bindparam("labels", expanding=True)),
        CANONICAL_ID.not_in(bindparam("besides", expanding=True)),
    )
    .exists(),
)
_TERM = re.compile(r"\w+", re.UNICODE)


def keyword_terms(query: str, *, max_terms: int = 32) -> list[str]:
    """The query's words for keyword search: lower-cased, stop words dropped, deduplicated."""
    from spacy.lang.en.stop_words import STOP_WORDS

    words = [w.lower() for w in _TERM.findall(query)]
    terms = [w for w in words if w not in STOP_WORDS and (len(w) > 1 or w.isdigit())]
    return list(dict.fromkeys(terms or words))[:max_terms]


class SearchReads:
    """The reads of a search, on one :class:`GraphStore`.

    Every method reads through :meth:`GraphStore.reading`, so inside a search (which holds a
    connection for its whole run) they share one connection.
    """

    def __init__(self, graph: GraphStore) -> None:
        self.graph = graph

    def namespace_chunks(self, namespace: str) -> tuple[int, bool]:
        """How many chunks ``namespace`` holds, and whether it holds every chunk stored (one statement)."""
        with self.graph.reading("counting chunks") as conn:
            count, others = conn.execute(_NAMESPACE_CHUNKS, {"ns": namespace}).one()
            return int(count), not others

    def count_in_namespace(self, namespace: str, chunk_ids: Sequence[str]) -> int:
        """How many of ``chunk_ids`` are chunks of ``namespace``. Their namespaces are read by
        primary key and compared here: given ``namespace = ? AND id IN (...)``, SQLite (without
        statistics) walks the namespace's index instead."""
        with self.graph.reading("counting chunks") as conn:
            return sum(
                ns == namespace
                for batch in batches(list(dict.fromkeys(chunk_ids)))
                for ns in conn.execute(_NAMESPACES_OF, {"ids": batch}).scalars()
            )

    def keyword_search(
        self,
        query: str,
        *,
        namespace: str,
        limit: int,
        since: datetime | None = None,
        until: datetime | None = None,
        where: MetadataFilter | None = None,
    ) -> list[tuple[str, float]]:
        """Chunks matching any query term, best first (BM25 on SQLite, ``ts_rank_cd`` on
        PostgreSQL), of the documents ``where`` holds for."""
        terms = keyword_terms(query)
        if not terms:
            return []
        dialect = self.graph.dialect
        metadata, params = dialect.metadata_match(where, "d") if where is not None else (None, {})
        sql, q = dialect.keyword_query(
            terms, namespace=namespace, since=since is not None, until=until is not None, metadata=metadata
        )
        params |= {"ns": namespace, "limit": limit, "q": q}
        if since is not None:
            params["since"] = dialect.bind_time(since)
        if until is not None:
            params["until"] = dialect.bind_time(until)
        with self.graph.reading("keyword search") as conn:
            if not dialect.has_keyword_table(conn, namespace):
                return []
            return [(r.id, float(r.score)) for r in conn.execute(text(sql), params).all()]

    def match_keys(self, namespace: str, keys: Iterable[str]) -> dict[str, list[EntityRow]]:
        """For each of ``keys`` that is an entity key or a live alias key of ``namespace``, the
        (canonical) entities it names (one query per 400 keys)."""
        wanted = list(dict.fromkeys(k for k in keys if k))
        out: dict[str, list[EntityRow]] = defaultdict(list)
        with self.graph.reading("looking up entities") as conn:
            for batch in batches(wanted):
                for row in conn.execute(_MATCH_KEYS, {"ns": namespace, "keys": batch}).all():
                    out[row.k].append(EntityRow.of(row))
        return out

    def find_entities_fuzzy(
        self, namespace: str, names: Iterable[str], *, min_ratio: float = 0.85, limit: int = 50
    ) -> list[EntityRow]:
        """Named entities whose key starts with a word of ``names`` and is the same name in other
        words: each word of the shorter a prefix of the next words of the longer ("Acme Corp" ~
        "Acme Corporation", "Bob" ~ "Bob Smith"), or a near spelling (``difflib`` ratio at least
        ``min_ratio``: "Acme Corportion" ~ "Acme Corporation"), best first. Index range scans only."""
        wanted = [normalize_key(n) for n in names if n and n.strip()]
        words = sorted({w for n in wanted for w in n.split() if len(w) > 2})
        if not words:
            return []
        # One range scan of the (namespace, key) index per word: key >= w AND key < w with its last
        # letter bumped. As one OR of ranges, SQLite's plan scanned the namespace. The best
        # ``limit * 4`` of each range hold the best of them all.
        found: dict[int, Any] = {}
        with self.graph.reading("matching entity names") as conn:
            for w in words:
                params = {"ns": namespace, "low": w, "high": w[:-1] + chr(ord(w[-1]) + 1), "limit": limit * 4}
                for r in conn.execute(_NAMES_FROM, params):
                    found.setdefault(r.id, r)
        rows = sorted(found.values(), key=lambda r: (-r.mention_count, r.id))[: limit * 4]

        def likeness(name: str, key: str) -> float:
            if _same_name(name, key):
                return 1.0
            matcher = difflib.SequenceMatcher(None, name, key)
            # The cheap upper bounds first: most candidates fail them (difflib's own advice).
            if matcher.real_quick_ratio() < min_ratio or matcher.quick_ratio() < min_ratio:
                return 0.0
            return matcher.ratio()

        scored = [(best, row) for row in rows if (best := max(likeness(n, row.key) for n in wanted)) >= min_ratio]
        scored.sort(key=lambda pair: (-pair[0], -pair[1].mention_count, pair[1].id))
        return [EntityRow.of(row) for _, row in scored[:limit]]

    def find_dates(self, namespace: str, keys: Iterable[str]) -> list[EntityRow]:
        """DATE entities of the given date keys and the dates closest around them: a month
        (``2025-03``) finds its days (``2025-03-13``), a day finds its month; a year finds only
        itself (every date of a year would link almost every dated memory). Exact key lookups
        only: an OR with ``LIKE '2025-03-%'`` read every date of the namespace."""
        wanted: list[str] = []
        for key in keys:
            wanted.append(key)
            if len(key) == 7 and key[4] == "-":  # month
                wanted += [f"{key}-{day:02d}" for day in range(1, 32)]
            elif len(key) == 10:  # day
                wanted.append(key[:7])
        if not wanted:
            return []
        with self.graph.reading("looking up dates") as conn:
            params = {"ns": namespace, "keys": list(dict.fromkeys(wanted))}
            return [EntityRow.of(r) for r in conn.execute(_DATES, params)]

    def entity_members(self, entity_ids: Sequence[int]) -> tuple[dict[int, int], dict[int, int]]:
        """The rows standing for the given (canonical) entities, as ``entity id -> given id``, and
        each given entity's mentions summed over those rows (:func:`group_members`). One
        statement. Pass the first as ``members=`` to the entity reads below to resolve a set once
        for several of them."""
        if not entity_ids:
            return {}, {}
        return group_members(entity_ids, self.entity_member_rows(entity_ids))

    def entity_member_rows(self, entity_ids: Sequence[int]) -> dict[int, MemberRows]:
        """What :meth:`entity_members` is computed from, by given entity: read once, it serves
        any set of these entities (:func:`group_members`). One statement per 400 ids."""
        if not entity_ids:
            return {}
        with self.graph.reading("resolving entities") as conn:
            return member_rows(conn, entity_ids)

    def _members(self, entity_ids: Sequence[int], members: Mapping[int, int] | None) -> dict[int, int]:
        if members is not None:
            return restrict(members, entity_ids)
        return group_members(entity_ids, self.entity_member_rows(entity_ids))[0]

    def chunks_for_entities(
        self,
        namespace: str,
        weights: dict[int, float],
        *,
        limit: int,
        salient: bool = False,
        since: datetime | None = None,
        until: datetime | None = None,
        members: Mapping[int, int] | None = None,
        where: MetadataFilter | None = None,
    ) -> list[tuple[str, float]]:
        """Chunks mentioning the weighted (canonical) entities, ``(chunk_id, summed weight)``,
        best first. With ``salient``, only mentions in a chunk's first sentence count: the
        chunks that are *about* the entity rather than passing mentions. ``members``: the first
        result of :meth:`entity_members`, covering the weighted entities. ``where``: of the
        documents it holds for only."""
        if not weights:
            return []
        scores: dict[str, float] = defaultdict(float)
        with self.graph.reading("finding chunks of entities") as conn:
            rows = self._members(list(weights), members)
            query = _entity_chunks_query(salient, since is not None, until is not None)
            filtered: dict[str, Any] = {}
            if where is not None:
                metadata, filtered = self.graph.dialect.metadata_match(where)
                if not (since or until):  # else the time filter joined the documents already
                    query = query.join(Document, Document.id == Chunk.document_id)
                query = query.where(text(metadata))
            for batch in batches(list(rows)):
                params = {"ns": namespace, "ids": batch, "since": since, "until": until, **filtered}
                for r in conn.execute(query, params).all():
                    scores[r.chunk_id] += weights[rows[r.entity_id]] * float(r.n)
        return sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:limit]

    def neighbours(
        self, namespace: str, entity_ids: Sequence[int], *, fanout: int, members: Mapping[int, int] | None = None
    ) -> list[Neighbour]:
        """Relations touching the (canonical) ``entity_ids``: at most ``fanout`` per entity,
        strongest first, endpoints reported as canonical ids."""
        if not entity_ids:
            return []
        strength = Relation.count * Relation.confidence
        found: list[tuple[int, int, int, str, float]] = []
        with self.graph.reading("expanding the graph") as conn:
            rows = self._members(entity_ids, members)
            by_canonical: dict[int, list[int]] = defaultdict(list)
            for member, canonical in rows.items():
                by_canonical[canonical].append(member)
            others: set[int] = set()
            for canonical, ids in by_canonical.items():
                for r in conn.execute(
                    select(Relation.id, Relation.source_id, Relation.target_id, Relation.predicate, strength.label("w"))
                    .where(Relation.namespace == namespace, Relation.source_id.in_(ids) | Relation.target_id.in_(ids))
                    .order_by(strength.desc(), Relation.id)
                    .limit(fanout)
                ):
                    other = r.target_id if r.source_id in ids else r.source_id
                    others.add(other)
                    found.append((r.id, canonical, other, r.predicate, float(r.w)))
            canon = dict(conn.execute(select(Entity.id, CANONICAL_ID).where(Entity.id.in_(list(others)))).all())
        return [
            Neighbour(rid, entity, canon.get(other, other), predicate, w) for rid, entity, other, predicate, w in found
        ]

    def relations_among(
        self, namespace: str, entity_ids: Sequence[int], *, members: Mapping[int, int] | None = None
    ) -> list[Edge]:
        """Relations whose two ends are both among the (canonical) ``entity_ids``."""
        if len(entity_ids) < 2:
            return []
        with self.graph.reading("reading relations among entities") as conn:
            rows = self._members(entity_ids, members)
            return [
                Edge(r.id, rows[r.source_id], rows[r.target_id], float(r.w))
                for r in conn.execute(_RELATIONS_AMONG, {"ns": namespace, "ids": list(rows)})
                if rows[r.source_id] != rows[r.target_id]
            ]

    def evidence_chunks(
        self,
        relation_ids: Sequence[int],
        *,
        limit: int,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[tuple[str, int]]:
        """``(chunk_id, relation_id)`` pairs of the evidence for these relations."""
        if not relation_ids:
            return []
        query = _evidence_query(since is not None, until is not None)
        params = {"ids": list(dict.fromkeys(relation_ids)), "limit": limit, "since": since, "until": until}
        with self.graph.reading("reading relation evidence") as conn:
            return [(r.chunk_id, r.relation_id) for r in conn.execute(query, params).all()]

    def chunk_mentions(self, chunk_ids: Sequence[str], *, labels: Iterable[str]) -> dict[str, list[tuple[int, bool]]]:
        """``chunk_id -> [(canonical entity id, in first sentence)]`` for these chunks, of the
        entities with one of ``labels`` (one query)."""
        out: dict[str, list[tuple[int, bool]]] = defaultdict(list)
        if not chunk_ids:
            return out
        params = {"ids": list(chunk_ids), "labels": sorted(labels)}
        with self.graph.reading("reading chunk mentions") as conn:
            for r in conn.execute(_CHUNK_MENTIONS, params).all():
                out[r.chunk_id].append((int(r.eid), bool(r.first)))
        return out

    def chunks_naming(
        self, chunk_ids: Sequence[str], labels: Iterable[str], *, besides: Iterable[int] = ()
    ) -> set[str]:
        """Those of ``chunk_ids`` that name an entity with one of ``labels``, other than the
        entities ``besides`` (canonical ids)."""
        params = {"labels": sorted(labels), "besides": sorted(besides)}
        with self.graph.reading("reading chunk mentions") as conn:
            return {
                cid
                for batch in batches(list(dict.fromkeys(chunk_ids)))
                for (cid,) in conn.execute(_NAMING, {"ids": batch} | params)
            }

    def chunks_matching(self, chunk_ids: Sequence[str], where: MetadataFilter) -> set[str]:
        """Those of ``chunk_ids`` whose document ``where`` holds for (one statement per batch)."""
        metadata, params = self.graph.dialect.metadata_match(where)
        query = (
            select(Chunk.id).join(Document, Document.id == Chunk.document_id).where(Chunk.id.in_(IDS), text(metadata))
        )
        with self.graph.reading("filtering by metadata") as conn:
            return {
                cid
                for batch in batches(list(dict.fromkeys(chunk_ids)))
                for (cid,) in conn.execute(query, {"ids": batch} | params)
            }

    def dated_chunks(self, chunk_ids: Sequence[str]) -> set[str]:
        """Those of ``chunk_ids`` that mention a DATE."""
        return self.chunks_naming(chunk_ids, [DATE])

    def turns_after(
        self,
        namespace: str,
        seeds: Sequence[ChunkRow],
        *,
        span: int,
        gap: timedelta,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[list[str]]:
        """For each of ``seeds``, the first chunks of the next ``span`` turns of a conversation
        in ``namespace``: memories whose metadata names a speaker, observed after the seed and at
        most ``gap`` later, or observed at the same time and written after it (a session stamped
        with one time), inside ``since``/``until``. One statement."""
        if not seeds:
            return []
        params: dict[str, Any] = {"ns": namespace}
        params |= {"since": since} if since is not None else {}
        params |= {"until": until} if until is not None else {}
        for i, seed in enumerate(seeds):
            assert seed.observed_at is not None  # a turn has a time
            params[f"t{i}"], params[f"u{i}"] = seed.observed_at, seed.observed_at + gap
        statement = _turns_after(len(seeds), since is not None, until is not None)
        rows, seen = [], set()
        with self.graph.reading("reading conversation turns") as conn:
            for r in conn.execute(statement, params):
                if r.id not in seen and r.observed_at is not None and speaker_of(r.meta or {}):
                    seen.add(r.id)
                    rows.append((r.observed_at, r.created_at, r.id))
        return [
            [
                cid
                for at, written, cid in rows
                if seed.observed_at < at <= seed.observed_at + gap  # type: ignore[operator]
                or (at == seed.observed_at and seed.created_at is not None and written > seed.created_at)
            ][:span]
            for seed in seeds
        ]


def _same_name(a: str, b: str) -> bool:
    """Each word of the shorter key is a prefix of a word of the longer, in order."""
    short, long = sorted((a.split(), b.split()), key=len)
    words = iter(long)
    return bool(short) and all(any(w.startswith(s) for w in words) for s in short)


def _time_filtered(query: Rows, since: bool, until: bool) -> Rows:
    """Keep rows of ``query`` (which joins ``chunks``) whose document was observed in
    ``[:since, :until)``; each bound only where asked for."""
    if not (since or until):
        return query
    query = query.join(Document, Document.id == Chunk.document_id)
    if since:
        query = query.where(Document.observed_at >= bindparam("since"))
    if until:
        query = query.where(Document.observed_at < bindparam("until"))
    return query


@cache
def _entity_chunks_query(salient: bool, since: bool, until: bool) -> Rows:
    """``(chunk_id, entity_id, n)`` for the mentions of ``:ids`` in ``:ns``; a mention in the
    chunk's first sentence counts double (the chunk is about it); ``salient``: only those."""
    first_sentence = Mention.sent_start == Chunk.start
    query: Rows = (
        select(Mention.chunk_id, Mention.entity_id, func.sum(case((first_sentence, 2.0), else_=1.0)).label("n"))
        .join(Chunk, Chunk.id == Mention.chunk_id)
        .where(Mention.namespace == bindparam("ns"), Mention.entity_id.in_(IDS))
        .group_by(Mention.chunk_id, Mention.entity_id)
    )
    return _time_filtered(query.where(first_sentence) if salient else query, since, until)


@cache
def _evidence_query(since: bool, until: bool) -> Rows:
    """``(chunk_id, relation_id)`` of the evidence for the relations ``:ids``, strongest first."""
    query: Rows = (
        select(RelationEvidence.chunk_id, RelationEvidence.relation_id)
        .where(RelationEvidence.relation_id.in_(IDS))
        .order_by(RelationEvidence.confidence.desc(), RelationEvidence.id)
        .limit(bindparam("limit"))
    )
    if since or until:
        query = _time_filtered(query.join(Chunk, Chunk.id == RelationEvidence.chunk_id), since, until)
    return query


@cache
def _turns_after(windows: int, since: bool, until: bool) -> Rows:
    """The memories of a namespace observed inside any of ``windows`` time windows (``t{i}`` <=
    observed_at <= ``u{i}``), and after ``since`` / before ``until`` when those are bound, each as
    its first chunk, in time order and then in the order written; a memory inside two windows
    comes twice. One index range scan of ``(namespace, observed_at)`` per window: as one OR of
    the windows, SQLite read every memory of the namespace. Built once per shape."""

    def window(i: int) -> Rows:
        query = (
            select(Chunk.id, Document.observed_at, Document.created_at, Document.meta.label("meta"))
            .join(Chunk, Chunk.document_id == Document.id)
            .where(
                Document.namespace == bindparam("ns"),
                Document.observed_at >= bindparam(f"t{i}"),
                Document.observed_at <= bindparam(f"u{i}"),
                Document.deleted_at.is_(None),
                Chunk.ordinal == 0,
            )
        )
        if since:
            query = query.where(Document.observed_at >= bindparam("since"))
        if until:
            query = query.where(Document.observed_at < bindparam("until"))
        return query

    turns = union_all(*(window(i) for i in range(windows))).subquery()
    return select(turns).order_by(turns.c.observed_at, turns.c.created_at, turns.c.id)
