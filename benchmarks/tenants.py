"""Many users in one store: does a namespace's search cost, add cost and ranking depend on the others?

Each namespace holds the conversation of ``benchmarks/data/conversation/`` four times over (about
1,000 turns: copy c of a turn gets the external id ``<id>#c`` and its time moved by c × 210
days). A store of N namespaces (``tenant-0000`` ... ) is compared with a store holding
``tenant-0000`` alone, in one process, interleaved question by question (the order of the two
alternating), over the conversation's 60 questions: search p50/p95 (top 10) in ``tenant-0000``,
whether the top 10 (external ids, in order) is the same, and ``add()`` p95 of one turn (the same
turns added to both, so they stay alike). Then the growth of the p95 from 10 namespaces to the
largest.

Built fast: ``tenant-0000`` goes through the real write path (``add_many``) in both stores; every
other namespace is a copy of it (:func:`copy_namespace`): its rows of every table read once and
written again under the new namespace, with new ids (string ids hashed with the namespace,
integer ids moved by a multiple of 10^7), its keyword index rows, and its vectors (the stored
embeddings, under the new ids, into the namespace's collection). Nothing is parsed or embedded
again. A text is parsed and embedded once anyway: the extractor's ``parse_many`` and the embedder
are memoised by text, which also makes the searches' query embeddings free after a warm-up
round, so the latencies are those of the stores and the ranking.

Two backends: SQLite + embedded Chroma, and PostgreSQL (127.0.0.1:5432, databases created and
dropped here; ``ANALYZE`` after each build, as autovacuum would) + a Chroma server started on
loopback (``chroma run``).

    python benchmarks/tenants.py [--sizes 1,10,100] [--backends sqlite,postgres] [--rounds 3] [--adds 30]
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from memory_graph import GraphStore, MemoryManager, Settings, VectorStore  # noqa: E402
from memory_graph.extraction import Extractor  # noqa: E402
from memory_graph.vector_store import SentenceTransformerEmbedder, index_chroma_log, make_chroma_client  # noqa: E402

DATA = ROOT / "benchmarks" / "data" / "conversation"
COPIES = 4
TARGET = "tenant-0000"
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


class MemoEmbedder:
    """The bundled embedder, memoised by text (a repeated text is embedded once)."""

    def __init__(self) -> None:
        self.inner = SentenceTransformerEmbedder()
        self.cache: dict[str, np.ndarray] = {}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if todo:
            for text, vector in zip(todo, self.inner(todo), strict=True):
                self.cache[text] = vector
        return np.stack([self.cache[t] for t in texts])


def memo_extractor() -> Extractor:
    """The shipped pipeline whose ``parse_many`` parses a text once (the Doc is read, not changed)."""
    extractor = Extractor.load(Settings().spacy_model)
    parse = extractor.parse_many
    cache: dict[str, Any] = {}

    def parse_many(texts: Sequence[str], *, batch_size: int = 64) -> list[Any]:
        todo = list(dict.fromkeys(t for t in texts if t not in cache))
        if todo:
            cache.update(zip(todo, parse(todo, batch_size=batch_size), strict=True))
        return [cache[t] for t in texts]

    extractor.parse_many = parse_many  # type: ignore[method-assign]
    return extractor


def load() -> tuple[list[dict[str, Any]], list[str]]:
    turns = [json.loads(line) for line in (DATA / "turns.jsonl").read_text().splitlines() if line.strip()]
    questions = [json.loads(line)["question"] for line in (DATA / "questions.jsonl").read_text().splitlines() if line]
    rows = []
    for c in range(COPIES):
        for t in turns:
            when = datetime.fromisoformat(t["observed_at"]) + timedelta(days=210 * c)
            rows.append(
                {
                    "text": t["text"],
                    "external_id": f"{t['id']}#{c}",
                    "metadata": {"speaker": t["speaker"], "session": t["session"]},
                    "observed_at": when.isoformat(),
                }
            )
    return rows, questions


class Backend:
    """Opens stores of one kind: SQLite + embedded Chroma, or PostgreSQL + a Chroma server."""

    def __init__(self, kind: str, tmp: Path) -> None:
        self.kind, self.tmp = kind, tmp
        self.databases: list[str] = []
        self.server: subprocess.Popen[bytes] | None = None
        self.port = 0
        if kind == "postgres":
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
            chroma = Path(sys.executable).with_name("chroma")
            self.server = subprocess.Popen(
                [
                    str(chroma),
                    "run",
                    "--path",
                    str(tmp / "chroma-server"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(120):
                try:
                    make_chroma_client(host="127.0.0.1", port=self.port).heartbeat()
                    break
                except Exception:
                    time.sleep(0.5)
            # What an operator of a Chroma server does once (docs/architecture.md, "The vector layout").
            index_chroma_log(tmp / "chroma-server")

    def open(self, name: str, extractor: Extractor, embedder: MemoEmbedder) -> MemoryManager:
        if self.kind == "sqlite":
            settings = Settings(data_dir=self.tmp / name)
            vectors = VectorStore(make_chroma_client(path=settings.chroma_dir), embedder=embedder)
            return MemoryManager(settings, vectors=vectors, extractor=extractor)
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        database = f"mg_tenants_{name}_{uuid.uuid4().hex[:6]}"
        admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{database}"'))
        admin.dispose()
        self.databases.append(database)
        url = make_url(POSTGRES).set(database=database).render_as_string(hide_password=False)
        settings = Settings(
            data_dir=self.tmp / name, database_url=url, chroma_host="127.0.0.1", chroma_port=self.port, collection=name
        )
        graph = GraphStore.from_url(url, auto_upgrade=True)
        vectors = VectorStore.open(host="127.0.0.1", port=self.port, collection=name, embedder=embedder, registry=graph)
        return MemoryManager(settings, graph=graph, vectors=vectors, extractor=extractor)

    def analyze(self, mm: MemoryManager) -> None:
        """PostgreSQL: fresh planner statistics after the bulk copy (what autovacuum does soon
        after such a load); without them the planner guesses a namespace holds a few rows."""
        if self.kind == "postgres":
            from sqlalchemy import text

            with mm.graph.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))

    def server_rss_mb(self) -> float | None:
        if self.server is None:
            return None
        for line in Path(f"/proc/{self.server.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return None

    def close(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(timeout=30)
        if self.databases:
            from sqlalchemy import create_engine, text

            admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                for database in self.databases:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            admin.dispose()


_TABLES = ("documents", "chunks", "entities", "entity_aliases", "entity_merges", "mentions", "relations",
           "relation_evidence")  # fmt: skip
_INT_OFFSET = 10**7


def copy_namespace(
    mm: MemoryManager, rows_of: dict[str, list[dict[str, Any]]], vectors: dict[str, Any], k: int
) -> None:
    """Write namespace ``tenant-<k>`` as a copy of ``TARGET`` (read once into ``rows_of`` and
    ``vectors``): new ids, the same rows, keyword index and embeddings."""
    import hashlib

    from memory_graph.schema import Base
    from memory_graph.store.engine import batches

    namespace = f"tenant-{k:04d}"

    def new_str(old: str) -> str:
        return hashlib.md5(f"{namespace}/{old}".encode()).hexdigest()[: len(old)]

    def ref_kind(column: Any) -> str | None:
        target = column if column.primary_key else next((f.column for f in column.foreign_keys), None)
        if target is None:
            return None
        return "int" if target.type.python_type is int else "str"

    with mm.graph.writing("copying a namespace") as conn:
        for name in _TABLES:
            table = Base.metadata.tables[name]
            kinds = {c.name: ref_kind(c) for c in table.columns}
            out = []
            for row in rows_of[name]:
                new = dict(row)
                new["namespace"] = namespace
                for col, kind in kinds.items():
                    if new[col] is None or kind is None:
                        continue
                    new[col] = new[col] + k * _INT_OFFSET if kind == "int" else new_str(new[col])
                out.append(new)
            merged = [(r["id"], r.pop("merged_into")) for r in out if r.get("merged_into") is not None]
            for r in out:
                if "merged_into" in kinds:
                    r["merged_into"] = None
            for part in batches(out, 200):
                conn.execute(table.insert(), list(part))
            for eid, into in merged:  # an entity merged into one written after it
                conn.execute(table.update().where(table.c.id == eid).values(merged_into=into))
            if name == "chunks":
                mm.graph.dialect.index_text(conn, out)
    metas = [dict(m, namespace=namespace, document_id=new_str(m["document_id"])) for m in vectors["metadatas"]]
    mm.vectors.upsert(
        [new_str(i) for i in vectors["ids"]], vectors["documents"], metas, embeddings=vectors["embeddings"]
    )


def read_namespace(mm: MemoryManager) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    from sqlalchemy import select

    from memory_graph.schema import Base

    with mm.graph.reading("reading a namespace") as conn:
        rows_of = {
            name: [dict(r._mapping) for r in conn.execute(select(t).where(t.c.namespace == TARGET))]
            for name in _TABLES
            for t in [Base.metadata.tables[name]]
        }
    got = mm.vectors.collection_for(TARGET).get(include=["embeddings", "documents", "metadatas"])  # type: ignore[attr-defined]
    got["embeddings"] = np.asarray(got["embeddings"], dtype=np.float32)
    return rows_of, dict(got)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def interleaved(
    a: Callable[[int], Any], b: Callable[[int], Any], n: int
) -> tuple[list[float], list[float], list[Any], list[Any]]:
    """Run ``a(i)`` and ``b(i)`` for i < n, alternating which goes first; their times (ms) and results."""
    ta: list[float] = []
    tb: list[float] = []
    ra: list[Any] = []
    rb: list[Any] = []
    for i in range(n):
        order = ((a, ta, ra), (b, tb, rb)) if i % 2 == 0 else ((b, tb, rb), (a, ta, ra))
        for fn, times, results in order:
            t0 = time.perf_counter()
            results.append(fn(i))
            times.append((time.perf_counter() - t0) * 1000)
    return ta, tb, ra, rb


def measure(
    alone: MemoryManager,
    big: MemoryManager,
    questions: list[str],
    rows: list[dict[str, Any]],
    *,
    rounds: int,
    adds: int,
    tag: str,
) -> dict[str, float]:
    def searcher(mm: MemoryManager) -> Callable[[int], list[str | None]]:
        return lambda i: [h.external_id for h in mm.search(questions[i % len(questions)], namespace=TARGET, k=10)]

    for mm in (alone, big):  # warm-up: caches, the query embeddings, the pinned connections
        for q in questions:
            mm.search(q, namespace=TARGET, k=10)
    t_alone, t_big, r_alone, r_big = interleaved(searcher(alone), searcher(big), rounds * len(questions))
    same = sum(x == y for x, y in zip(r_alone[: len(questions)], r_big[: len(questions)], strict=True))

    def adder(mm: MemoryManager) -> Callable[[int], Any]:
        def add(i: int) -> Any:
            row = rows[i % len(rows)]
            return mm.add(
                row["text"],
                namespace=TARGET,
                metadata=row["metadata"],
                observed_at=row["observed_at"],
                external_id=f"add-{tag}-{i}",
            )

        return add

    a_alone, a_big, _, _ = interleaved(adder(alone), adder(big), adds)
    return {
        "alone_p50": statistics.median(t_alone),
        "alone_p95": pct(t_alone, 0.95),
        "p50": statistics.median(t_big),
        "p95": pct(t_big, 0.95),
        "add_alone_p95": pct(a_alone, 0.95),
        "add_p95": pct(a_big, 0.95),
        "same_top10": same / len(questions),
    }


def run(kind: str, sizes: list[int], rounds: int, adds: int, extractor: Extractor, embedder: MemoEmbedder) -> None:
    rows, questions = load()
    with tempfile.TemporaryDirectory() as tmp:
        backend = Backend(kind, Path(tmp))
        try:
            alone = backend.open("alone", extractor, embedder)
            big = backend.open("big", extractor, embedder)
            t0 = time.perf_counter()
            alone.add_many(rows, namespace=TARGET)
            first = time.perf_counter() - t0
            big.add_many(rows, namespace=TARGET)
            source = read_namespace(big)
            print(
                f"\n{kind}: one namespace of {len(rows)} turns built in {first:.1f} s (parses and embeds)", flush=True
            )
            print(
                f"{'namespaces':>10} {'chunks':>8} {'build s':>8} {'alone p50':>10} {'p50':>8} {'alone p95':>10} "
                f"{'p95':>8} {'p95 x':>6} {'add alone':>10} {'add p95':>8} {'add x':>6} {'same10':>7} {'rss MB':>7}",
                flush=True,
            )
            built = 1
            p95: dict[int, float] = {}
            for size in sizes:
                t0 = time.perf_counter()
                while built < size:
                    copy_namespace(big, *source, built)
                    built += 1
                build = time.perf_counter() - t0
                for mm in (alone, big):
                    backend.analyze(mm)
                m = measure(alone, big, questions, rows, rounds=rounds, adds=adds, tag=str(size))
                p95[size] = m["p95"]
                chunks = big.stats().chunks
                rss = backend.server_rss_mb() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                print(
                    f"{size:>10} {chunks:>8} {build:>8.0f} {m['alone_p50']:>10.1f} {m['p50']:>8.1f} "
                    f"{m['alone_p95']:>10.1f} {m['p95']:>8.1f} {m['p95'] / m['alone_p95']:>6.2f} "
                    f"{m['add_alone_p95']:>10.1f} {m['add_p95']:>8.1f} {m['add_p95'] / m['add_alone_p95']:>6.2f} "
                    f"{m['same_top10']:>7.0%} {rss:>7.0f}",
                    flush=True,
                )
            if 10 in p95 and max(p95) > 10:
                print(f"p95 growth from 10 to {max(p95)} namespaces: {p95[max(p95)] / p95[10]:.2f}x", flush=True)
            alone.close()
            big.close()
        finally:
            backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,100", help="namespace counts, ascending")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the questions per size")
    parser.add_argument("--adds", type=int, default=30, help="single-turn adds timed per size")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    extractor, embedder = memo_extractor(), MemoEmbedder()
    for kind in args.backends.split(","):
        run(kind, sizes, args.rounds, args.adds, extractor, embedder)


if __name__ == "__main__":
    main()
