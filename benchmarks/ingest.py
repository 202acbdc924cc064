"""Ingest throughput and search latency: MemoryManager against plain Chroma, in the same run.

Both sides use the same embedder (bundled all-MiniLM-L6-v2), the same texts and the same
queries; plain Chroma only embeds and stores, so the ratios show what extraction, the graph
writes and the graph-aware search cost.

Plain Chroma is also timed with each query embedded as MemoryManager's search embeds it: in a
worker thread with one torch thread fewer, the search's own thread using that core for the other
signals. Over plain Chroma's p95, that is the floor of the p95 ratio on the machine at hand.
MemoryManager's index is also searched by vector alone, its hits read with the entities and
relations every ``MemoryHit`` carries: what that contract costs before any other signal.

    python benchmarks/ingest.py [--docs 1000] [--queries 200] [--corpus PATH]

Texts: ``../shared/data/hotpotqa_dev500/corpus.jsonl`` (Wikipedia paragraphs) when present, else
``examples/``; queries: the HotpotQA questions (or the examples' texts).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.retrieval import OneCoreFewer, vector_hits_with_context  # noqa: E402
from memory_graph import MemoryManager, Settings  # noqa: E402
from memory_graph.vector_store import SentenceTransformerEmbedder, make_chroma_client  # noqa: E402

HOTPOT = ROOT.parent / "shared" / "data" / "hotpotqa_dev500"


def load_texts(corpus: Path | None, n_docs: int, n_queries: int) -> tuple[list[dict], list[str]]:
    corpus = corpus or HOTPOT / "corpus.jsonl"
    if corpus.exists():
        docs = [json.loads(line) for line in corpus.read_text().splitlines()[:n_docs]]
        rows = [{"text": f"{d['title']}. {d['text']}", "external_id": d["id"]} for d in docs]
        questions_path = corpus.parent / "questions.jsonl"
        queries = (
            [json.loads(line)["question"] for line in questions_path.read_text().splitlines()][:n_queries]
            if questions_path.exists()
            else []
        )
        return rows, queries or [r["text"][:80] for r in rows[:n_queries]]
    from memory_graph.files import read_memory_files

    rows = read_memory_files([ROOT / "examples"])
    return rows, [r["text"][:80] for r in rows][:n_queries]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def bench_chroma(rows: list[dict], queries: list[str], embedder, workdir: Path, batch: int, k: int) -> dict:
    client = make_chroma_client(path=workdir / "plain")
    collection = client.get_or_create_collection("plain", metadata={"hnsw:space": "cosine"}, embedding_function=None)
    start = time.perf_counter()
    for i in range(0, len(rows), batch):
        part = rows[i : i + batch]
        collection.add(
            ids=[r["external_id"] for r in part],
            documents=[r["text"] for r in part],
            embeddings=embedder([r["text"] for r in part]),
        )
    ingest_s = time.perf_counter() - start
    latencies: dict[str, list[float]] = {"plain": [], "one core fewer": []}
    for name, embed in (("plain", embedder), ("one core fewer", OneCoreFewer(embedder))):
        for q in queries:
            t = time.perf_counter()
            collection.query(query_embeddings=embed([q]), n_results=k)
            latencies[name].append((time.perf_counter() - t) * 1000)
    return {
        "docs_per_s": len(rows) / ingest_s,
        "p50_ms": percentile(latencies["plain"], 50),
        "p95_ms": percentile(latencies["plain"], 95),
        "p95_one_core_fewer_ms": percentile(latencies["one core fewer"], 95),
    }


def bench_manager(rows: list[dict], queries: list[str], embedder, workdir: Path, batch: int, k: int) -> dict:
    from memory_graph import VectorStore

    settings = Settings(data_dir=workdir / "mg", batch_size=batch)
    with MemoryManager(
        settings, vectors=VectorStore(make_chroma_client(path=settings.chroma_dir), embedder=embedder)
    ) as mm:
        mm.warm_up()  # as a server does at start-up: loads the pipeline outside the timing
        mm.search("warm up", namespace="bench", k=k)
        start = time.perf_counter()
        mm.add_many(rows, namespace="bench", batch_size=batch)
        ingest_s = time.perf_counter() - start
        latencies: dict[str, list[float]] = {"search": [], "hit context": []}
        hit_context = vector_hits_with_context(mm, "bench")
        for name, search in (
            ("search", lambda q: mm.search(q, namespace="bench", k=k)),
            ("hit context", lambda q: hit_context(q, k)),
        ):
            for q in queries:
                t = time.perf_counter()
                search(q)
                latencies[name].append((time.perf_counter() - t) * 1000)
        stats = mm.stats("bench")
    return {
        "docs_per_s": len(rows) / ingest_s,
        "p50_ms": percentile(latencies["search"], 50),
        "p95_ms": percentile(latencies["search"], 95),
        "p95_hit_context_ms": percentile(latencies["hit context"], 95),
        "stats": stats.to_dict(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side; medians are reported")
    args = parser.parse_args()

    rows, queries = load_texts(args.corpus, args.docs, args.queries)
    embedder = SentenceTransformerEmbedder()
    embedder(["warm up"])
    runs: dict[str, list[dict]] = {"plain": [], "graph": []}
    for rep in range(args.repeats):  # alternate the two sides; report medians over the repeats
        with tempfile.TemporaryDirectory() as tmp:
            runs["plain"].append(bench_chroma(rows, queries, embedder, Path(tmp) / str(rep), args.batch, args.k))
            runs["graph"].append(bench_manager(rows, queries, embedder, Path(tmp) / str(rep), args.batch, args.k))
    plain, graph = (
        {key: statistics.median(r[key] for r in runs[side]) for key in ("docs_per_s", "p50_ms", "p95_ms")}
        for side in ("plain", "graph")
    )
    plain["p95_one_core_fewer_ms"] = statistics.median(r["p95_one_core_fewer_ms"] for r in runs["plain"])
    graph["p95_hit_context_ms"] = statistics.median(r["p95_hit_context_ms"] for r in runs["graph"])
    graph["stats"] = runs["graph"][-1]["stats"]
    words = sum(len(r["text"].split()) for r in rows)
    print(
        f"{len(rows)} texts ({words:,} words), {len(queries)} queries, k={args.k}, batch={args.batch}, medians of {args.repeats} runs"
    )
    print(f"{'':16}{'ingest docs/s':>14}{'search p50 ms':>15}{'search p95 ms':>15}")
    for name, r in (("plain Chroma", plain), ("MemoryManager", graph)):
        print(f"{name:16}{r['docs_per_s']:>14.1f}{r['p50_ms']:>15.1f}{r['p95_ms']:>15.1f}")
    ingest_ratio = graph["docs_per_s"] / plain["docs_per_s"]
    p95_ratio = graph["p95_ms"] / plain["p95_ms"]
    print(f"ingest throughput ratio (MemoryManager / Chroma): {ingest_ratio:.2f}  (target >= 0.5)")
    print(f"search p95 ratio        (MemoryManager / Chroma): {p95_ratio:.2f}  (target <= 1.5)")
    floor = plain["p95_one_core_fewer_ms"] / plain["p95_ms"]
    print(f"  its floor on this machine (Chroma, query embedded with 1 core fewer, as MemoryManager does): {floor:.2f}")
    contract = graph["p95_hit_context_ms"] / plain["p95_ms"]
    print(f"  the hits' context alone (Chroma's hits read as MemoryHits, no other signal): {contract:.2f}")
    print(f"graph: {graph['stats']}")
    print(json.dumps({"plain": plain, "memory_manager": {k: v for k, v in graph.items() if k != "stats"},
                      "ingest_ratio": ingest_ratio, "search_p95_ratio": p95_ratio,
                      "search_p95_ratio_floor": floor, "search_p95_ratio_hit_context": contract}))  # fmt: skip


if __name__ == "__main__":
    main()
