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

Then the knowledge updates (``benchmarks/data/updates/``): ten conversations, one user each (a
namespace each), in which people move, change jobs, marry and graduate, with plans that fell
through, negations, wishes and other people's changes among the turns. Reported per system, over
the top 20 of each question: for "current" questions, the share where a turn stating the current
value ranks above every turn stating a replaced one, and where one is the top hit; for
"previous", "when" and "as_of" questions, the share with a turn of the evidence in the top 5; for
"trap" questions, the share where a turn stating the true value ranks above every trap turn.

``--updates-dir DIR`` reads the update questions from another directory of the same format (a set
kept out of the repository, to check that the rules were not tuned to this one); ``--only-updates``
skips the conversation.

    python benchmarks/conversation.py [--session-times] [--no-updates | --only-updates] [--updates-dir DIR]
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

from benchmarks.retrieval import BM25, PlainChroma, Search, evaluate, manager_search, rrf  # noqa: E402
from memory_graph import MemoryManager, Settings, VectorStore  # noqa: E402
from memory_graph.vector_store import SentenceTransformerEmbedder, make_chroma_client  # noqa: E402

DATA = ROOT / "benchmarks" / "data" / "conversation"
UPDATES = ROOT / "benchmarks" / "data" / "updates"
KS = (5, 10)
UPDATE_COLUMNS = ["current>replaced", "current@1", "previous@5", "when@5", "as_of@5", "trap>"]
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


def rank_of(ranked: list[str], ids: list[str]) -> float:
    return min((ranked.index(i) for i in ids if i in ranked), default=float("inf"))


def score_updates(ranked: list[str], q: dict) -> tuple[str, float]:
    """The question's metric (its column) and whether this ranking passes it (1.0 or 0.0)."""
    best = rank_of(ranked, q["evidence"])
    kind = q["kind"]
    if kind == "current":
        return "current>replaced", float(best < rank_of(ranked, q.get("replaced", [])))
    if kind == "trap":
        return "trap>", float(best < rank_of(ranked, q.get("trap", [])))
    return f"{kind}@5", float(best < 5)


def evaluate_updates(systems: dict[str, dict[str, Search]], questions: list[dict]) -> dict[str, dict[str, float]]:
    """Per system (one search per conversation), the share of questions passing each metric."""
    results: dict[str, dict[str, float]] = {}
    for name, searches in systems.items():
        passed: dict[str, list[float]] = defaultdict(list)
        for q in questions:
            ranked = searches[q["conversation"]](q["question"], 20)
            column, ok = score_updates(ranked, q)
            passed[column].append(ok)
            if q["kind"] == "current":
                passed["current@1"].append(float(bool(ranked) and ranked[0] in q["evidence"]))
        results[name] = {c: sum(passed[c]) / len(passed[c]) for c in UPDATE_COLUMNS if passed[c]}
    return results


def run_updates(embedder: SentenceTransformerEmbedder, tmp: Path, data: Path = UPDATES) -> dict[str, dict[str, float]]:
    turns = [json.loads(line) for line in (data / "turns.jsonl").read_text().splitlines() if line.strip()]
    questions = [json.loads(line) for line in (data / "questions.jsonl").read_text().splitlines() if line.strip()]
    conversations = sorted({t["conversation"] for t in turns})
    settings = Settings(data_dir=tmp / "updates")
    vectors = VectorStore(make_chroma_client(path=settings.chroma_dir), embedder=embedder)
    systems: dict[str, dict[str, Search]] = {"Chroma (MiniLM)": {}, "BM25": {}, "MemoryManager": {}}
    with MemoryManager(settings, vectors=vectors) as mm:
        for c in conversations:
            mine = [t for t in turns if t["conversation"] == c]
            rows = [
                {"text": t["text"], "external_id": t["id"], "observed_at": t["observed_at"],
                 "metadata": {"speaker": t["speaker"]} if t["speaker"] != "note" else {}}
                for t in mine
            ]  # fmt: skip
            mm.add_many(rows, namespace=f"user-{c}")
            docs = {t["id"]: t["text"] for t in mine}
            systems["Chroma (MiniLM)"][c] = PlainChroma(docs, embedder, tmp / f"plain-{c}")
            systems["BM25"][c] = BM25(docs)
            systems["MemoryManager"][c] = manager_search(mm, namespace=f"user-{c}")
        results = evaluate_updates(systems, questions)
    kinds = defaultdict(int)
    for q in questions:
        kinds[q["kind"]] += 1
    title = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    print(
        f"Knowledge updates: {len(questions)} questions ({title}), {len(turns)} turns in {len(conversations)} conversations"
    )
    print(f"{'':22}" + "".join(f"{c:>17}" for c in UPDATE_COLUMNS))
    for name, r in results.items():
        print(f"{name:22}" + "".join(f"{r.get(c, float('nan')):>17.3f}" for c in UPDATE_COLUMNS))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--session-times", action="store_true", help="one time for all the turns of a session")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--no-updates", action="store_true", help="skip the knowledge-update questions")
    group.add_argument("--only-updates", action="store_true", help="run the knowledge-update questions only")
    parser.add_argument("--updates-dir", type=Path, default=UPDATES, help="the update questions' directory")
    args = parser.parse_args()
    embedder = SentenceTransformerEmbedder()
    if args.only_updates:
        with tempfile.TemporaryDirectory() as tmp:
            updates = run_updates(embedder, Path(tmp), args.updates_dir)
        print(json.dumps({"updates": updates}))
        return
    turns, questions = load()
    if args.session_times:
        first: dict[str, str] = {}
        for t in turns:
            t["observed_at"] = first.setdefault(t["session"], t["observed_at"])
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
        updates = {} if args.no_updates else run_updates(embedder, Path(tmp), args.updates_dir)
    print(json.dumps({"systems": results, "memory_manager_by_kind": by_kind, "updates": updates}))


if __name__ == "__main__":
    main()
