"""Re-ingest throughput: records/s of ``memory-graph reingest chroma`` with 1 and with 2 workers.

A Chroma collection of N records is built with the installed chromadb (texts from
``../shared/data/hotpotqa_dev500/corpus.jsonl`` when present, else generated chat-like notes),
with vectors of an unnamed model, so every record is chunked, extracted *and* re-embedded: the
expensive path. ``--vectors reuse`` stores the bundled MiniLM's vectors and declares the model,
as a collection made with all-MiniLM-L6-v2 would: records kept as one chunk reuse their vector. Each configuration runs ``memory-graph reingest chroma`` in a fresh process into a
fresh target (embedded SQLite + Chroma by default, ``--database-url`` for PostgreSQL) and is timed
end to end, as an operator sees it: interpreter start, spawning the workers and loading the models
included. The steady-state rate (first claim to last batch, from the job table) is printed beside
it. Configurations are ``WORKERSxTHREADS``: ``1x1`` one worker with one torch thread (what each
of 2 workers gets on 2 cores), ``1x2`` one worker with 2 threads (a plain single-worker run on
2 cores), ``2x1`` two worker processes.

    python benchmarks/reingest.py [--records 5000] [--corpus hotpot|notes] [--configs 1x1 1x2 2x1]
                                  [--vectors reembed|reuse]

Each worker gets ``cores / workers`` torch threads, so 2 workers on 2 cores do not oversubscribe.
On SQLite writes serialise (one writer); the speed-up comes from extraction and embedding
running in parallel. Run it on an otherwise idle machine: the ratio means nothing beside a
training job.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from memory_graph import MemoryManager, Settings  # noqa: E402
from memory_graph.embeddings import DEFAULT_EMBEDDING_MODEL  # noqa: E402
from memory_graph.schema import ReingestBatch  # noqa: E402
from memory_graph.vector_store import SentenceTransformerEmbedder, make_chroma_client  # noqa: E402

HOTPOT = ROOT.parent / "shared" / "data" / "hotpotqa_dev500" / "corpus.jsonl"
PEOPLE = ["Alice", "Bruno", "Chen", "Dana", "Emil", "Farah", "Greta", "Hugo", "Ines", "Jonas"]
PLACES = ["Berlin", "Lisbon", "Nairobi", "Toronto", "Osaka", "Lyon", "Austin", "Krakow"]
ORGS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay"]


def load_texts(n: int, corpus: str) -> list[str]:
    if corpus == "hotpot" and HOTPOT.exists():
        docs = [json.loads(line) for line in HOTPOT.read_text().splitlines()]
        base = [f"{d['title']}. {d['text']}" for d in docs]
        return [base[i % len(base)] + ("" if i < len(base) else f" (copy {i // len(base)})") for i in range(n)]
    return [
        f"{PEOPLE[i % 10]} told me on day {i} that {PEOPLE[(i * 3 + 1) % 10]} moved to {PLACES[i % 8]} "
        f"to work for {ORGS[i % 6]}, and that the team will meet there in spring."
        for i in range(n)
    ]


def build_collection(path: Path, texts: list[str], *, reuse: bool) -> None:
    """The source collection: random vectors of an unnamed model (every record re-embedded), or
    with ``reuse`` the bundled MiniLM's vectors, declared in the collection metadata, so records
    stored as one chunk keep their vector and only extraction is paid."""
    rng = np.random.default_rng(0)
    embed = SentenceTransformerEmbedder(DEFAULT_EMBEDDING_MODEL) if reuse else None
    metadata = {"embedding_model": DEFAULT_EMBEDDING_MODEL} if reuse else None
    collection = make_chroma_client(path=path).create_collection("bench", embedding_function=None, metadata=metadata)
    for i in range(0, len(texts), 1000):
        part = texts[i : i + 1000]
        if embed is not None:
            vectors = embed(part)
        else:
            vectors = rng.normal(size=(len(part), 384)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        collection.add(
            ids=[f"rec-{i + j:06d}" for j in range(len(part))],
            documents=part,
            embeddings=vectors,
            metadatas=[{"n": i + j} for j in range(len(part))],
        )


def run(source: Path, workdir: Path, *, workers: int, threads: int, batch_size: int, database_url: str | None) -> dict:
    """One timed ``memory-graph reingest chroma`` in a fresh process, into a fresh target.

    ``threads``: torch threads of a single in-process worker (``OMP_NUM_THREADS``); worker
    processes always set cores / workers themselves.
    """
    name = f"{workers}w-{threads}t"
    settings = Settings(data_dir=workdir / f"target-{name}", database_url=database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMORY_GRAPH_")} | {"OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "memory_graph.cli", "--data-dir", str(settings.data_dir)]
    if database_url:
        command += ["--database-url", database_url]
    command += ["reingest", "chroma", "--path", str(source), "--collection", "bench", "--namespace", name]
    command += ["--workers", str(workers), "--batch-size", str(batch_size), "--json"]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{name} failed: {done.stderr.strip()[-2000:]}")
    report = json.loads(done.stdout)["collections"][0]
    with MemoryManager(settings) as mm:
        with mm.graph.engine.connect() as conn:
            first, last = conn.execute(
                select(func.min(ReingestBatch.claimed_at), func.max(ReingestBatch.done_at)).where(
                    ReingestBatch.job_id == report["job_id"]
                )
            ).one()
        stats = mm.stats(name)
    steady = (last - first).total_seconds()
    assert report["failed"] == 0 and report["stored"] == report["read"] == stats.documents, report
    return {
        "workers": workers,
        "threads_per_worker": threads if workers == 1 else max(1, (os.cpu_count() or 1) // workers),
        "records": report["read"],
        "wall_s": round(wall, 2),
        "records_per_s": round(report["read"] / wall, 2),
        "steady_records_per_s": round(report["read"] / steady, 2) if steady > 0 else None,
        "chunks": stats.chunks,
        "entities": stats.entities,
        "relations": stats.relations,
    }


def parse_config(text: str) -> tuple[int, int]:
    workers, _, threads = text.partition("x")
    return int(workers), int(threads or 1)


def main() -> None:
    cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--corpus", choices=["hotpot", "notes"], default="hotpot")
    parser.add_argument(
        "--vectors",
        choices=["reembed", "reuse"],
        default="reembed",
        help="source vectors of an unknown model (re-embedded) or of the bundled MiniLM (reused)",
    )
    parser.add_argument("--database-url", default=None, help="PostgreSQL target (a fresh database); default: SQLite")
    # 1 worker with one thread (the per-worker setting of the 2-worker run), 1 worker with every
    # core (what a plain single-worker run gets), then 2 workers with cores / 2 threads each.
    parser.add_argument(
        "--configs",
        nargs="+",
        type=parse_config,
        default=[(1, 1), (1, cores), (2, 1)] if cores > 1 else [(1, 1), (2, 1)],
        help="WORKERSxTHREADS runs (threads apply to 1 worker; worker processes get cores / workers)",
    )
    args = parser.parse_args()

    texts = load_texts(args.records, args.corpus)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source"
        build_collection(source, texts, reuse=args.vectors == "reuse")
        results = [run(source, Path(tmp), workers=w, threads=t, batch_size=args.batch_size, database_url=args.database_url) for w, t in args.configs]  # fmt: skip
    chars = sum(len(t) for t in texts)
    print(
        f"{len(texts)} records ({chars / len(texts):.0f} chars on average, {args.corpus}), vectors {args.vectors}, "
        f"batch {args.batch_size}, {cores} cores"
    )
    print(f"{'workers':>8}{'threads':>9}{'wall s':>10}{'records/s':>12}{'steady/s':>10}")
    for r in results:
        print(f"{r['workers']:>8}{r['threads_per_worker']:>9}{r['wall_s']:>10.1f}{r['records_per_s']:>12.1f}{r['steady_records_per_s'] or 0:>10.1f}")  # fmt: skip
    ratios = {}
    for two in (r for r in results if r["workers"] == 2):
        for base in (r for r in results if r["workers"] == 1):
            key = f"2w_vs_1w_{base['threads_per_worker']}t"
            ratios[key] = round(two["records_per_s"] / base["records_per_s"], 3)
            steady = (two["steady_records_per_s"] or 0) / (base["steady_records_per_s"] or 1)
            print(f"2 workers / 1 worker with {base['threads_per_worker']} thread(s): {ratios[key]:.2f}x end to end, "
                  f"{steady:.2f}x steady state  (target >= 1.6)")  # fmt: skip
    summary = {"records": len(texts), "corpus": args.corpus, "vectors": args.vectors, "results": results}
    print(json.dumps(summary | {"ratios": ratios}))


if __name__ == "__main__":
    main()
