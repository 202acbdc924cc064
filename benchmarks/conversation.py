"""Retrieval on a multi-session conversation between two friends: MemoryManager against its baselines.

``benchmarks/data/conversation/``: about 250 chat turns in 12 sessions over seven months, each with
its speaker and time, and 60 questions that name a speaker in the third person ("When did Daniel
adopt his dog?"), each with the turns that answer it. Kinds: single-hop, multi-hop (two or three
turns), temporal (the answer is a date worked out from the turn's time and "last weekend"), and
speaker (both friends did a similar thing; only the named one's turn answers). We wrote it; it is
a development set, small enough to read, not a benchmark to tune to.

Plain Chroma and BM25 index the turns' text as it is; MemoryManager gets each turn's speaker and
time as ``metadata`` and ``observed_at``, as a chat backend would store them. Reported per system:
recall@5/10, full@5/10 (every evidence turn found), MRR; and per kind for MemoryManager.
``--session-times`` stamps every turn with its session's first time instead, as transcripts
imported a session at a time often are: the order of the turns is then only the order given.

    python benchmarks/conversation.py [--session-times]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.retrieval import BM25, PlainChroma, evaluate, manager_search, rrf  # noqa: E402
from memory_graph import MemoryManager, Settings, VectorStore  # noqa: E402
from memory_graph.vector_store import SentenceTransformerEmbedder, make_chroma_client  # noqa: E402

DATA = ROOT / "benchmarks" / "data" / "conversation"
KS = (5, 10)
COLUMNS = [f"recall@{k}" for k in KS] + [f"full@{k}" for k in KS] + ["mrr"]


def load() -> tuple[list[dict], list[dict]]:
    turns = [json.loads(line) for line in (DATA / "turns.jsonl").read_text().splitlines() if line.strip()]
    questions = [json.loads(line) for line in (DATA / "questions.jsonl").read_text().splitlines() if line.strip()]
    for q in questions:
        q["gold_ids"] = q["evidence"]
    return turns, questions


def table(title: str, results: dict[str, dict[str, float]]) -> None:
    print(title)
    print(f"{'':22}" + "".join(f"{c:>10}" for c in COLUMNS))
    for name, r in results.items():
        print(f"{name:22}" + "".join(f"{r[c]:>10.3f}" for c in COLUMNS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--session-times", action="store_true", help="one time for all the turns of a session")
    args = parser.parse_args()
    turns, questions = load()
    if args.session_times:
        first: dict[str, str] = {}
        for t in turns:
            t["observed_at"] = first.setdefault(t["session"], t["observed_at"])
    embedder = SentenceTransformerEmbedder()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "mg")
        vectors = VectorStore(make_chroma_client(path=settings.chroma_dir), embedder=embedder)
        with MemoryManager(settings, vectors=vectors) as mm:
            mm.add_many(
                [
                    {
                        "text": t["text"],
                        "external_id": t["id"],
                        "metadata": {"speaker": t["speaker"], "session": t["session"]},
                        "observed_at": t["observed_at"],
                    }
                    for t in turns
                ],
                namespace="chat",
            )
            docs = {t["id"]: t["text"] for t in turns}
            chroma = PlainChroma(docs, embedder, Path(tmp) / "plain")
            bm25 = BM25(docs)
            memory = manager_search(mm, namespace="chat")
            systems = {
                "Chroma (MiniLM)": chroma,
                "BM25": bm25,
                "RRF(Chroma, BM25)": rrf(chroma, bm25),
                "MemoryManager": memory,
            }
            results = {name: evaluate(search, questions, KS) for name, search in systems.items()}
            kinds: dict[str, list[dict]] = defaultdict(list)
            for q in questions:
                kinds[q["category"]].append(q)
            by_kind = {f"{kind} ({len(qs)})": evaluate(memory, qs, KS) for kind, qs in sorted(kinds.items())}
    sessions = len({t["session"] for t in turns})
    table(f"Conversation: {len(questions)} questions, {len(turns)} turns in {sessions} sessions", results)
    table("MemoryManager by kind of question", by_kind)
    print(json.dumps({"systems": results, "memory_manager_by_kind": by_kind}))


if __name__ == "__main__":
    main()
