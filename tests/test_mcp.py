"""``memory-graph mcp`` through the MCP SDK's own client: the real command over stdio, its tools
on real stores and models."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

ROOT = Path(__file__).resolve().parents[1]


def params(data_dir: Path, *args: str, **env: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "memory_graph.cli", "--data-dir", str(data_dir), *args],
        env={"PYTHONPATH": str(ROOT), **{k: v for k, v in os.environ.items() if k in ("HF_HOME", "TMPDIR")}, **env},
        cwd=str(ROOT),
    )


async def call(client: Client, tool: str, arguments: dict) -> object:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    if result.structured_content is not None:
        content = result.structured_content
        return content.get("result", content) if isinstance(content, dict) and set(content) == {"result"} else content
    return result.content[0].text  # type: ignore[union-attr]


def test_mcp_tools_over_stdio(tmp_path: Path) -> None:
    async def run() -> None:
        async with Client(params(tmp_path / "data", "mcp", "--namespace", "agent"), read_timeout_seconds=300) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert tools == {"add_memory", "search_memories", "get_context", "get_entity"}
            record = await call(
                client, "add_memory", {"text": "I moved to Lyon to work for Danone.", "metadata": {"speaker": "Odile"}}
            )
            assert isinstance(record, dict) and record["namespace"] == "agent" and record["created"]
            hits = await call(client, "search_memories", {"query": "Where does Odile work?", "k": 3})
            assert isinstance(hits, list) and hits[0]["document_id"] == record["document_id"]
            assert any(r["target"]["name"] == "Danone" for r in hits[0]["relations"])
            context = await call(client, "get_context", {"query": "Where does Odile work?"})
            assert isinstance(context, str) and "Danone" in context
            entity = await call(client, "get_entity", {"name": "Odile"})
            assert isinstance(entity, dict) and entity["entity"]["name"] == "Odile"
            missing = await client.call_tool("get_entity", {"name": "Nobody Atall"})
            assert missing.is_error and "Nobody Atall" in json.dumps(missing.model_dump(mode="json"))
            empty = await client.call_tool("add_memory", {"text": "  "})
            assert empty.is_error
            assert (await call(client, "search_memories", {"query": "Lyon", "namespace": "other"})) == []

    anyio.run(run)


def test_mcp_tools_over_a_running_server(tmp_path: Path, server) -> None:
    async def run() -> None:
        env = {"MEMORY_GRAPH_URL": server.url, "MEMORY_GRAPH_API_KEY": "test-key-a"}
        async with Client(
            params(tmp_path / "unused", "mcp", "--namespace", "ns-a", **env), read_timeout_seconds=120
        ) as client:
            await call(client, "add_memory", {"text": "Paulo fixes boats in Porto."})
            hits = await call(client, "search_memories", {"query": "Who fixes boats?"})
            assert isinstance(hits, list) and hits and hits[0]["namespace"] == "ns-a"
            denied = await client.call_tool("search_memories", {"query": "boats", "namespace": "ns-b"})
            assert denied.is_error

    anyio.run(run)
    assert not (tmp_path / "unused").exists()


pytestmark = pytest.mark.timeout(600)


def test_mcp_tools_over_streamable_http(tmp_path: Path, server_process) -> None:
    running = server_process(tmp_path / "data", command="mcp", extra_args=["--transport", "streamable-http"])

    async def run() -> None:
        async with Client(f"{running.url}/mcp", read_timeout_seconds=120) as client:
            record = await call(client, "add_memory", {"text": "Rui grows olives near Evora.", "namespace": "http"})
            assert isinstance(record, dict) and record["namespace"] == "http"
            hits = await call(client, "search_memories", {"query": "Who grows olives?", "namespace": "http"})
            assert isinstance(hits, list) and hits[0]["document_id"] == record["document_id"]

    anyio.run(run)
