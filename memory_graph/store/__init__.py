"""The relational store: documents, chunks and the entity graph, on SQLite or PostgreSQL.

- :mod:`~memory_graph.store.engine`: the engine, the dialect differences, the error mapping;
- :mod:`~memory_graph.store.writes`: extractions to rows (pure), then the upserts and deletes;
- :mod:`~memory_graph.store.reads`: reads that writes, the manager and search share;
- :mod:`~memory_graph.store.merges`: entity merges (aliases), recorded and undoable;
- :mod:`~memory_graph.store.maintenance`: problems, repair, counts, whole-table reads;
- :mod:`~memory_graph.store.rows`: the typed rows all of these return;
- :class:`GraphStore` composes them over one engine.
"""

from memory_graph.store.engine import create_store_engine
from memory_graph.store.graph_store import GraphStore
from memory_graph.store.rows import ChunkRow, DocumentRow, EntityDetails, EntityRow
from memory_graph.store.writes import ChunkWrite, DocumentWrite, WriteResult

__all__ = [
    "ChunkRow",
    "ChunkWrite",
    "DocumentRow",
    "DocumentWrite",
    "EntityDetails",
    "EntityRow",
    "GraphStore",
    "WriteResult",
    "create_store_engine",
]
