"""Chroma as a re-ingest source: persist directories of any chromadb release, or a server.

A persist directory is copied to a temporary directory first and only the copy is opened,
because the installed chromadb migrates the files of older releases in place when it opens
them. Stored vectors are reused only when the collection names the target's embedding model
(:func:`~memory_graph.reingest.sources.vector_policy`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memory_graph.errors import ConfigError, InputError, VectorStoreError
from memory_graph.reingest.jobs import pid_alive
from memory_graph.reingest.report import ReingestReport
from memory_graph.reingest.runner import Progress, run_reingest
from memory_graph.reingest.sources import SourceRecord, record_row
from memory_graph.vector_store import chroma_errors, make_chroma_client

if TYPE_CHECKING:
    from memory_graph.manager import MemoryManager

#: Chroma's built-in embedding functions that are all-MiniLM-L6-v2 (the ONNX export of it).
_CHROMA_MINILM = {"default", "onnx_mini_lm_l6_v2"}
_ID_PAGE = 5000  # ids listed per request


@dataclass
class ChromaSpec:
    """Where a Chroma collection is: a persist directory (``path``) or a server (``host``).

    Attributes:
        collection: the collection's name.
        path: the directory to open (already a private copy when ``copied``).
        host: a Chroma server instead of a directory.
        port: the server's port.
        label: the original location, for reports and the job key (the copy's path changes).
        source_model: the embedding model of the stored vectors, when the collection does not say.
    """

    collection: str
    path: Path | None = None
    host: str | None = None
    port: int = 8000
    label: str = ""
    source_model: str | None = None

    def open(self) -> ChromaSource:
        return ChromaSource(open_chroma(path=self.path, host=self.host, port=self.port, label=self.label), self)


class ChromaSource:
    """The records of one Chroma collection, in id order."""

    def __init__(self, client: Any, spec: ChromaSpec) -> None:
        from chromadb.errors import ChromaError

        self.spec = spec
        where = spec.label or str(spec.path or f"{spec.host}:{spec.port}")
        try:
            self.collection = client.get_collection(spec.collection, embedding_function=None)
        except (ChromaError, ValueError) as exc:
            names = sorted(list_collection_names(client))
            raise InputError(
                f"{where}: no collection {spec.collection!r} (collections: {', '.join(names) or 'none'})"
            ) from exc
        with chroma_errors(f"{where}: reading collection {spec.collection!r}"):
            ids: list[str] = []
            while True:
                page = self.collection.get(include=[], limit=_ID_PAGE, offset=len(ids))["ids"]
                ids += page
                if len(page) < _ID_PAGE:
                    break
        self.ids = sorted(set(ids))
        self.description = f"chroma:{where}#{spec.collection}"
        self.fingerprint = hashlib.sha256("\n".join(self.ids).encode()).hexdigest()
        declared, dim = declared_embedding_model(self.collection)
        self.embedding_model = spec.source_model or declared
        self.embedding_dim = dim
        self.notes: list[str] = []
        self.holds_vectors = True
        self._where = where

    def __len__(self) -> int:
        return len(self.ids)

    def read(self, start: int, stop: int, *, embeddings: bool = False) -> list[SourceRecord]:
        ids = self.ids[start:stop]
        include = ["documents", "metadatas"] + (["embeddings"] if embeddings else [])
        with chroma_errors(f"{self._where}: reading records of {self.spec.collection!r}"):
            got = self.collection.get(ids=ids, include=include)
        vectors = got.get("embeddings")
        found = {
            rid: (
                got["documents"][i] if got.get("documents") is not None else None,
                got["metadatas"][i] if got.get("metadatas") is not None else None,
                vectors[i] if vectors is not None and len(vectors) > i else None,
            )
            for i, rid in enumerate(got["ids"])
        }
        records = []
        extra = {"source_collection": self.spec.collection}
        for rid in ids:
            if rid not in found:
                records.append(SourceRecord(rid, None, problem="record disappeared from the collection during the run"))
                continue
            document, metadata, vector = found[rid]
            if document is None:
                records.append(SourceRecord(rid, None, problem="no document (the record holds only a vector)"))
                continue
            row = record_row(rid, document, metadata, source="chroma", extra=extra)
            records.append(SourceRecord(rid, row, embedding=vector))
        return records

    def close(self) -> None:
        pass


def open_chroma(*, path: Path | None = None, host: str | None = None, port: int = 8000, label: str = "") -> Any:
    """A Chroma client on a persist directory or a server; a one-line error naming the place.

    Raises:
        InputError: the directory is missing or not a Chroma persist directory.
        VectorStoreError: the server cannot be reached, or Chroma cannot open the directory.
    """
    if host:
        return make_chroma_client(host=host, port=port)
    if path is None:
        raise ConfigError("give a Chroma persist directory (--path) or a server (--host/--port)")
    where = label or str(path)
    check_chroma_dir(Path(where) if label else path)
    try:
        return make_chroma_client(path=path)
    except VectorStoreError as exc:
        reason = str(exc).split(" failed in Chroma: ", 1)[-1]
        raise InputError(f"{where}: cannot be opened as a Chroma persist directory ({reason})") from exc


def check_chroma_dir(path: Path) -> None:
    """Raise a one-line :class:`InputError` unless ``path`` is a readable Chroma persist directory."""
    if not path.exists():
        raise InputError(f"{path}: no such directory")
    if not path.is_dir():
        raise InputError(f"{path}: not a directory (give the Chroma persist directory, the one holding chroma.sqlite3)")
    db = path / "chroma.sqlite3"
    if not db.is_file():
        raise InputError(f"{path}: not a Chroma persist directory (no chroma.sqlite3 in it)")
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as exc:
        raise InputError(f"{db}: not a readable Chroma database ({exc})") from exc
    if "collections" not in tables:
        raise InputError(f"{db}: not a Chroma database (no collections table)")


def list_collection_names(client: Any) -> list[str]:
    """The names of a Chroma client's collections (chromadb 0.5 returned objects, 0.6+ names)."""
    with chroma_errors("listing collections"):
        return [c if isinstance(c, str) else c.name for c in client.list_collections()]


@contextmanager
def private_copy(path: Path) -> Iterator[Path]:
    """A temporary copy of a persist directory, removed afterwards; the original is never opened
    by chromadb (which would migrate an older release's files in place)."""
    check_chroma_dir(path)
    _remove_stale_copies()
    tmp = Path(tempfile.mkdtemp(prefix=f"{_COPY_PREFIX}{os.getpid()}-"))
    try:
        copy = tmp / "chroma"
        try:
            shutil.copytree(path, copy)
        except OSError as exc:
            raise InputError(f"{path}: cannot copy the directory to {tmp} ({exc.strerror or exc})") from exc
        yield copy
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_COPY_PREFIX = "memory-graph-reingest-"


def _remove_stale_copies() -> None:
    """Remove the copies that killed runs of this host left behind (their process is gone)."""
    for old in Path(tempfile.gettempdir()).glob(f"{_COPY_PREFIX}*-*"):
        pid = old.name[len(_COPY_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)


def declared_embedding_model(collection: Any) -> tuple[str | None, int | None]:
    """The embedding model (and vector size) a collection says its vectors come from.

    Looks at the collection metadata (``embedding_model``, ``model_name``, ``model``) and at the
    embedding function recorded in its configuration (chromadb >= 0.6); Chroma's default function
    is the ONNX export of all-MiniLM-L6-v2.
    """
    meta = dict(getattr(collection, "metadata", None) or {})
    dim: int | None = None
    for key in ("embedding_dim", "embedding_dimension", "dimension", "dim"):
        value = meta.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            dim = value
            break
    for key in ("embedding_model", "embedding_model_name", "model_name", "model"):
        value = meta.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip(), dim
    config = getattr(collection, "configuration_json", None) or {}
    function = config.get("embedding_function") if isinstance(config, dict) else None
    if isinstance(function, dict):
        name = function.get("name")
        model = (function.get("config") or {}).get("model_name")
        if isinstance(model, str) and model:
            return model, dim
        if name in _CHROMA_MINILM:
            return "all-MiniLM-L6-v2", dim
    return None, dim


def reingest_chroma(
    manager: MemoryManager,
    *,
    path: Path | None = None,
    host: str | None = None,
    port: int = 8000,
    collections: Sequence[str] = (),
    all_collections: bool = False,
    source_model: str | None = None,
    reembed: bool = False,
    namespace: str | None = None,
    workers: int = 1,
    batch_size: int | None = None,
    dry_run: bool = False,
    progress: Callable[[str], Progress | None] | None = None,
) -> list[ReingestReport]:
    """Re-ingest Chroma collections from a persist directory (never changed) or a server.

    Args:
        manager: the target memory.
        path: a persist directory written by any chromadb release (0.4.x, 0.5.x, current); it is
            copied to a temporary directory and the copy is opened.
        host: a Chroma server instead (its API must match the installed chromadb client).
        port: the server's port.
        collections: the collections to re-ingest, in order.
        all_collections: re-ingest every collection instead.
        source_model: the embedding model of the stored vectors, when the collections do not say.
        reembed: never reuse stored vectors.
        namespace, workers, batch_size, dry_run: as for :func:`run_reingest`.
        progress: given a collection name, the progress callback of its job.

    Returns:
        One report per collection.

    Raises:
        ConfigError: the options contradict each other.
        InputError: the directory is missing or not a Chroma store, or a collection is unknown.

    Example:
        >>> reingest_chroma(mm, path=Path("old_chroma"), collections=["memories"])[0].stored  # doctest: +SKIP
        200
    """
    if (path is None) == (host is None):
        raise ConfigError("give either a Chroma persist directory (--path DIR) or a server (--host H --port P)")
    if bool(collections) == bool(all_collections):
        raise ConfigError("name the collections (--collection NAME) or use --all-collections, not both or neither")
    with private_copy(path) if path is not None else nullcontext(None) as copy:
        label = str(path.resolve()) if path is not None else f"{host}:{port}"
        client = open_chroma(path=copy, host=host, port=port, label=label)
        names = sorted(list_collection_names(client)) if all_collections else list(dict.fromkeys(collections))
        if not names:
            raise InputError(f"{label}: no collections in this Chroma store")
        _check_shared_ids(client, names, label=label, namespace=namespace or manager.settings.namespace)
        reports = []
        for name in names:
            spec = ChromaSpec(name, path=copy, host=host, port=port, label=label, source_model=source_model)
            reports.append(
                run_reingest(
                    spec,
                    manager=manager,
                    namespace=namespace,
                    workers=workers,
                    batch_size=batch_size,
                    dry_run=dry_run,
                    reembed=reembed,
                    progress=progress(name) if progress is not None else None,
                )
            )
        return reports


def _check_shared_ids(client: Any, names: Sequence[str], *, label: str, namespace: str) -> None:
    """Collections re-ingested into one namespace must not share ids: their memories would
    replace each other (the id is the memory's external id)."""
    if len(names) < 2:
        return
    seen: dict[str, str] = {}
    for name in names:
        for rid in ChromaSource(client, ChromaSpec(name, label=label)).ids:
            other = seen.setdefault(rid, name)
            if other != name:
                raise ConfigError(
                    f"{label}: collections {other!r} and {name!r} share ids (e.g. {rid!r}), so their memories would "
                    f"replace each other in namespace {namespace!r}; re-ingest them one at a time with different --namespace"
                )
