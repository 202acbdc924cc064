"""memory_graph: entity-aware knowledge-graph memory for LLM applications.

>>> from memory_graph import MemoryManager, Settings
"""

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
from memory_graph.config import Settings
from memory_graph.errors import (
    ConfigError,
    DocumentNotFoundError,
    EntityNotFoundError,
    ExtractionError,
    GraphStoreError,
    InputError,
    MemoryGraphError,
    NotFoundError,
    SchemaOutOfDateError,
    StoreError,
    VectorStoreError,
)
from memory_graph.extraction import Extractor, load_pipeline
from memory_graph.graph_store import GraphStore
from memory_graph.graph_view import draw_graph, graph_html, label_colors, write_graph_html
from memory_graph.manager import MemoryManager
from memory_graph.records import (
    ConsistencyReport,
    EntityRef,
    EntityView,
    MemoryHit,
    MemoryRecord,
    Mention,
    RelationRef,
    Stats,
)
from memory_graph.retrieval import HitExplanation, SearchConfig
from memory_graph.vector_store import VectorStore

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "ConsistencyReport",
    "DocumentNotFoundError",
    "EntityNotFoundError",
    "EntityRef",
    "EntityView",
    "ExtractionError",
    "Extractor",
    "GraphStore",
    "GraphStoreError",
    "HitExplanation",
    "InputError",
    "MemoryGraphError",
    "MemoryHit",
    "MemoryManager",
    "MemoryRecord",
    "Mention",
    "NotFoundError",
    "RelationRef",
    "SchemaOutOfDateError",
    "SearchConfig",
    "Settings",
    "Stats",
    "StoreError",
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
