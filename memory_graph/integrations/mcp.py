"""An MCP server (``memory-graph mcp``) with memory tools for agents, on the official MCP Python
SDK (``pip install 'memory-graph[mcp]'``).

Tools: ``add_memory``, ``search_memories``, ``get_context`` and ``get_entity``, over an in-process
:class:`~memory_graph.MemoryManager` or a running server (:class:`~memory_graph.client.MemoryGraphClient`).
Results are the library's result types as JSON (same field names). The tools run in a worker
thread: the stores and the models block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread

from memory_graph.errors import MemoryGraphError

try:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("the MCP server needs the MCP SDK: pip install 'memory-graph[mcp]'") from exc

INSTRUCTIONS = (
    "Long-term memory with a knowledge graph. Store facts worth remembering with add_memory; "
    "before answering, call get_context (prompt-ready text) or search_memories (hits with their "
    "entities and relations); get_entity shows everything known about a person, place or thing."
)


T = TypeVar("T")


async def in_thread(func: Callable[[], T]) -> T:
    """``func()`` in a worker thread; the library's errors reach the agent as their one line."""
    try:
        return await anyio.to_thread.run_sync(func)
    except MemoryGraphError as exc:
        raise ToolError(" ".join(str(exc).split()) or exc.__class__.__name__) from exc


def create_mcp_server(memory: Any, *, namespace: str | None = None) -> MCPServer:
    """An MCP server whose tools read and write ``memory`` (a MemoryManager or a MemoryGraphClient).

    Args:
        memory: the memory behind the tools.
        namespace: used when a tool call names none (else the memory's default).
    """
    server: MCPServer = MCPServer("memory-graph", instructions=INSTRUCTIONS)

    def ns(given: str | None) -> str | None:
        return given or namespace

    @server.tool()
    async def add_memory(
        text: str,
        namespace: str | None = None,
        metadata: dict[str, Any] | None = None,
        observed_at: str | None = None,
        external_id: str | None = None,
    ) -> dict[str, Any]:
        """Store a memory (a fact, a conversation turn). metadata.speaker makes "I"/"my" refer to
        that person; observed_at (ISO 8601) dates it; the same external_id again replaces it."""
        record = await in_thread(
            lambda: memory.add(
                text, namespace=ns(namespace), metadata=metadata, observed_at=observed_at, external_id=external_id
            )
        )
        return dict(record.to_dict())

    @server.tool()
    async def search_memories(
        query: str,
        namespace: str | None = None,
        k: int = 5,
        since: str | None = None,
        until: str | None = None,
    ) -> list[dict[str, Any]]:
        """The k memories most relevant to the query, each with its entities and relations;
        since/until (ISO 8601) keep memories observed in that window."""
        hits = await in_thread(lambda: memory.search(query, namespace=ns(namespace), k=k, since=since, until=until))
        return [dict(h.to_dict()) for h in hits]

    @server.tool()
    async def get_context(query: str, namespace: str | None = None, max_tokens: int = 800) -> str:
        """Prompt-ready text about the query: the relevant memories and their facts, within max_tokens."""
        text: str = await in_thread(lambda: memory.context(query, namespace=ns(namespace), max_tokens=max_tokens))
        return text

    @server.tool()
    async def get_entity(name: str, namespace: str | None = None) -> dict[str, Any]:
        """Everything known about an entity (by name or alias): its relations, current values
        first, and where it is mentioned."""
        view = await in_thread(lambda: memory.entity(name, namespace=ns(namespace)))
        return dict(view.to_dict())

    return server
