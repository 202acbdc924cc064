"""The HTTP API: FastAPI routes over one :class:`~memory_graph.MemoryManager`.

Every data route names its namespace in the path (``/v1/namespaces/{namespace}/...``) and needs a
key that may touch it: no key or an unknown one is a 401, a key for other namespaces a 403, both
decided before the body is read or anything is touched. A memory fetched or deleted by id
(``/v1/memories/{memory_id}``) is a 404 unless the key may touch its namespace, so that a key
never learns what another namespace holds. Responses are the library's result types with their
field names; errors are ``{"detail": "<one line>"}``.

Routes are plain functions, which FastAPI runs in its thread pool: the stores and the models are
synchronous and stay off the event loop. The models load once, at start-up
(:meth:`MemoryManager.warm_up`).
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run time,
# and some are aliases local to create_app.

import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST

from memory_graph import __version__
from memory_graph.errors import DocumentNotFoundError, InputError, MemoryGraphError, NotFoundError, StoreError
from memory_graph.manager import MemoryManager
from memory_graph.records import ConsistencyReport, EntityView, Forgotten, MemoryHit, MemoryRecord, Stats
from memory_graph.retrieval import HitExplanation
from memory_graph.server.keys import ApiKey, KeyStore
from memory_graph.server.metrics import Metrics
from memory_graph.server.models import (
    ContextIn,
    ContextOut,
    ErrorOut,
    Health,
    KeyCreated,
    KeyIn,
    KeyOut,
    MemoriesIn,
    MemoryIn,
    SearchIn,
    VerifyIn,
)

#: One JSON object per request: request id, route, namespace, status, duration. Never memory text
#: (the route is the template, "/v1/namespaces/{namespace}/entities/{name}", not the path).
access_log = logging.getLogger("memory_graph.server.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "The body cannot be read (not UTF-8 JSON); nothing was stored."},
    401: {"model": ErrorOut, "description": "No key, or an unknown one."},
    403: {"model": ErrorOut, "description": "The key may not touch this namespace (or is not an admin key)."},
    404: {"model": ErrorOut, "description": "No such memory, entity or key (in the namespaces of the key)."},
    422: {"model": ErrorOut, "description": "The request is malformed; nothing was stored."},
    503: {"model": ErrorOut, "description": "A store failed."},
}

Namespace = Annotated[str, Path(min_length=1, max_length=200, description="The namespace (tenant, user).")]


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or exc.__class__.__name__


def validation_message(exc: RequestValidationError) -> str:
    """The first problem of a request, in one line ("body.text: Field required")."""
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return one_line(ValueError(f"{where}: {first.get('msg', 'invalid')}{more}"))


def create_app(manager: MemoryManager, keys: KeyStore, *, warm_up: bool = True) -> FastAPI:
    """The API over ``manager``, its keys checked against ``keys``.

    Args:
        manager: the memory the routes read and change; the app does not close it.
        keys: the API keys (see :class:`KeyStore`).
        warm_up: load the models at start-up (:meth:`MemoryManager.warm_up`) rather than in the
            first request.
    """
    metrics = Metrics(manager)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if warm_up:
            await anyio.to_thread.run_sync(manager.warm_up)
        metrics.instrument(manager)
        yield

    app = FastAPI(
        title="memory-graph",
        version=__version__,
        description="Entity-aware knowledge-graph memory for LLM applications.",
        lifespan=lifespan,
    )
    app.state.manager = manager
    app.state.keys = keys
    app.state.metrics = metrics
    bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`.")

    def current_key(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> ApiKey:
        if credentials is None:
            raise HTTPException(401, "no API key: send 'Authorization: Bearer <key>'", {"WWW-Authenticate": "Bearer"})
        key = keys.authenticate(credentials.credentials)
        if key is None:
            raise HTTPException(401, "unknown API key", {"WWW-Authenticate": "Bearer"})
        request.state.key_id = key.id
        return key

    Key = Annotated[ApiKey, Depends(current_key)]

    def scope(request: Request, namespace: Namespace, key: Key) -> str:
        request.state.namespace = namespace
        if not key.allows(namespace):
            raise HTTPException(403, f"this key may not touch namespace {namespace!r}")
        return namespace

    def admin(key: Key) -> ApiKey:
        if not key.admin:
            raise HTTPException(403, "this needs an admin key")
        return key

    Scope = Annotated[str, Depends(scope)]
    Admin = Annotated[ApiKey, Depends(admin)]

    def own_record(request: Request, memory_id: str, key: ApiKey, namespace: str | None) -> MemoryRecord:
        """The memory whose document id is ``memory_id`` in a namespace the key may touch, else,
        with ``namespace``, the one whose external id it is there; any other is not found."""
        try:
            record = manager.get(memory_id)
            if record.document_id != memory_id or not key.allows(record.namespace):
                raise DocumentNotFoundError(memory_id)  # another namespace's: not even its existence
        except DocumentNotFoundError:
            if namespace is None or not key.allows(namespace):
                raise DocumentNotFoundError(memory_id, namespace) from None
            record = manager.get(memory_id, namespace=namespace)
        request.state.namespace = record.namespace
        return record

    ById = Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="Else look the id up as an external id in this namespace.",
        ),
    ]
    MemoryId = Annotated[str, Path(min_length=1, max_length=512, description="A document id, or an external id.")]

    data = APIRouter(prefix="/v1", responses=_ERRORS)

    @data.post("/namespaces/{namespace}/memories", tags=["memories"])
    def add(namespace: Scope, body: MemoryIn) -> MemoryRecord:
        """Store one memory (``MemoryManager.add``); the same memory again stores nothing."""
        return manager.add(body.text, namespace=namespace, **body.model_dump(exclude={"text"}))

    @data.post("/namespaces/{namespace}/memories/batch", tags=["memories"])
    def add_many(namespace: Scope, body: MemoriesIn) -> list[MemoryRecord]:
        """Store many memories (``MemoryManager.add_many``); one bad row stores none."""
        rows = [m.model_dump(exclude_none=True) for m in body.memories]
        return manager.add_many(rows, namespace=namespace)

    @data.get("/memories/{memory_id}", tags=["memories"])
    def get(request: Request, memory_id: MemoryId, key: Key, namespace: ById = None) -> MemoryRecord:
        """The stored record of a memory by its document id, else by its external id in
        ``namespace`` (``MemoryManager.get``)."""
        return own_record(request, memory_id, key, namespace)

    @data.delete("/memories/{memory_id}", status_code=204, tags=["memories"])
    def delete(request: Request, memory_id: MemoryId, key: Key, namespace: ById = None) -> Response:
        """Remove a memory from both stores, found as ``GET`` finds it (``MemoryManager.delete``)."""
        record = own_record(request, memory_id, key, namespace)
        manager.delete(record.document_id)
        return Response(status_code=204)

    @data.get("/namespaces/{namespace}/memories/{memory_id}", tags=["memories"])
    def get_in_namespace(namespace: Scope, memory_id: MemoryId) -> MemoryRecord:
        """The stored record of the namespace's memory with this document id or external id
        (``MemoryManager.get(id, namespace=...)``)."""
        return manager.get(memory_id, namespace=namespace)

    @data.delete("/namespaces/{namespace}/memories/{memory_id}", status_code=204, tags=["memories"])
    def delete_in_namespace(namespace: Scope, memory_id: MemoryId) -> Response:
        """Remove the namespace's memory with this document id or external id from both stores
        (``MemoryManager.delete(id, namespace=...)``)."""
        manager.delete(memory_id, namespace=namespace)
        return Response(status_code=204)

    def by_external_id(namespace: str, external_id: str) -> MemoryRecord:
        record = manager.get(external_id, namespace=namespace)
        if record.external_id != external_id:  # a document id: not what this route means
            raise NotFoundError("memory with external id", external_id, namespace)
        return record

    @data.get("/namespaces/{namespace}/memories/by-external-id/{external_id}", tags=["memories"])
    def get_by_external_id(namespace: Scope, external_id: str) -> MemoryRecord:
        """The stored record of the memory with this external id in the namespace."""
        return by_external_id(namespace, external_id)

    @data.delete("/namespaces/{namespace}/memories/by-external-id/{external_id}", status_code=204, tags=["memories"])
    def delete_by_external_id(namespace: Scope, external_id: str) -> Response:
        """Remove the memory with this external id in the namespace from both stores."""
        manager.delete(by_external_id(namespace, external_id).document_id)
        return Response(status_code=204)

    @data.delete("/namespaces/{namespace}", tags=["memories"])
    def forget(namespace: Scope) -> Forgotten:
        """Remove every memory, graph row and vector of the namespace (``MemoryManager.forget``);
        what was removed, all zero for a namespace that holds nothing."""
        return manager.forget(namespace)

    @data.post("/namespaces/{namespace}/search", tags=["search"])
    def search(namespace: Scope, body: SearchIn) -> list[MemoryHit]:
        """The ``k`` most relevant memories with their graph context (``MemoryManager.search``)."""
        start = time.perf_counter()
        try:
            return manager.search(body.query, namespace=namespace, **body.model_dump(exclude={"query"}))
        finally:
            metrics.search_seconds.observe(time.perf_counter() - start)

    @data.post("/namespaces/{namespace}/explain", tags=["search"])
    def explain(namespace: Scope, body: SearchIn) -> list[HitExplanation]:
        """The search's hits with why each was found (``MemoryManager.explain``)."""
        return manager.explain(body.query, namespace=namespace, **body.model_dump(exclude={"query"}))

    @data.post("/namespaces/{namespace}/context", tags=["search"])
    def context(namespace: Scope, body: ContextIn) -> ContextOut:
        """Prompt-ready text for a query within ``max_tokens`` (``MemoryManager.context``)."""
        text = manager.context(body.query, namespace=namespace, **body.model_dump(exclude={"query"}))
        return ContextOut(context=text)

    @data.get("/namespaces/{namespace}/entities/{name}", tags=["entities"])
    def entity(
        namespace: Scope,
        name: Annotated[str, Path(min_length=1, max_length=500)],
        as_of: Annotated[str | None, Query(description="Answer as of this ISO 8601 time.")] = None,
    ) -> EntityView:
        """Everything known about an entity, by name or alias (``MemoryManager.entity``)."""
        return manager.entity(name, namespace=namespace, as_of=as_of)

    @data.get("/namespaces/{namespace}/stats", tags=["stats"])
    def namespace_stats(namespace: Scope) -> Stats:
        """Row counts of one namespace (``MemoryManager.stats``)."""
        return manager.stats(namespace)

    @data.get("/stats", tags=["admin"])
    def stats(_: Admin) -> Stats:
        """Row counts of all namespaces (admin)."""
        return manager.stats()

    @data.post("/verify", tags=["admin"])
    def verify(_: Admin, body: VerifyIn | None = None) -> ConsistencyReport:
        """Check that both stores agree; with ``repair``, fix them (admin; ``MemoryManager.verify``)."""
        return manager.verify(repair=body.repair if body else False)

    @data.get("/keys", tags=["admin"])
    def list_keys(_: Admin) -> list[KeyOut]:
        """The API keys (without the keys themselves)."""
        return [KeyOut(**k.__dict__) for k in keys.all()]

    @data.post("/keys", status_code=201, tags=["admin"])
    def create_key(_: Admin, body: KeyIn) -> KeyCreated:
        """A new API key for some namespaces (or admin). The key is in this response only."""
        key, token = keys.create(body.name, body.namespaces, admin=body.admin)
        return KeyCreated(**key.__dict__, key=token)

    @data.delete("/keys/{key_id}", status_code=204, tags=["admin"])
    def delete_key(_: Admin, key_id: str) -> Response:
        """Remove a key created here (keys of the settings are removed there)."""
        keys.delete(key_id)
        return Response(status_code=204)

    app.include_router(data)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> Health:
        """The process is up."""
        return Health(status="ok")

    @app.get("/readyz", tags=["health"], responses={503: {"model": Health}})
    async def readyz() -> JSONResponse:
        """Both stores answer."""
        checks = await anyio.to_thread.run_sync(store_checks, manager)
        ok = all(v == "ok" for v in checks.values())
        health = Health(status="ok" if ok else "unavailable", checks=checks)
        return JSONResponse(health.model_dump(), status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        body = await anyio.to_thread.run_sync(metrics.render)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    def error(status: int, exc: BaseException) -> JSONResponse:
        return JSONResponse({"detail": one_line(exc)}, status_code=status)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse({"detail": validation_message(exc)}, status_code=422)

    async def on_library_error(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, InputError):
            return error(422, exc)
        if isinstance(exc, NotFoundError):
            return error(404, exc)
        if isinstance(exc, StoreError):
            return error(503, exc)
        return error(500, exc)

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(MemoryGraphError, on_library_error)
    app.add_middleware(RequestLog, metrics=metrics)
    return app


def store_checks(manager: MemoryManager) -> dict[str, str]:
    """Ask each store a cheap question: "ok" or the one-line error."""
    checks = {}
    for name, ask in (
        ("graph", lambda: manager.graph.document("readyz")),
        # One namespace's collection (absent: still a round trip), not every namespace's.
        ("vectors", lambda: manager.vectors.existing_ids(["readyz"], namespace="readyz")),
    ):
        try:
            ask()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = one_line(exc)
    return checks


Scope_ = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope_, Receive, Send], Awaitable[None]]


class RequestLog:
    """ASGI middleware: a request id (``X-Request-ID``, taken from the request when it is a sane
    one), one JSON access-log line and the request metrics per request."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope_, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            route = scope.get("route")
            operation = getattr(route, "name", None) or "unmatched"
            self.metrics.observe(operation, status, seconds)
            access_log.info(
                json.dumps(
                    {
                        "request_id": request_id,
                        "method": scope.get("method"),
                        "route": getattr(route, "path", None),
                        "operation": operation,
                        "namespace": state.get("namespace"),
                        "key_id": state.get("key_id"),
                        "status": status,
                        "duration_ms": round(seconds * 1000, 3),
                    }
                )
            )
