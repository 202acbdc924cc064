"""The one conftest: settings, databases, stores, the real pipeline and embedder.

PostgreSQL: ``MEMORY_GRAPH_TEST_POSTGRES_URL`` (default: the local server, user ``postgres``)
names a server; each test session creates its own database there and drops it at the end.
Locally an unreachable server skips the PostgreSQL tests loudly; in CI (``CI=true``) it fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from memory_graph import Extractor, GraphStore, MemoryManager, Settings, VectorStore
from memory_graph.extraction import load_pipeline
from memory_graph.vector_store import SentenceTransformerEmbedder, make_chroma_client

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get("MEMORY_GRAPH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TABLES = (
    "vector_collections",
    "reingest_batches",
    "reingest_jobs",
    "entity_merges",
    "relation_evidence",
    "relations",
    "mentions",
    "entity_aliases",
    "entities",
    "chunks",
    "documents",
)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No MEMORY_GRAPH_* setting leaks into a test from the environment."""
    for name in list(os.environ):
        if name.startswith("MEMORY_GRAPH_"):
            monkeypatch.delenv(name)


# -- databases ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (dropped afterwards)."""
    admin_url = make_url(POSTGRES_URL)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"memory_graph_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        message = (
            f"PostgreSQL at {admin_url.render_as_string(hide_password=True)} is not reachable: {exc.__class__.__name__}"
        )
        if IN_CI:
            pytest.fail(message + " (CI=true: PostgreSQL tests must run)")
        pytest.skip("SKIPPING POSTGRESQL TESTS: " + message)
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def new_postgres_database(postgres_server_url: str) -> Iterator[Callable[[str], str]]:
    """Make a PostgreSQL database of a test's own (all dropped at the end of the session): for a
    test whose checks read the whole database (``verify()``), which the session's database shares
    with other tests' rows."""
    admin = create_engine(make_url(postgres_server_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make(prefix: str) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return make_url(postgres_server_url).set(database=name).render_as_string(hide_password=False)

    try:
        yield make
    finally:
        with admin.connect() as conn:
            for name in made:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: a SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'memory.db'}"
        return
    url = request.getfixturevalue("postgres_server_url")
    GraphStore.from_url(url, auto_upgrade=True).close()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    yield url


@pytest.fixture
def graph(database_url: str) -> Iterator[GraphStore]:
    store = GraphStore.from_url(database_url, auto_upgrade=True)
    yield store
    store.close()


# -- models ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def nlp():
    """The shipped spaCy pipeline (models/en_memory_graph)."""
    return load_pipeline("en_memory_graph")


@pytest.fixture(scope="session")
def extractor(nlp) -> Extractor:
    return Extractor(nlp)


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    """The real bundled all-MiniLM-L6-v2."""
    return SentenceTransformerEmbedder()


class HashEmbedder:
    """Deterministic bag-of-words vectors: a stand-in at the embedder seam for fast store tests."""

    dims = 64

    def __call__(self, texts):
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        for i, t in enumerate(texts):
            for word in t.lower().split():
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dims] += 1.0
            out[i] /= max(1.0, float(np.linalg.norm(out[i])))
        return out


@pytest.fixture
def fake_embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture
def vectors(tmp_path: Path, embedder) -> VectorStore:
    return VectorStore(make_chroma_client(path=tmp_path / "chroma"), "memory_graph", embedder=embedder)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url)


@pytest.fixture
def manager(settings: Settings, extractor: Extractor, embedder) -> Iterator[MemoryManager]:
    """A MemoryManager on real stores (SQLite or PostgreSQL, Chroma), pipeline and embeddings."""
    vectors = VectorStore(make_chroma_client(path=settings.chroma_dir), settings.collection, embedder=embedder)
    with MemoryManager(settings, vectors=vectors, extractor=extractor) as mm:
        yield mm


# -- the HTTP server -------------------------------------------------------------------------

#: The keys of the shared test server: an admin key, keys for namespaces A and B, and one for both.
SERVER_KEYS = {
    "test-admin-key": ["*"],
    "test-key-a": ["ns-a"],
    "test-key-b": ["ns-b"],
    "test-key-ab": ["ns-a", "ns-b"],
}


@dataclass
class RunningServer:
    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def log_lines(self) -> list[str]:
        return self.log.read_text(encoding="utf-8", errors="replace").splitlines()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    data_dir: Path, env: dict[str, str] | None = None, *, command: str = "serve", extra_args: list[str] | None = None
) -> RunningServer:
    """``memory-graph serve`` (or ``command``) in a subprocess on a free loopback port, once it
    answers /healthz (``serve``) or accepts connections."""
    import httpx

    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MEMORY_GRAPH_")}
    full_env |= {"PYTHONPATH": str(ROOT), "MEMORY_GRAPH_DATA_DIR": str(data_dir), **(env or {})}
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir.parent / f"{data_dir.name}-server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "memory_graph.cli", command, *(extra_args or []), "--port", str(port)],
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = RunningServer(f"http://127.0.0.1:{port}", log, process)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited {process.returncode}:\n{log.read_text()}")
        try:
            if command != "serve":
                with socket.create_connection(("127.0.0.1", port), timeout=2):
                    return server
            elif httpx.get(server.url + "/healthz", timeout=2).status_code == 200:
                return server
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.5)
    stop_server(server)
    raise RuntimeError(f"server did not start:\n{log.read_text()}")


def stop_server(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(30)


@pytest.fixture(scope="session")
def server_process() -> Iterator[Callable[..., RunningServer]]:
    """Start more servers (``start_server``'s arguments); each is stopped at the end."""
    started: list[RunningServer] = []

    def start(data_dir: Path, env: dict[str, str] | None = None, **kwargs: Any) -> RunningServer:
        started.append(start_server(data_dir, env, **kwargs))
        return started[-1]

    yield start
    for running in started:
        stop_server(running)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One real server for the session (SQLite + embedded Chroma, the shipped models), keys
    :data:`SERVER_KEYS`. Tests use namespaces of their own."""
    running = start_server(
        tmp_path_factory.mktemp("server") / "data", {"MEMORY_GRAPH_API_KEYS": json.dumps(SERVER_KEYS)}
    )
    yield running
    stop_server(running)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI nothing may be skipped: a skipped PostgreSQL test would hide a missing server."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if IN_CI and skipped and exitstatus == 0:
        session.exitstatus = 1
        if reporter is not None:
            reporter.write_line(f"CI=true: {skipped} test(s) skipped; skips are failures in CI", red=True)
