"""The graph for analysis: networkx graphs, pandas DataFrames, GraphML/JSON export.

What an analyst's notebook needs, re-exported from :mod:`memory_graph`:

- :func:`open_memory`: the store the settings name, or a fresh temporary one holding examples;
- :func:`to_networkx`, :func:`neighbourhood`: the entity graph (or one entity's k-hop part of it);
- :func:`entities_frame`, :func:`relations_frame`, :func:`mentions_frame`, :func:`mention_timeline`,
  :func:`duplicate_candidates`, :func:`explanations_frame`: pandas DataFrames;
- :func:`explanation_graph`: the graph path that brought a search hit;
- :func:`export_graph`: GraphML or node-link JSON (``memory-graph export``).

Pictures of these graphs are drawn by :mod:`memory_graph.graph_view`. networkx is a core
dependency; pandas comes with the ``notebooks`` extra.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import weakref
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import networkx as nx

from memory_graph.config import Settings
from memory_graph.errors import ConfigError, EntityNotFoundError, InputError
from memory_graph.files import read_memory_files
from memory_graph.manager import MemoryManager
from memory_graph.records import EntityRef
from memory_graph.retrieval import signal_shares
from memory_graph.retrieval.config import SIGNALS
from memory_graph.vocabulary import COOCCURRENCE, normalize_key

if TYPE_CHECKING:
    import pandas as pd

    from memory_graph.retrieval import HitExplanation, SearchConfig

#: The entity graph of a namespace: nodes are entity ids, edges relations keyed by relation id.
EntityGraph: TypeAlias = "nx.MultiDiGraph[int]"

#: Settings fields that name a store; with none of them set, :func:`open_memory` makes a temporary one.
_STORE_FIELDS = frozenset({"data_dir", "database_url", "chroma_path", "chroma_host"})

_SCORE_PARTS = (*SIGNALS, "turn", "answer", "state")  # the signals' shares, then HitExplanation.gains
_DUPLICATE_REASONS = ("same_key", "shared_alias", "short_name")


def open_memory(
    settings: Settings | None = None,
    *,
    examples: Iterable[str | Path] = (),
    namespace: str | None = None,
) -> MemoryManager:
    """A :class:`MemoryManager` to explore: the store the settings name, or a fresh temporary one.

    The settings name a store when ``data_dir``, ``database_url``, ``chroma_path`` or
    ``chroma_host`` is set, in code or through ``MEMORY_GRAPH_*`` variables (for example
    ``MEMORY_GRAPH_DATA_DIR``). Otherwise the memory lives in a new temporary directory that is
    removed when the manager is garbage-collected or the process exits. When ``namespace`` holds
    no memories yet, the files in ``examples`` are ingested into it first.

    Args:
        settings: where and how to store; ``Settings()`` when omitted.
        examples: text, markdown or JSONL files, or directories of them (like ``memory-graph ingest``).
        namespace: the namespace to explore; it becomes the manager's default namespace.

    Returns:
        An open manager; close it (or use it in a ``with`` block) when done.

    Raises:
        InputError: an example file is missing or malformed.
        ConfigError: the store cannot be opened.

    Example:
        >>> mm = open_memory(examples=["examples"], namespace="demo")  # doctest: +SKIP
        >>> mm.stats("demo").documents  # doctest: +SKIP
        26
    """
    settings = settings if settings is not None else Settings()
    update: dict[str, Any] = {}
    temporary: str | None = None
    if not _STORE_FIELDS & settings.model_fields_set:
        temporary = tempfile.mkdtemp(prefix="memory-graph-")
        update["data_dir"] = Path(temporary)
    if namespace is not None:
        update["namespace"] = namespace
    if update:
        settings = settings.model_copy(update=update)
    try:
        mm = MemoryManager(settings)
    except BaseException:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
        raise
    if temporary is not None:
        weakref.finalize(mm, shutil.rmtree, temporary, ignore_errors=True)
    try:
        paths = [Path(p) for p in examples]
        if paths and mm.stats(settings.namespace).documents == 0:
            mm.add_many(read_memory_files(paths), namespace=settings.namespace)
    except BaseException:
        mm.close()
        raise
    return mm


# -- graphs --------------------------------------------------------------------------------------


def to_networkx(mm: MemoryManager, *, namespace: str | None = None, cooccurrence: bool = False) -> EntityGraph:
    """The entity graph of one namespace (or of all, with ``namespace=None``).

    Nodes are entity ids with ``name``, ``label``, ``key``, ``namespace``, ``mentions`` (mention
    count), ``first_seen`` and ``last_seen`` (ISO 8601, ``""`` when unknown). Edges are relations,
    keyed by relation id, with ``predicate``, ``weight`` (evidence count), ``confidence``,
    ``evidence`` (the first supporting sentence), ``surface`` (the relation as the sentence words
    it, "was born in"; ``""`` for evidence stored before surface forms were kept), ``first_seen``
    and ``last_seen``, and for a
    state's value (:mod:`memory_graph.facts`) its ``state``, ``status`` (current, former, planned,
    cancelled) and period ``valid_from`` / ``valid_until`` now (``""`` where none). Every attribute
    is a string or a number, so the graph writes to GraphML as it is.

    Args:
        mm: the memory to read.
        namespace: the namespace; ``None`` reads every namespace.
        cooccurrence: also the "mentioned with" edges between names of one sentence with no
            stated relation (a retrieval signal, not a fact).

    Returns:
        A directed multigraph (two entities can be related by several predicates).
    """
    graph: EntityGraph = nx.MultiDiGraph(namespace=namespace or "")
    for e in mm.graph.entity_rows(namespace):
        graph.add_node(
            e.id,
            name=e.name,
            label=e.label,
            key=e.key,
            namespace=e.namespace,
            mentions=e.mention_count,
            first_seen=_iso(e.first_seen),
            last_seen=_iso(e.last_seen),
        )
    for r in mm.graph.relation_rows(namespace):
        if r.predicate == COOCCURRENCE and not cooccurrence:
            continue
        graph.add_edge(
            r.source_id,
            r.target_id,
            key=r.id,
            predicate=r.predicate,
            surface=r.surface or "",
            weight=r.count,
            confidence=r.confidence,
            evidence=r.evidence or "",
            first_seen=_iso(r.first_seen),
            last_seen=_iso(r.last_seen),
            state=r.state or "",
            status=r.status or "",
            valid_from=_iso(r.valid_from),
            valid_until=_iso(r.valid_until),
        )
    return graph


def neighbourhood(
    mm: MemoryManager,
    entity: str | int,
    *,
    namespace: str | None = None,
    hops: int = 2,
    fanout: int | None = None,
    graph: EntityGraph | None = None,
) -> EntityGraph:
    """The entities within ``hops`` relations of one entity, following relations both ways.

    The result is the subgraph of :func:`to_networkx` induced by those entities (relations among
    them included). Each node gets ``hop``, its distance from the centre; the graph attributes
    ``center`` and ``hops`` record the centre's id and the bound.

    Args:
        mm: the memory to read.
        entity: a name or alias (resolved like :meth:`MemoryManager.entity`) or an entity id.
        namespace: the entity's namespace; the manager's default namespace when omitted.
        hops: the largest distance kept (0 keeps the entity alone).
        fanout: expand at most this many new neighbours per entity, strongest relations first
            (summed weight); ``None`` keeps all.
        graph: the namespace's :func:`to_networkx` graph, to reuse instead of reading it again.

    Returns:
        A new directed multigraph.

    Raises:
        EntityNotFoundError: no entity of the namespace has that name, alias or id.
        InputError: ``hops`` is negative or ``fanout`` is not positive.
    """
    if not isinstance(hops, int) or hops < 0:
        raise InputError(f"hops must be a non-negative integer, not {hops!r}")
    if fanout is not None and (not isinstance(fanout, int) or fanout < 1):
        raise InputError(f"fanout must be a positive integer or None, not {fanout!r}")
    ns = _ns(mm, namespace)
    full = graph if graph is not None else to_networkx(mm, namespace=ns)
    center = _resolve_entity(mm, entity, ns, full).id
    if center not in full:
        raise EntityNotFoundError(entity, ns)
    strength: dict[int, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for u, v, weight in full.edges(data="weight", default=1):
        if u != v:
            strength[u][v] += float(weight)
            strength[v][u] += float(weight)
    hop = {center: 0}
    frontier = [center]
    for distance in range(1, hops + 1):
        next_frontier: list[int] = []
        for node in frontier:
            new = sorted((n for n in strength[node] if n not in hop), key=lambda n: (-strength[node][n], n))
            for n in new[:fanout] if fanout is not None else new:
                hop[n] = distance
                next_frontier.append(n)
        frontier = next_frontier
        if not frontier:
            break
    sub: EntityGraph = nx.MultiDiGraph(full.subgraph(hop))
    sub.graph.update(namespace=ns, center=center, hops=hops)
    nx.set_node_attributes(sub, hop, "hop")
    return sub


def explanation_graph(explanations: HitExplanation | Sequence[HitExplanation]) -> EntityGraph:
    """The graph path that brought search hits: query entities → relations whose evidence a hit holds.

    Nodes are the query's linked entities (``linked=True``, ``hop=0``) and the ends of the hits'
    graph relations; edges are those relations (``predicate``, ``evidence``, ``confidence``,
    ``weight``, and ``hits``: the 1-based positions of the hits that hold their evidence).

    Args:
        explanations: one or more results of :meth:`MemoryManager.explain`.

    Returns:
        A directed multigraph, empty when no hit was found through the graph.
    """
    items = [explanations] if not isinstance(explanations, Sequence) else list(explanations)
    graph: EntityGraph = nx.MultiDiGraph()
    linked = {e.id for x in items for e in x.linked_entities}
    for x in items:
        for e in x.linked_entities:
            graph.add_node(e.id, name=e.name, label=e.label, mentions=1, linked=True, hop=0)
    hits_of: dict[int, list[int]] = defaultdict(list)
    relations = {}
    for position, x in enumerate(items, start=1):
        for r in x.graph_relations:
            hits_of[r.id].append(position)
            relations[r.id] = r
    for rid, r in relations.items():
        for end in (r.source, r.target):
            if end.id not in graph:
                graph.add_node(end.id, name=end.name, label=end.label, mentions=1, linked=False, hop=1)
        graph.add_edge(
            r.source.id,
            r.target.id,
            key=rid,
            predicate=r.predicate,
            evidence=r.evidence,
            confidence=r.confidence,
            weight=len(hits_of[rid]),
            hits=",".join(map(str, hits_of[rid])),
        )
    graph.graph["linked"] = sorted(linked)
    return graph


def export_graph(
    mm: MemoryManager, path: str | Path, *, fmt: str = "graphml", namespace: str | None = None
) -> dict[str, int]:
    """Write the :func:`to_networkx` graph to ``path`` as GraphML or node-link JSON.

    JSON is networkx's node-link format with ``edges`` as the edge key
    (``nx.node_link_graph(data, edges="edges")`` reads it back).

    Args:
        mm: the memory to read.
        path: the file to write.
        fmt: ``"graphml"`` or ``"json"``.
        namespace: the namespace; ``None`` exports every namespace.

    Returns:
        ``{"nodes": ..., "edges": ...}`` counts.

    Raises:
        ConfigError: unknown format, or the file cannot be written.
    """
    if fmt not in ("graphml", "json"):
        raise ConfigError(f"unknown export format {fmt!r}; use graphml or json")
    path = Path(path)
    graph = to_networkx(mm, namespace=namespace)
    try:
        if fmt == "graphml":
            nx.write_graphml(graph, path)
        else:
            data = nx.node_link_data(graph, edges="edges")
            path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write ({exc.strerror})") from exc
    return {"nodes": graph.number_of_nodes(), "edges": graph.number_of_edges()}


# -- frames --------------------------------------------------------------------------------------


def entities_frame(mm: MemoryManager, *, namespace: str | None = None) -> pd.DataFrame:
    """One row per entity: id, namespace, label, key, name, attributes, mention_count, first/last seen.

    Args:
        mm: the memory to read.
        namespace: the namespace; ``None`` reads every namespace.
    """
    import pandas as pd

    rows = [dataclasses.asdict(e) for e in mm.graph.entity_rows(namespace)]
    columns = ["id", "namespace", "label", "key", "name", "attributes", "mention_count", "first_seen", "last_seen"]
    return _with_times(pd.DataFrame(rows, columns=columns), "first_seen", "last_seen")


def relations_frame(mm: MemoryManager, *, namespace: str | None = None, cooccurrence: bool = False) -> pd.DataFrame:
    """One row per relation, with source and target names and labels, the first evidence
    sentence and the relation as it words it (``surface``, ``source_phrase``, ``target_phrase``:
    "the first Prime Minister of Australia"; empty for evidence stored before they were kept);
    a state's value with its status now and its period.

    Args:
        mm: the memory to read.
        namespace: the namespace; ``None`` reads every namespace.
        cooccurrence: also the "mentioned with" rows: names in one sentence with no stated
            relation between them (a retrieval signal, not a fact).
    """
    import pandas as pd

    names = {e.id: (e.name, e.label) for e in mm.graph.entity_rows(namespace)}
    rows = [
        {
            **dataclasses.asdict(r),
            "source": names.get(r.source_id, ("?", "?"))[0],
            "source_label": names.get(r.source_id, ("?", "?"))[1],
            "target": names.get(r.target_id, ("?", "?"))[0],
            "target_label": names.get(r.target_id, ("?", "?"))[1],
        }
        for r in mm.graph.relation_rows(namespace)
        if cooccurrence or r.predicate != COOCCURRENCE
    ]
    columns = ["id", "namespace", "source_id", "source", "source_label", "predicate", "target_id", "target",
               "target_label", "surface", "source_phrase", "target_phrase", "count", "confidence", "first_seen",
               "last_seen", "evidence", "state", "status", "valid_from", "valid_until"]  # fmt: skip
    frame = pd.DataFrame(rows, columns=columns)
    return _with_times(frame, "first_seen", "last_seen", "valid_from", "valid_until")


def mentions_frame(mm: MemoryManager, *, namespace: str | None = None) -> pd.DataFrame:
    """One row per mention: entity, chunk, document, surface text, offsets, observation time.

    Args:
        mm: the memory to read.
        namespace: the namespace; ``None`` reads every namespace.
    """
    import pandas as pd

    rows = [dataclasses.asdict(m) for m in mm.graph.mention_rows(namespace)]
    columns = ["id", "namespace", "entity_id", "chunk_id", "document_id", "text", "start", "end", "observed_at"]
    return _with_times(pd.DataFrame(rows, columns=columns), "observed_at")


def mention_timeline(
    mm: MemoryManager, entity: str | int, *, namespace: str | None = None, limit: int = 10_000
) -> pd.DataFrame:
    """When and where one entity was mentioned, oldest first.

    Columns: ``observed_at`` (UTC), ``entity_id``, ``entity``, ``document_id``, ``chunk_id``,
    ``text`` (the surface form), ``start``, ``end`` (document offsets) and ``sentence``.

    Args:
        mm: the memory to read.
        entity: a name or alias (resolved like :meth:`MemoryManager.entity`) or an entity id.
        namespace: the entity's namespace; the manager's default namespace when omitted.
        limit: the most mentions returned.

    Raises:
        EntityNotFoundError: no entity of the namespace has that name, alias or id.
    """
    import pandas as pd

    ns = _ns(mm, namespace)
    found = _resolve_entity(mm, entity, ns)
    details = mm.graph.entity_details(found.id, max_relations=0, max_mentions=limit)
    rows = [
        {
            "observed_at": m.observed_at,
            "entity_id": found.id,
            "entity": found.name,
            "document_id": m.document_id,
            "chunk_id": m.chunk_id,
            "text": m.text,
            "start": m.start,
            "end": m.end,
            "sentence": m.sentence.strip(),
        }
        for m in details.mentions
    ]
    columns = ["observed_at", "entity_id", "entity", "document_id", "chunk_id", "text", "start", "end", "sentence"]
    frame = _with_times(pd.DataFrame(rows, columns=columns), "observed_at")
    return frame.sort_values(["observed_at", "start"], kind="stable", ignore_index=True)


def duplicate_candidates(
    mm: MemoryManager, *, namespace: str | None = None, short_name_labels: Collection[str] = ("PERSON",)
) -> pd.DataFrame:
    """Pairs of entities that may be one thing stored twice.

    A pair is a candidate for one of these reasons (the first that applies is reported):

    - ``same_key``: the same normalised name under different labels ("Northwind Labs" as ORG and LOC);
    - ``shared_alias``: a surface form resolves to both (an alias of one is the name or an alias of
      the other);
    - ``short_name``: for ``short_name_labels``, a one-word name that is the first or last word of
      another name with the same label ("Tom" and "Tom Becker").

    Args:
        mm: the memory to read.
        namespace: the namespace; ``None`` checks every namespace (pairs never cross namespaces).
        short_name_labels: labels checked for short names; empty turns that check off.

    Returns:
        One row per pair, most mentioned first: ``namespace``, ``reason``, ``match`` (the shared
        normalised form), then ``id``, ``name``, ``label``, ``mentions`` of each entity with the
        suffixes ``_a`` (the lower id) and ``_b``.
    """
    import pandas as pd

    entities = {e.id: e for e in mm.graph.entity_rows(namespace)}
    forms: dict[tuple[str, str], set[int]] = defaultdict(set)  # (namespace, normalised form) -> entity ids
    for e in entities.values():
        forms[(e.namespace, e.key)].add(e.id)
    for a in mm.graph.alias_rows(namespace):
        if a.entity_id in entities:
            forms[(a.namespace, a.alias_key)].add(a.entity_id)
    found: dict[tuple[int, int], tuple[str, str]] = {}

    def note(a: int, b: int, reason: str, match: str) -> None:
        pair = (min(a, b), max(a, b))
        old = found.get(pair)
        if old is None or _DUPLICATE_REASONS.index(reason) < _DUPLICATE_REASONS.index(old[0]):
            found[pair] = (reason, match)

    for (_, form), ids in forms.items():
        ordered = sorted(ids)
        for i, first in enumerate(ordered):
            for second in ordered[i + 1 :]:
                same = entities[first].key == entities[second].key == form
                note(first, second, "same_key" if same else "shared_alias", form)
    labels = set(short_name_labels)
    by_word: dict[tuple[str, str, str], list[int]] = defaultdict(list)  # (namespace, label, edge word) -> long names
    singles = []
    for e in entities.values():
        if e.label not in labels:
            continue
        words = e.key.split()
        if len(words) == 1:
            singles.append(e)
        elif len(words) > 1:
            for word in {words[0], words[-1]}:
                by_word[(e.namespace, e.label, word)].append(e.id)
    for e in singles:
        for other in by_word.get((e.namespace, e.label, e.key), []):
            note(e.id, other, "short_name", e.key)

    rows = []
    for (first, second), (reason, match) in found.items():
        ea, eb = entities[first], entities[second]
        rows.append(
            {
                "namespace": ea.namespace,
                "reason": reason,
                "match": match,
                **{f"{field}_a": getattr(ea, src) for field, src in _PAIR_FIELDS},
                **{f"{field}_b": getattr(eb, src) for field, src in _PAIR_FIELDS},
            }
        )
    columns = ["namespace", "reason", "match"] + [f"{f}_{s}" for s in "ab" for f, _ in _PAIR_FIELDS]
    frame = pd.DataFrame(rows, columns=columns)
    if frame.empty:
        return frame
    frame["_order"] = frame["reason"].map(_DUPLICATE_REASONS.index)
    frame["_mentions"] = frame["mentions_a"] + frame["mentions_b"]
    frame = frame.sort_values(["_order", "_mentions", "id_a", "id_b"], ascending=[True, False, True, True])
    return frame.drop(columns=["_order", "_mentions"]).reset_index(drop=True)


_PAIR_FIELDS = (("id", "id"), ("name", "name"), ("label", "label"), ("mentions", "mention_count"))


def explanations_frame(explanations: Sequence[HitExplanation], *, config: SearchConfig | None = None) -> pd.DataFrame:
    """One row per explained hit: its score, the signals that found it and its graph path.

    Columns: ``position`` (1 = best), ``chunk_id``, ``external_id``, ``score``, ``reasons``, the
    hit's rank under each signal (``vector``, ``keyword``, ``entity``, ``graph``; missing when
    that signal did not find it), ``graph_path`` ("source -predicate-> target" per relation, "; "
    between them) and ``text``. With ``config`` (the manager's ``search_config``), also
    ``score_<signal>``: what each signal added to the fused score, and ``score_turn``,
    ``score_answer`` and ``score_state``: what following a best hit's turn, naming what the
    question asks for and stating the value of a state it asks for added
    (:class:`~memory_graph.retrieval.HitExplanation`'s ``gains``). They sum to ``score``.

    Args:
        explanations: the result of :meth:`MemoryManager.explain`.
        config: the search configuration the hits were ranked with.
    """
    import pandas as pd

    rows = []
    for position, x in enumerate(explanations, start=1):
        row: dict[str, Any] = {
            "position": position,
            "chunk_id": x.hit.chunk_id,
            "external_id": x.hit.external_id,
            "score": x.hit.score,
            "reasons": ", ".join(x.hit.reasons),
            **{s: x.ranks.get(s) for s in SIGNALS},
            "graph_path": "; ".join(f"{r.source.name} -{r.predicate}-> {r.target.name}" for r in x.graph_relations),
            "text": x.hit.text,
        }
        if config is not None:
            shares = signal_shares(x.ranks, config) | x.gains
            for s in _SCORE_PARTS:
                row[f"score_{s}"] = shares.get(s, 0.0)
        rows.append(row)
    columns = ["position", "chunk_id", "external_id", "score", "reasons", *SIGNALS, "graph_path", "text"]
    if config is not None:
        columns += [f"score_{s}" for s in _SCORE_PARTS]
    frame = pd.DataFrame(rows, columns=columns)
    for s in SIGNALS:
        frame[s] = frame[s].astype("Int64")
    return frame


# -- helpers -------------------------------------------------------------------------------------


def _ns(mm: MemoryManager, namespace: str | None) -> str:
    return mm.settings.namespace if namespace is None else namespace


def _resolve_entity(
    mm: MemoryManager, entity: str | int, namespace: str, graph: EntityGraph | None = None
) -> EntityRef:
    """An entity given by name, alias or id."""
    if isinstance(entity, bool) or not isinstance(entity, (str, int)):
        raise InputError(f"entity must be a name or an id, not {type(entity).__name__}")
    if isinstance(entity, str):
        found = mm.graph.find_entities(namespace, [normalize_key(entity)]) if entity.strip() else []
        if not found:
            raise EntityNotFoundError(entity, namespace)
        return EntityRef(found[0].id, found[0].name, found[0].label)
    if graph is not None:
        if entity in graph and graph.nodes[entity].get("namespace") == namespace:
            return EntityRef(entity, graph.nodes[entity]["name"], graph.nodes[entity]["label"])
        raise EntityNotFoundError(entity, namespace)
    for row in mm.graph.entity_rows(namespace):
        if row.id == entity:
            return EntityRef(row.id, row.name, row.label)
    raise EntityNotFoundError(entity, namespace)


def _with_times(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    import pandas as pd

    for column in columns:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def _iso(value: Any) -> str:
    return value.isoformat() if value is not None else ""
