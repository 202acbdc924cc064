"""memory_graph: entity-aware knowledge-graph memory for LLM applications.

>>> from memory_graph import MemoryManager, Settings

The analysis helpers (networkx, pandas, matplotlib) load when first used, so importing the
package does not import them.
"""

import importlib as _importlib
import typing as _typing

from memory_graph.config import Settings
from memory_graph.errors import (
    ConfigError,
    DocumentNotFoundError,
    EntityNotFoundError,
    ExtractionError,
    GraphStoreError,
    InputError,
    MemoryGraphError,
    MemoryGraphWarning,
    NotFoundError,
    SchemaOutOfDateError,
    StoreError,
    StoreLockedError,
    VectorStoreError,
)
from memory_graph.extraction import Extractor, load_pipeline
from memory_graph.manager import MemoryManager
from memory_graph.records import (
    ConsistencyReport,
    EntityRef,
    EntityView,
    Forgotten,
    MemoryHit,
    MemoryRecord,
    Mention,
    Merge,
    RelationRef,
    Stats,
)
from memory_graph.retrieval import HitExplanation, SearchConfig
from memory_graph.store import GraphStore
from memory_graph.vector_store import VectorStore

if _typing.TYPE_CHECKING:
    from memory_graph.analysis import (
        duplicate_candidates,
        entities_frame,
        explanation_graph,
        explanations_frame,
        export_graph,
        mention_timeline,
        mentions_frame,
        neighbourhood,
        open_memory,
        relations_frame,
        to_networkx,
    )
    from memory_graph.graph_view import draw_graph, graph_html, label_colors, write_graph_html

__version__ = "0.1.0"

# Names whose modules import networkx (and, when called, pandas or matplotlib): loaded on first use.
_LAZY = {
    **dict.fromkeys(
        (
            "duplicate_candidates",
            "entities_frame",
            "explanation_graph",
            "explanations_frame",
            "export_graph",
            "mention_timeline",
            "mentions_frame",
            "neighbourhood",
            "open_memory",
            "relations_frame",
            "to_networkx",
        ),
        "memory_graph.analysis",
    ),
    **dict.fromkeys(("draw_graph", "graph_html", "label_colors", "write_graph_html"), "memory_graph.graph_view"),
}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'memory_graph' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ConfigError",
    "ConsistencyReport",
    "DocumentNotFoundError",
    "EntityNotFoundError",
    "EntityRef",
    "EntityView",
    "ExtractionError",
    "Extractor",
    "Forgotten",
    "GraphStore",
    "GraphStoreError",
    "HitExplanation",
    "InputError",
    "MemoryGraphError",
    "MemoryGraphWarning",
    "MemoryHit",
    "MemoryManager",
    "MemoryRecord",
    "Mention",
    "Merge",
    "NotFoundError",
    "RelationRef",
    "SchemaOutOfDateError",
    "SearchConfig",
    "Settings",
    "Stats",
    "StoreError",
    "StoreLockedError",
    "VectorStore",
    "VectorStoreError",
    "__version__",
    "draw_graph",
    "duplicate_candidates",
    "entities_frame",
    "explanation_graph",
    "explanations_frame",
    "export_graph",
    "graph_html",
    "label_colors",
    "load_pipeline",
    "mention_timeline",
    "mentions_frame",
    "neighbourhood",
    "open_memory",
    "relations_frame",
    "to_networkx",
    "write_graph_html",
]
