"""LangChain retriever over a MemoryManager or a remote one (:class:`memory_graph.client.MemoryGraphClient`)
(``pip install 'memory-graph[langchain]'``).

Each hit becomes a ``Document`` whose ``page_content`` is the chunk text and whose metadata holds
the graph context: entities, relations with evidence, the signals that found it, and the ids.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol, runtime_checkable

try:
    from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("MemoryGraphRetriever needs LangChain: pip install 'memory-graph[langchain]'") from exc
from pydantic import ConfigDict

from memory_graph.records import MemoryHit


@runtime_checkable
class Searchable(Protocol):
    """What the retriever needs: :meth:`MemoryManager.search`'s signature (a MemoryManager or a
    MemoryGraphClient)."""

    def search(self, query: str, *, namespace: str | None = None, k: int = 5) -> list[MemoryHit]: ...


def hit_to_document(hit: MemoryHit) -> Document:
    """A LangChain ``Document`` for a hit, graph context in its metadata (JSON-serialisable)."""
    data = hit.to_dict()
    metadata: dict[str, Any] = {
        "chunk_id": hit.chunk_id,
        "document_id": hit.document_id,
        "external_id": hit.external_id,
        "namespace": hit.namespace,
        "score": hit.score,
        "reasons": hit.reasons,
        "observed_at": data["observed_at"],
        "entities": data["entities"],
        "relations": data["relations"],
        "memory_metadata": data["metadata"],
    }
    return Document(page_content=hit.text, metadata=metadata, id=hit.chunk_id)


class MemoryGraphRetriever(BaseRetriever):
    """Retrieve memories with their graph context.

    Example:
        >>> retriever = MemoryGraphRetriever(manager=mm, namespace="user-42", k=5)  # doctest: +SKIP
        >>> chain = retriever | (lambda docs: "\\n".join(d.page_content for d in docs))  # doctest: +SKIP
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    manager: Searchable
    namespace: str | None = None
    k: int = 5

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        """``k`` (``retriever.invoke(query, k=1)``) overrides the retriever's own for this call."""
        hits = self.manager.search(query, namespace=self.namespace, k=self.k if k is None else k)
        return [hit_to_document(h) for h in hits]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        # The stores (and the sync client) block; keep the event loop free while they work.
        hits = await asyncio.to_thread(
            self.manager.search, query, namespace=self.namespace, k=self.k if k is None else k
        )
        return [hit_to_document(h) for h in hits]
