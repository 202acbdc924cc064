"""Several processes on one embedded store (SQLite + a Chroma directory), as real processes.

The documented behaviour (docs/architecture.md, "Several processes"): one process writes an
embedded store at a time; another process's write raises ``StoreLockedError`` naming the
writer's pid and changes nothing; every process reads, and sees the writer's memories without
reopening. Opening a new store from several processes at once is safe.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from memory_graph import MemoryManager, Settings
from memory_graph.errors import StoreLockedError
from memory_graph.locks import HeldLock, holder_pid

ROOT = Path(__file__).resolve().parents[1]

#: One process: open the store, load the models, wait for "go", then write ``n`` memories
#: (alternating two namespaces), logging each acknowledged id; refused, read until every
#: memory of the writer (named in the file "writer-done") is found, then try to write again
#: once the writer is gone ("writer-gone").
CHILD = r"""
import json, os, sys, time
from pathlib import Path
from memory_graph import MemoryManager, Settings
from memory_graph.errors import StoreLockedError

data_dir, run, name, n = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
out = {"pid": os.getpid(), "name": name, "acked": [], "locked": None, "seen": 0, "late": None}
def wait_for(path, timeout=600):
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {path}")
        time.sleep(0.05)
with MemoryManager(Settings(data_dir=data_dir)) as mm:
    mm.extractor.tokenize("warm up"); mm.vectors.embed(["warm up"])
    (run / f"ready-{name}").touch()
    wait_for(run / "go")
    with (run / f"acked-{name}.log").open("a") as log:
        for i in range(n):
            try:
                rec = mm.add(f"Courier {name} delivered parcel {i} to the Oslo depot, code Q{name}x{i}.",
                             namespace=f"ns-{i % 2}", external_id=f"{name}-{i}")
            except StoreLockedError as exc:
                out["locked"] = {"pid": exc.pid, "message": str(exc)}
                break
            log.write(rec.document_id + "\n"); log.flush(); os.fsync(log.fileno())
            out["acked"].append([rec.document_id, f"{name}-{i}", f"ns-{i % 2}"])
    if out["locked"] is None:
        (run / f"writer-done-{name}").write_text(json.dumps(out["acked"]))
        wait_for(run / "release")
    else:
        wait_for(run / "all-written")
        writers = [json.loads(p.read_text()) for p in run.glob("writer-done-*")]
        for acked in writers:
            for doc_id, ext, ns in acked:
                hits = mm.search(f"code Q{ext.replace('-', 'x')}", namespace=ns, k=3)
                out["seen"] += any(h.document_id == doc_id for h in hits) and bool(mm.vectors.existing_ids(mm.get(doc_id).chunk_ids))
        out["expected"] = sum(len(a) for a in writers)
        (run / f"read-{name}").touch()
        wait_for(run / "writer-gone")
        deadline = time.monotonic() + 300
        while True:  # the refused processes now take turns: each writes once the last one is gone
            try:
                rec = mm.add(f"Courier {name} came back later, code Q{name}xlate.", namespace="ns-0", external_id=f"{name}-late")
                break
            except StoreLockedError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        mm.close()
        out["late"] = [rec.document_id, f"{name}-late", "ns-0"]
        with (run / f"acked-{name}.log").open("a") as log:
            log.write(rec.document_id + "\n"); log.flush(); os.fsync(log.fileno())
print(json.dumps(out))
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMORY_GRAPH_")}
    return env | {"PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def _wait(paths: list[Path], procs: list[subprocess.Popen[str]], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        for proc in procs:
            if proc.poll() is not None and proc.returncode != 0:
                raise AssertionError(proc.communicate()[1][-3000:])
        assert time.monotonic() < deadline, f"timed out waiting for {paths}"
        time.sleep(0.1)


def _run_processes(data_dir: Path, run: Path, count: int, n: int) -> list[dict]:
    run.mkdir()
    script = run / "child.py"
    script.write_text(CHILD)
    names = [f"p{i}" for i in range(count)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(data_dir), str(run), name, str(n)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    try:
        _wait([run / f"ready-{name}" for name in names], procs)
        (run / "go").touch()
        # At "go" every process writes: one takes the lock, the others are refused at once.
        deadline = time.monotonic() + 600
        while not list(run.glob("writer-done-*")):
            assert time.monotonic() < deadline, "no process finished writing"
            assert all(p.poll() is None for p in procs), [p.communicate()[1][-3000:] for p in procs if p.poll()]
            time.sleep(0.1)
        (run / "all-written").touch()
        writer = next(run.glob("writer-done-*")).name.removeprefix("writer-done-")
        readers = [name for name in names if name != writer]
        # The refused processes read the writer's memories while it is still open.
        _wait([run / f"read-{name}" for name in readers], procs)
        (run / "release").touch()
        procs[names.index(writer)].wait(timeout=120)
        (run / "writer-gone").touch()
        results = []
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=600)
            assert proc.returncode == 0, stderr[-3000:]
            results.append(json.loads(stdout.strip().splitlines()[-1]))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _check_store(data_dir: Path, results: list[dict]) -> None:
    with sqlite3.connect(data_dir / "memory.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    acked = [a for r in results for a in r["acked"]] + [r["late"] for r in results if r["late"]]
    with MemoryManager(Settings(data_dir=data_dir)) as mm:
        for doc_id, ext, ns in acked:
            rec = mm.get(doc_id)
            assert rec.external_id == ext and rec.namespace == ns
            assert mm.vectors.existing_ids(rec.chunk_ids) == set(rec.chunk_ids)
            assert doc_id in {h.document_id for h in mm.search(f"code Q{ext.replace('-', 'x')}", namespace=ns, k=3)}
        assert mm.verify().ok
        assert mm.stats().documents == len(acked) + len(list(data_dir.glob("seed")))


@pytest.mark.slow
@pytest.mark.parametrize(("count", "existing"), [(2, False), (4, True)])
def test_processes_one_writer_the_others_refused_read_its_memories(tmp_path: Path, count: int, existing: bool) -> None:
    data_dir = tmp_path / "data"
    if existing:
        with MemoryManager(Settings(data_dir=data_dir)) as mm:
            mm.add("The depot opened in Oslo in 2019.", namespace="ns-0", external_id="seed")
        (data_dir / "seed").touch()
    n = 6
    results = _run_processes(data_dir, tmp_path / "run", count, n)
    writers = [r for r in results if r["locked"] is None]
    refused = [r for r in results if r["locked"] is not None]
    # Exactly one process wrote; each other one was refused at its first write, naming the writer.
    assert len(writers) == 1 and len(writers[0]["acked"]) == n
    assert len(refused) == count - 1
    for r in refused:
        assert r["acked"] == [] and r["locked"]["pid"] == writers[0]["pid"]
        assert f"process {writers[0]['pid']}" in r["locked"]["message"]
        # It read every memory of the writer, which was still open, without reopening.
        assert r["seen"] == r["expected"] == n
        assert r["late"] is not None  # and wrote once the writer was gone
    _check_store(data_dir, results)


def test_processes_second_writer_in_one_process_shares_the_lock(tmp_path: Path, fake_embedder) -> None:
    """Managers of one process share the write lock (they share Chroma's client too)."""
    settings = Settings(data_dir=tmp_path / "data")
    with MemoryManager(settings) as first, MemoryManager(settings) as second:
        first.vectors.claim_writes()
        second.vectors.claim_writes()
    lock = tmp_path / "data" / "chroma.lock"
    assert lock.exists() and lock.read_text() == ""  # released: no pid left behind


def test_processes_refused_between_lock_and_pid_still_names_the_holder(tmp_path: Path) -> None:
    """A process refused after the holder took the flock but before it wrote its pid waits for the pid.

    The holder here is a real process that takes the flock, waits, then writes its pid, which
    widens the window the lock itself leaves open for an instant (four processes starting at once
    hit it).
    """
    lock = tmp_path / "chroma.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644);"
            "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); print('locked', flush=True); time.sleep(0.3);"
            "os.pwrite(fd, f'{os.getpid()}\\n'.encode(), 0); time.sleep(600)",
            str(lock),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert not HeldLock(lock).try_acquire()
        assert holder_pid(lock) == holder.pid
    finally:
        holder.kill()
        holder.wait()
    assert holder_pid(lock.with_name("missing.lock"), wait=0.05) is None


def test_processes_refused_writer_changes_nothing(tmp_path: Path) -> None:
    """A write refused by the lock changes neither store (checked before the SQL side)."""
    data_dir = tmp_path / "data"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from memory_graph.vector_store import VectorStore, make_chroma_client;"
            "from pathlib import Path; v = VectorStore(make_chroma_client(path=Path(sys.argv[1])), embedder=lambda t: None);"
            "v.claim_writes(); print('held', flush=True); time.sleep(600)",
            str(data_dir / "chroma"),
        ],
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with MemoryManager(Settings(data_dir=data_dir)) as mm:
            before = mm.stats()
            with pytest.raises(StoreLockedError, match=f"process {holder.pid}") as info:
                mm.add("Alice moved to Lisbon.", namespace="x")
            assert info.value.pid == holder.pid
            assert mm.stats() == before
    finally:
        holder.kill()
        holder.wait()
    # The lock died with its process: writing works now, with no stale lock to clear.
    with MemoryManager(Settings(data_dir=data_dir)) as mm:
        mm.add("Alice moved to Lisbon.", namespace="x")
        assert mm.stats("x").documents == 1


@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
def test_processes_sqlite_synchronous_setting_is_applied(tmp_path: Path, synchronous: str) -> None:
    from sqlalchemy import text

    settings = Settings(data_dir=tmp_path / "data", sqlite_synchronous=synchronous)
    with MemoryManager(settings) as mm, mm.graph.engine.connect() as conn:
        assert conn.execute(text("PRAGMA synchronous")).scalar() == {"NORMAL": 1, "FULL": 2}[synchronous]
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_processes_sqlite_synchronous_default_and_bad_value(monkeypatch: pytest.MonkeyPatch) -> None:
    from memory_graph.errors import ConfigError
    from memory_graph.store.engine import create_store_engine

    assert Settings().sqlite_synchronous == "NORMAL"
    monkeypatch.setenv("MEMORY_GRAPH_SQLITE_SYNCHRONOUS", "FULL")
    assert Settings().sqlite_synchronous == "FULL"
    with pytest.raises(ConfigError, match="sqlite_synchronous"):
        create_store_engine("sqlite://", sqlite_synchronous="OFF")


NEW_STORE = r"""
import sys, time
from pathlib import Path
from memory_graph import GraphStore
from memory_graph.vector_store import VectorStore, make_chroma_client
data_dir, go = Path(sys.argv[1]), Path(sys.argv[2])
while not go.exists():
    time.sleep(0.005)
GraphStore.from_url(f"sqlite:///{data_dir / 'memory.db'}", auto_upgrade=True).close()
VectorStore(make_chroma_client(path=data_dir / "chroma"), embedder=lambda t: None)
print("ok")
"""


@pytest.mark.parametrize("count", [2, 4])
def test_processes_open_a_new_store_at_once(tmp_path: Path, count: int) -> None:
    """Creating the schema and the Chroma directory is serialised (it failed with `table
    documents already exists` before)."""
    for attempt in range(3):
        data_dir, go = tmp_path / f"data{attempt}", tmp_path / f"go{attempt}"
        data_dir.mkdir()
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", NEW_STORE, str(data_dir), str(go)],
                env=_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(count)
        ]
        time.sleep(3)  # every process has imported and waits for the start
        go.touch()
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0 and out.strip() == "ok", err[-3000:]
        with sqlite3.connect(data_dir / "memory.db") as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 1


# -- PostgreSQL and a Chroma server: many writing processes -----------------------------------

PG_WRITER = r"""
import json, os, sys, time
from pathlib import Path
from memory_graph import MemoryManager, Settings
url, port, data_dir, go, name, n, ns = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), sys.argv[5], int(sys.argv[6]), sys.argv[7]
people = ["Alice Moreau", "Bram Okafor", "Ingrid Sato", "Oren Vidal"]
cities = ["Oslo", "Lisbon", "Quito", "Perth"]
acked, failed = [], 0
with MemoryManager(Settings(data_dir=data_dir, database_url=url, chroma_host="127.0.0.1", chroma_port=port)) as mm:
    mm.extractor.tokenize("warm up"); mm.vectors.embed(["warm up"])
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.02)
    for i in range(n):
        a, b = people[i % 4], people[(i + 1) % 4]
        text = f"{a} met {b} at the {cities[i % 4]} office on day {i}, code P{name}x{i}."
        try:
            rec = mm.add(text, namespace=ns, external_id=f"{name}-{i}", metadata={"speaker": a})
            acked.append([rec.document_id, f"{name}-{i}"])
        except Exception as exc:
            failed += 1
            print(repr(exc), file=sys.stderr)
print(json.dumps({"acked": acked, "failed": failed}))
"""


@pytest.mark.slow
@pytest.mark.postgres
def test_processes_eight_postgres_writers_about_the_same_people(tmp_path: Path, new_postgres_database) -> None:
    """8 processes write turns about the same four people to PostgreSQL and a Chroma server at
    once: no failed write, no duplicate entity or relation, every memory found afterwards."""
    import socket

    from sqlalchemy import create_engine, text

    from memory_graph import GraphStore

    # A database of its own: verify() reads every namespace, and the session's database holds
    # other tests' chunks, whose vectors are not in this test's Chroma server.
    database_url = new_postgres_database("writers")
    GraphStore.from_url(database_url, auto_upgrade=True).close()
    ns = f"team-{uuid.uuid4().hex[:8]}"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    chroma = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "chroma"),
            "run",
            "--path",
            str(tmp_path / "served"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs: list[subprocess.Popen[str]] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "chroma run did not start"
                time.sleep(0.2)
        go, n = tmp_path / "go", 10
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    PG_WRITER,
                    database_url,
                    str(port),
                    str(tmp_path / f"d{i}"),
                    str(go),
                    f"w{i}",
                    str(n),
                    ns,
                ],
                env=_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(8)
        ]
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", proc.communicate()[1][-3000:]
        go.touch()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=900)
            assert proc.returncode == 0, err[-3000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
        assert sum(r["failed"] for r in results) == 0
        acked = [a for r in results for a in r["acked"]]
        assert len(acked) == 8 * n
        engine = create_engine(database_url)
        with engine.connect() as conn:
            dup_entities = conn.execute(
                text(
                    "SELECT count(*) FROM (SELECT namespace, label, key FROM entities GROUP BY 1, 2, 3 HAVING count(*) > 1) d"
                )
            ).scalar()
            dup_relations = conn.execute(
                text(
                    "SELECT count(*) FROM (SELECT source_id, predicate, target_id FROM relations"
                    " WHERE namespace = :ns GROUP BY 1, 2, 3 HAVING count(*) > 1) d"
                ),
                {"ns": ns},
            ).scalar()
            people = conn.execute(
                text(
                    "SELECT count(*) FROM entities WHERE namespace = :ns AND label = 'PERSON' AND merged_into IS NULL"
                ),
                {"ns": ns},
            ).scalar()
        engine.dispose()
        assert dup_entities == 0 and dup_relations == 0
        assert people is not None and people <= 8  # four people (and, at most, their first names)
        settings = Settings(
            data_dir=tmp_path / "check", database_url=database_url, chroma_host="127.0.0.1", chroma_port=port
        )
        with MemoryManager(settings) as mm:
            assert mm.stats(ns).documents == 8 * n
            for doc_id, ext in acked:
                assert mm.get(doc_id).external_id == ext
            assert mm.verify().ok
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        chroma.terminate()
        chroma.wait(30)
