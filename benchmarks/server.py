"""The HTTP server under load, and what HTTP costs a search.

Starts ``memory-graph serve`` on a loopback port (a fresh data dir), stores ``--seed`` HotpotQA
paragraphs through it, then:

1. load: ``--clients`` threads, each with its own :class:`MemoryGraphClient`, for ``--duration``
   seconds; each request is an add (a new paragraph) with probability ``--add-share``, else a
   search (a HotpotQA question, ``k=--k``). Printed: requests/s, p50/p95 per operation, errors.
2. one client against in-process: the server idle, a :class:`MemoryManager` opened in this process
   on the same data dir; each of ``--questions`` questions is searched both ways, the order
   alternating at random. Printed: p50/p95 of each and the p95 ratio (remote / in-process).
   Both are timed around the call (the client's includes HTTP and reading the JSON back).

    python benchmarks/server.py [--duration 60] [--clients 8] [--seed 1000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "hotpotqa_dev500"
KEY = "benchmark-admin-key"
NAMESPACE = "bench"


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMORY_GRAPH_")}
    env |= {
        "PYTHONPATH": str(ROOT),
        "MEMORY_GRAPH_DATA_DIR": str(data_dir),
        "MEMORY_GRAPH_API_KEYS": json.dumps({KEY: ["*"]}),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "memory_graph.cli", "serve", "--port", str(port)], env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if process.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise SystemExit(f"server did not start:\n{log.read_text()}")


def load_phase(url: str, args: argparse.Namespace, questions: list[str], fresh: list[str]) -> dict[str, object]:
    from memory_graph.client import MemoryGraphClient

    latencies: dict[str, list[float]] = {"search": [], "add": []}
    errors: list[str] = []
    lock = threading.Lock()
    pool = iter(fresh)
    deadline = time.perf_counter() + args.duration

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        with MemoryGraphClient(url, api_key=KEY, namespace=NAMESPACE) as mm:
            while time.perf_counter() < deadline:
                op = "add" if rng.random() < args.add_share else "search"
                with lock:
                    text = next(pool, None) if op == "add" else None
                if op == "add" and text is None:
                    op = "search"
                start = time.perf_counter()
                try:
                    if op == "add":
                        mm.add(text or "", external_id=f"load-{seed}-{start}")
                    else:
                        mm.search(rng.choice(questions), k=args.k)
                except Exception as exc:
                    with lock:
                        errors.append(f"{op}: {exc.__class__.__name__}: {exc}")
                    continue
                with lock:
                    latencies[op].append((time.perf_counter() - start) * 1000)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    done = sum(len(v) for v in latencies.values())
    return {
        "clients": args.clients,
        "seconds": round(elapsed, 1),
        "requests": done,
        "requests_per_s": round(done / elapsed, 1),
        "errors": len(errors),
        "error_examples": errors[:5],
        **{
            op: {"n": len(v), "p50_ms": round(percentile(v, 50), 1), "p95_ms": round(percentile(v, 95), 1)}
            for op, v in latencies.items()
        },
    }


def one_client_phase(url: str, data_dir: Path, args: argparse.Namespace, questions: list[str]) -> dict[str, object]:
    from memory_graph import MemoryManager, Settings
    from memory_graph.client import MemoryGraphClient

    rng = random.Random(7)
    remote_ms: list[float] = []
    local_ms: list[float] = []
    with (
        MemoryManager(Settings(data_dir=data_dir, namespace=NAMESPACE)) as local,
        MemoryGraphClient(url, api_key=KEY, namespace=NAMESPACE) as remote,
    ):
        local.warm_up()
        for q in questions[:20]:  # both sides warm (first reads of the store, connection set up)
            local.search(q, k=args.k)
            remote.search(q, k=args.k)
        different = 0
        for q in rng.sample(questions, min(args.questions, len(questions))):
            order = [("remote", remote), ("local", local)]
            rng.shuffle(order)
            ids = {}
            for name, mm in order:
                start = time.perf_counter()
                hits = mm.search(q, k=args.k)
                (remote_ms if name == "remote" else local_ms).append((time.perf_counter() - start) * 1000)
                ids[name] = [h.chunk_id for h in hits]
            different += ids["remote"] != ids["local"]
    return {
        "questions": len(remote_ms),
        "remote_p50_ms": round(percentile(remote_ms, 50), 2),
        "remote_p95_ms": round(percentile(remote_ms, 95), 2),
        "in_process_p50_ms": round(percentile(local_ms, 50), 2),
        "in_process_p95_ms": round(percentile(local_ms, 95), 2),
        "p95_ratio": round(percentile(remote_ms, 95) / percentile(local_ms, 95), 3),
        "p50_ratio": round(percentile(remote_ms, 50) / percentile(local_ms, 50), 3),
        "different_hits": different,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1000, help="paragraphs stored before the load")
    parser.add_argument("--add-share", type=float, default=0.2)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--questions", type=int, default=300, help="questions of the one-client comparison")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from memory_graph.client import MemoryGraphClient

    corpus = [json.loads(line)["text"] for line in (DATA / "corpus.jsonl").read_text().splitlines()]
    questions = [json.loads(line)["question"] for line in (DATA / "questions.jsonl").read_text().splitlines()]
    work = Path(tempfile.mkdtemp(prefix="mg-server-bench-"))
    process, url = start_server(work / "data", work / "server.log")
    try:
        started = time.perf_counter()
        with MemoryGraphClient(url, api_key=KEY, namespace=NAMESPACE, timeout=600) as mm:
            seed_rows = [{"text": t, "external_id": f"seed-{i}"} for i, t in enumerate(corpus[: args.seed])]
            mm.add_many(seed_rows, batch_size=64)
        seeded = {"memories": args.seed, "seconds": round(time.perf_counter() - started, 1)}
        print(f"seeded {args.seed} memories in {seeded['seconds']} s", file=sys.stderr)
        load = load_phase(url, args, questions, corpus[args.seed :])
        print(json.dumps({"load": load}), file=sys.stderr)
        one = one_client_phase(url, work / "data", args, questions)
        results = {"seed": seeded, "load": load, "one_client": one, "command": " ".join(sys.argv)}
        print(json.dumps(results, indent=2))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        process.terminate()
        process.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
