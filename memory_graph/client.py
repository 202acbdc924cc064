"""Clients of a memory-graph server (``memory-graph serve``) with :class:`~memory_graph.MemoryManager`'s
method names, arguments, result types and errors, so code moves between in-process and remote
memory unchanged (``pip install 'memory-graph[server]'`` for httpx).

:class:`MemoryGraphClient` is synchronous, :class:`AsyncMemoryGraphClient` the same methods as
coroutines. Both are built from a URL and an API key, or from the settings
(``MEMORY_GRAPH_URL``, ``MEMORY_GRAPH_API_KEY``, ``MEMORY_GRAPH_NAMESPACE``).

Example:
    >>> with MemoryGraphClient("http://127.0.0.1:8765", api_key=key) as mm:  # doctest: +SKIP
    ...     mm.add("Alice joined Acme in Berlin.", namespace="user-42")
    ...     hits = mm.search("Where does Alice work?", namespace="user-42", k=5)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from memory_graph.config import Settings
from memory_graph.errors import (
    AccessDeniedError,
    ConfigError,
    DocumentNotFoundError,
    EntityNotFoundError,
    InputError,
    NotFoundError,
    RemoteError,
    StoreError,
)
from memory_graph.records import ConsistencyReport, EntityView, Forgotten, MemoryHit, MemoryRecord, Stats
from memory_graph.retrieval import HitExplanation

T = TypeVar("T")
Progress = Callable[[int], None]
Time = datetime | date | str | None

_RECORD = TypeAdapter(MemoryRecord)
_RECORDS = TypeAdapter(list[MemoryRecord])
_HITS = TypeAdapter(list[MemoryHit])
_EXPLANATIONS = TypeAdapter(list[HitExplanation])
_ENTITY = TypeAdapter(EntityView)
_STATS = TypeAdapter(Stats)
_REPORT = TypeAdapter(ConsistencyReport)
_FORGOTTEN = TypeAdapter(Forgotten)


@dataclasses.dataclass
class Call(Generic[T]):
    """One request and how to read its answer (shared by the sync and async clients)."""

    method: str
    path: str
    parse: Callable[[Any], T]
    body: Any = None
    params: dict[str, str] | None = None
    not_found: Callable[[], NotFoundError] | None = None


def _time(value: Time) -> str | None:
    return value.isoformat() if isinstance(value, (datetime, date)) else value


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def _ns(namespace: str) -> str:
    return quote(namespace, safe="")


def _raise_for(response: httpx.Response, call: Call[Any]) -> None:
    if response.status_code < 400:
        return
    try:
        detail = str(response.json()["detail"])
    except (ValueError, KeyError, TypeError):
        detail = response.text.strip()[:200] or response.reason_phrase
    status = response.status_code
    if status in (401, 403):
        raise AccessDeniedError(detail, status)
    if status == 404 and call.not_found is not None:
        raise call.not_found()
    if status == 404:
        raise RemoteError(f"{call.method} {call.path}: {detail}", status)
    if status == 422:
        raise InputError(detail)
    if status == 503:
        raise StoreError(detail)
    raise RemoteError(f"server error {status}: {detail}", status)


class _Calls:
    """The requests behind each method; the clients only send them."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def ns(self, namespace: str | None) -> str:
        return _ns(self.namespace if namespace is None else namespace)

    def add(self, text: str, namespace: str | None, fields: dict[str, Any]) -> Call[MemoryRecord]:
        body = {"text": text, **{k: _jsonable(v) for k, v in fields.items() if v is not None}}
        return Call("POST", f"/v1/namespaces/{self.ns(namespace)}/memories", _RECORD.validate_python, body)

    def add_batch(self, rows: list[Mapping[str, Any]], namespace: str | None) -> Call[list[MemoryRecord]]:
        memories = []
        for position, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise InputError(f"row {position} must be a mapping with a 'text' key, not {type(row).__name__}")
            if "namespace" in row and row["namespace"] != (namespace or self.namespace):
                raise InputError(f"row {position} names another namespace; send it with namespace={row['namespace']!r}")
            memories.append({k: _jsonable(v) for k, v in row.items() if k != "namespace" and v is not None})
        path = f"/v1/namespaces/{self.ns(namespace)}/memories/batch"
        return Call("POST", path, _RECORDS.validate_python, {"memories": memories})

    def memory(self, method: str, memory_id: str, namespace: str | None, parse: Callable[[Any], T]) -> Call[T]:
        """``GET``/``DELETE`` of a memory as :meth:`MemoryManager.get` finds it: by document id in
        any namespace the key may touch, else by external id in the default namespace; given a
        ``namespace``, by either there only."""
        ns = self.namespace if namespace is None else namespace

        def not_found() -> NotFoundError:
            return DocumentNotFoundError(memory_id, ns)

        if not isinstance(memory_id, str) or not memory_id:
            raise not_found()
        if namespace is None:
            return Call(method, f"/v1/memories/{_ns(memory_id)}", parse, params={"namespace": ns}, not_found=not_found)
        return Call(method, f"/v1/namespaces/{_ns(ns)}/memories/{_ns(memory_id)}", parse, not_found=not_found)

    def forget(self, namespace: str) -> Call[Forgotten]:
        if not isinstance(namespace, str) or not namespace.strip():
            raise InputError(f"namespace {namespace!r} must be a non-empty string")
        return Call("DELETE", f"/v1/namespaces/{_ns(namespace)}", _FORGOTTEN.validate_python)

    def query(self, what: str, parse: Callable[[Any], T], query: str, namespace: str | None, **fields: Any) -> Call[T]:
        body = {"query": query, **{k: _time(v) if k in ("since", "until", "as_of") else v for k, v in fields.items()}}
        return Call("POST", f"/v1/namespaces/{self.ns(namespace)}/{what}", parse, body)

    def entity(self, name: str, namespace: str | None, as_of: Time) -> Call[EntityView]:
        ns = self.namespace if namespace is None else namespace
        when = _time(as_of)
        return Call(
            "GET",
            f"/v1/namespaces/{_ns(ns)}/entities/{_ns(name)}",
            _ENTITY.validate_python,
            params={"as_of": when} if when else None,
            not_found=lambda: EntityNotFoundError(name, ns),
        )

    def stats(self, namespace: str | None) -> Call[Stats]:
        path = "/v1/stats" if namespace is None else f"/v1/namespaces/{_ns(namespace)}/stats"
        return Call("GET", path, _STATS.validate_python)

    def verify(self, repair: bool) -> Call[ConsistencyReport]:
        return Call("POST", "/v1/verify", _REPORT.validate_python, {"repair": repair})


def _connection(
    url: str | None, api_key: str | None, namespace: str | None, settings: Settings | None
) -> tuple[str, dict[str, str], str]:
    settings = settings or Settings()
    base = url or settings.url
    if not base:
        raise ConfigError("no server URL: pass url= or set MEMORY_GRAPH_URL (http://127.0.0.1:8765)")
    key = api_key or settings.api_key
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return base.rstrip("/"), headers, settings.namespace if namespace is None else namespace


class MemoryGraphClient:
    """A remote :class:`~memory_graph.MemoryManager` (synchronous).

    Args:
        url: the server (``http://127.0.0.1:8765``); default ``Settings().url``.
        api_key: its API key; default ``Settings().api_key``.
        namespace: used when a method is given none; default ``Settings().namespace``.
        timeout: seconds per request.
        settings: where the defaults come from; ``Settings()`` when omitted.

    Raises (from every method, besides the manager's own errors):
        AccessDeniedError: the key is missing, unknown or not for the namespace.
        RemoteError: the server cannot be reached or failed.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        namespace: str | None = None,
        timeout: float = 60.0,
        settings: Settings | None = None,
    ) -> None:
        base, headers, ns = _connection(url, api_key, namespace, settings)
        self.url = base
        self._calls = _Calls(ns)
        self._http = httpx.Client(base_url=base, headers=headers, timeout=timeout)

    def _send(self, call: Call[T]) -> T:
        try:
            response = self._http.request(call.method, call.path, json=call.body, params=call.params)
        except httpx.HTTPError as exc:
            raise RemoteError(f"cannot reach {self.url}: {exc}") from exc
        _raise_for(response, call)
        return call.parse(response.json() if response.content else None)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MemoryGraphClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, text: str, *, namespace: str | None = None, metadata: Mapping[str, Any] | None = None, observed_at: Time = None, external_id: str | None = None, source: str | None = None) -> MemoryRecord:  # fmt: skip
        """:meth:`MemoryManager.add` on the server."""
        fields = {"metadata": metadata, "observed_at": observed_at, "external_id": external_id, "source": source}
        return self._send(self._calls.add(text, namespace, fields))

    def add_many(self, rows: Iterable[Mapping[str, Any]], *, namespace: str | None = None, batch_size: int | None = None, progress: Progress | None = None) -> list[MemoryRecord]:  # fmt: skip
        """:meth:`MemoryManager.add_many` on the server, ``batch_size`` rows per request (all by
        default); a bad row stores nothing of its request."""
        items = list(rows)
        size = batch_size or max(1, len(items))
        records: list[MemoryRecord] = []
        for i in range(0, len(items), size):
            batch = items[i : i + size]
            stored: list[MemoryRecord] = self._send(self._calls.add_batch(batch, namespace))
            records += stored
            if progress is not None:
                progress(len(batch))
        return records

    def get(self, memory_id: str, *, namespace: str | None = None) -> MemoryRecord:
        """:meth:`MemoryManager.get` on the server (a memory of a namespace the key may not touch is not found)."""
        return self._send(self._calls.memory("GET", memory_id, namespace, _RECORD.validate_python))

    def delete(self, memory_id: str, *, namespace: str | None = None) -> None:
        """:meth:`MemoryManager.delete` on the server."""
        self._send(self._calls.memory("DELETE", memory_id, namespace, lambda _: None))

    def forget(self, namespace: str) -> Forgotten:
        """:meth:`MemoryManager.forget` on the server (a key allowed that namespace)."""
        return self._send(self._calls.forget(namespace))

    def search(self, query: str, *, namespace: str | None = None, k: int = 5, since: Time = None, until: Time = None, as_of: Time = None, where: Mapping[str, Any] | None = None) -> list[MemoryHit]:  # fmt: skip
        """:meth:`MemoryManager.search` on the server."""
        return self._send(self._calls.query("search", _HITS.validate_python, query, namespace, k=k, since=since, until=until, as_of=as_of, where=_jsonable(where)))  # fmt: skip

    def explain(self, query: str, *, namespace: str | None = None, k: int = 5, since: Time = None, until: Time = None, as_of: Time = None, where: Mapping[str, Any] | None = None) -> list[HitExplanation]:  # fmt: skip
        """:meth:`MemoryManager.explain` on the server."""
        return self._send(self._calls.query("explain", _EXPLANATIONS.validate_python, query, namespace, k=k, since=since, until=until, as_of=as_of, where=_jsonable(where)))  # fmt: skip

    def context(self, query: str, *, namespace: str | None = None, max_tokens: int = 800, k: int = 8, since: Time = None, until: Time = None, as_of: Time = None, where: Mapping[str, Any] | None = None) -> str:  # fmt: skip
        """:meth:`MemoryManager.context` on the server (tokens counted the server's way)."""
        return self._send(self._calls.query("context", lambda d: str(d["context"]), query, namespace, max_tokens=max_tokens, k=k, since=since, until=until, as_of=as_of, where=_jsonable(where)))  # fmt: skip

    def entity(self, name: str, *, namespace: str | None = None, as_of: Time = None) -> EntityView:
        """:meth:`MemoryManager.entity` on the server."""
        return self._send(self._calls.entity(name, namespace, as_of))

    def stats(self, namespace: str | None = None) -> Stats:
        """:meth:`MemoryManager.stats` on the server (all namespaces: an admin key)."""
        return self._send(self._calls.stats(namespace))

    def verify(self, *, repair: bool = False) -> ConsistencyReport:
        """:meth:`MemoryManager.verify` on the server (an admin key)."""
        return self._send(self._calls.verify(repair))


class AsyncMemoryGraphClient:
    """A remote :class:`~memory_graph.MemoryManager` whose methods are coroutines; arguments as
    :class:`MemoryGraphClient`."""

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        namespace: str | None = None,
        timeout: float = 60.0,
        settings: Settings | None = None,
    ) -> None:
        base, headers, ns = _connection(url, api_key, namespace, settings)
        self.url = base
        self._calls = _Calls(ns)
        self._http = httpx.AsyncClient(base_url=base, headers=headers, timeout=timeout)

    async def _send(self, call: Call[T]) -> T:
        try:
            response = await self._http.request(call.method, call.path, json=call.body, params=call.params)
        except httpx.HTTPError as exc:
            raise RemoteError(f"cannot reach {self.url}: {exc}") from exc
        _raise_for(response, call)
        return call.parse(response.json() if response.content else None)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncMemoryGraphClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def add(self, text: str, *, namespace: str | None = None, metadata: Mapping[str, Any] | None = None, observed_at: Time = None, external_id: str | None = None, source: str | None = None) -> MemoryRecord:  # fmt: skip
        fields = {"metadata": metadata, "observed_at": observed_at, "external_id": external_id, "source": source}
        return await self._send(self._calls.add(text, namespace, fields))

    async def add_many(self, rows: Iterable[Mapping[str, Any]], *, namespace: str | None = None, batch_size: int | None = None, progress: Progress | None = None) -> list[MemoryRecord]:  # fmt: skip
        items = list(rows)
        size = batch_size or max(1, len(items))
        records: list[MemoryRecord] = []
        for i in range(0, len(items), size):
            batch = items[i : i + size]
            stored: list[MemoryRecord] = await self._send(self._calls.add_batch(batch, namespace))
            records += stored
            if progress is not None:
                progress(len(batch))
        return records

    async def get(self, memory_id: str, *, namespace: str | None = None) -> MemoryRecord:
        return await self._send(self._calls.memory("GET", memory_id, namespace, _RECORD.validate_python))

    async def delete(self, memory_id: str, *, namespace: str | None = None) -> None:
        await self._send(self._calls.memory("DELETE", memory_id, namespace, lambda _: None))

    async def forget(self, namespace: str) -> Forgotten:
        return await self._send(self._calls.forget(namespace))

    async def search(self, query: str, *, namespace: str | None = None, k: int = 5, since: Time = None, until: Time = None, as_of: Time = None, where: Mapping[str, Any] | None = None) -> list[MemoryHit]:  # fmt: skip
        return await self._send(self._calls.query("search", _HITS.validate_python, query, namespace, k=k, since=since, until=until, as_of=as_of, where=_jsonable(where)))  # fmt: skip

    async def explain(self, query: str, *, namespace: str | None = None, k: int = 5, since: Time = None, until: Time = None, as_of: Time = None, where: Mapping[str, Any] | None = None) -> list[HitExplanation]:  # fmt: skip
        return await self._send(self._calls.query("explain", _EXPLANATIONS.validate_python, query, namespace, k=k, since=since, until=until, as_of=as_of, where=_jsonable(where)))  # fmt: skip

    async def context(self, query: str, *, namespace: str | None = None, max_tokens: int = 800, k: int = 8, since: Time = None, until: Time = None, as_of: Time = None, where: Mapping[str, Any] | None = None) -> str:  # fmt: skip
        return await self._send(self._calls.query("context", lambda d: str(d["context"]), query, namespace, max_tokens=max_tokens, k=k, since=since, until=until, as_of=as_of, where=_jsonable(where)))  # fmt: skip

    async def entity(self, name: str, *, namespace: str | None = None, as_of: Time = None) -> EntityView:
        return await self._send(self._calls.entity(name, namespace, as_of))

    async def stats(self, namespace: str | None = None) -> Stats:
        return await self._send(self._calls.stats(namespace))

    async def verify(self, *, repair: bool = False) -> ConsistencyReport:
        return await self._send(self._calls.verify(repair))
