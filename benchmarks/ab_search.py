"""Search latency of this checkout against another one, on the same store, in the same run.

Each checkout's code runs in a process of its own (``--serve``), on its own copy of one
HotpotQA store built by ``benchmarks/retrieval.py --data-dir DIR``. The driver sends every
question to both, in an order that alternates at random, and each process times its own
``MemoryManager.search`` (no pipe in the timing). Printed: p50/p95 per checkout, their ratio,
and on how many questions the two returned different hits (a behaviour-preserving change: 0).
Where the other checkout's schema or extraction differs, ``--other-data-dir`` gives it a store
of its own, built from the same paragraphs by that checkout.

    git worktree add ../base <commit>
    python benchmarks/ab_search.py --other ../base --data-dir DIR [--other-data-dir DIR2] [--k 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "hotpotqa_dev500"


def serve(data_dir: Path, k: int) -> None:
    """One checkout's side: answer ``question`` lines with ``{"ms", "ids"}`` lines."""
    sys.path.insert(0, str(Path.cwd()))
    from memory_graph import MemoryManager, Settings

    with MemoryManager(Settings(data_dir=data_dir, namespace="hotpot")) as mm:
        mm.warm_up()
        print("ready", flush=True)
        for line in sys.stdin:
            question = json.loads(line)
            start = time.perf_counter()
            hits = mm.search(question, namespace="hotpot", k=k)
            ms = (time.perf_counter() - start) * 1000
            print(json.dumps({"ms": ms, "ids": [h.chunk_id for h in hits]}), flush=True)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", type=Path, help="the other checkout (a git worktree)")
    parser.add_argument("--data-dir", type=Path, required=True, help="a store built by benchmarks/retrieval.py")
    parser.add_argument(
        "--other-data-dir", type=Path, default=None, help="the other checkout's own store (its schema may be older)"
    )
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.data_dir, args.k)
        return
    questions = [json.loads(line)["question"] for line in (DATA / "questions.jsonl").read_text().splitlines()]
    questions = questions[: args.questions]
    with tempfile.TemporaryDirectory() as tmp:
        sides = {}
        stores = {"this": args.data_dir, "other": args.other_data_dir or args.data_dir}
        for name, checkout in (("this", ROOT), ("other", args.other.resolve())):
            copy = Path(tmp) / name
            shutil.copytree(stores[name], copy)
            command = [sys.executable, str(ROOT / "benchmarks" / "ab_search.py"), "--serve", "--data-dir", str(copy),
                       "--k", str(args.k)]  # fmt: skip
            # One string-hash seed for both: sets of ids iterate alike, so equal code gives equal hits.
            env = {**os.environ, "PYTHONHASHSEED": "0"}
            proc = subprocess.Popen(
                command, cwd=checkout, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            sides[name] = proc
        rng = random.Random(args.seed)
        times: dict[str, list[float]] = {name: [] for name in sides}
        differ = set()
        seen: dict[tuple[str, int], set[str]] = {}
        for _ in range(args.rounds):
            for i, question in enumerate(questions):
                ids = {}
                for name in rng.sample(list(sides), len(sides)):
                    proc = sides[name]
                    proc.stdin.write(json.dumps(question) + "\n")  # type: ignore[union-attr]
                    proc.stdin.flush()  # type: ignore[union-attr]
                    answer = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
                    times[name].append(answer["ms"])
                    ids[name] = answer["ids"]
                    seen.setdefault((name, i), set()).add(json.dumps(answer["ids"]))
                if ids["this"] != ids["other"]:
                    differ.add(i)
        for proc in sides.values():
            proc.stdin.close()  # type: ignore[union-attr]
            proc.wait(timeout=60)
    print(f"{len(questions)} questions x {args.rounds} rounds, k={args.k}, interleaved at random")
    for name, values in times.items():
        print(f"{name:6} p50 {statistics.median(values):6.1f} ms   p95 {percentile(values, 95):6.1f} ms")
    ratio = percentile(times["this"], 95) / percentile(times["other"], 95)
    unstable = {name: sum(len(v) > 1 for (side, _), v in seen.items() if side == name) for name in times}
    print(f"p95 this / other: {ratio:.3f}; questions with different hits: {len(differ)} {sorted(differ)}")
    print(f"questions whose hits changed between rounds of one checkout: {unstable}")


if __name__ == "__main__":
    main()
