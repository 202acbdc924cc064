"""Every error memory_graph raises on purpose.

::

    MemoryGraphError
    ├── ConfigError (ValueError)          a setting or argument is wrong; the message says which
    ├── InputError (ValueError)           an input (text, file, record) is unusable; says which and why
    ├── ExtractionError                   the spaCy pipeline is missing or incompatible
    ├── StoreError
    │   ├── GraphStoreError               the relational store failed (wraps sqlalchemy errors)
    │   │   └── SchemaOutOfDateError      the database is not at the migration head
    │   ├── VectorStoreError              Chroma failed (wraps chromadb errors)
    │   └── StoreLockedError              another process is writing this embedded store (names its pid)
    ├── NotFoundError (LookupError)       no such entity / document
    │   ├── EntityNotFoundError
    │   └── DocumentNotFoundError
    └── RemoteError                       a memory-graph server could not be reached or failed
        └── AccessDeniedError (PermissionError)  the server refused the API key (401/403)

    MemoryGraphWarning (UserWarning)      something is ignored that was likely meant (a misspelt
                                          MEMORY_GRAPH_* variable)
"""

from __future__ import annotations


class MemoryGraphError(Exception):
    """Base for every error memory_graph raises on purpose."""


class ConfigError(MemoryGraphError, ValueError):
    """A setting or argument is invalid."""


class InputError(MemoryGraphError, ValueError):
    """An input (text, file, record) cannot be stored."""


class ExtractionError(MemoryGraphError):
    """The spaCy pipeline is missing, incompatible or failed."""


class StoreError(MemoryGraphError):
    """A store failed."""


class GraphStoreError(StoreError):
    """The relational store failed."""


class SchemaOutOfDateError(GraphStoreError):
    """The database schema is behind the code."""


class VectorStoreError(StoreError):
    """The vector store (Chroma) failed."""


class StoreLockedError(StoreError):
    """Another process holds the write lock of this embedded store (one writing process each)."""

    def __init__(self, path: object, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        holder = f"process {pid}" if pid is not None else "another process"
        super().__init__(
            f"the embedded store {path} is being written by {holder}; one process may write an embedded store "
            "at a time (others may read it): stop that process, write through it (memory-graph serve), "
            "or use PostgreSQL and a Chroma server"
        )


class NotFoundError(MemoryGraphError, LookupError):
    """Something asked for by name or id does not exist."""

    def __init__(self, kind: str, key: object, namespace: str | None = None) -> None:
        self.kind = kind
        self.key = key
        self.namespace = namespace
        where = f" in namespace {_shown(namespace)}" if namespace is not None else ""
        super().__init__(f"no {kind} {_shown(key)}{where}")


def _shown(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters: a message stays one short line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 4]}...{text[-1]}"


class EntityNotFoundError(NotFoundError):
    """No entity matches the name."""

    def __init__(self, key: object, namespace: str | None = None) -> None:
        super().__init__("entity", key, namespace)


class DocumentNotFoundError(NotFoundError):
    """No document has the id."""

    def __init__(self, key: object, namespace: str | None = None) -> None:
        super().__init__("document", key, namespace)


class RemoteError(MemoryGraphError):
    """A memory-graph server (:mod:`memory_graph.client`) could not be reached or failed."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class AccessDeniedError(RemoteError, PermissionError):
    """The server refused the API key: none or unknown (401), or not for this namespace (403)."""


class MemoryGraphWarning(UserWarning):
    """Something was ignored that was probably meant: the message says what and what to do."""
