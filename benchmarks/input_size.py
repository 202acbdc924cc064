"""Cost against input size: ``add()`` of large texts and ``search()`` of long queries.

Time per kB of text and per word of query should not grow with the size (the acceptance of
issue 27: less than 1.5x from the smallest size to the largest), or the input is refused by a
documented limit. Sizes are interleaved (each round runs every size once, in a shuffled order)
and the medians are reported, so the other core's load falls on every size alike.

    python benchmarks/input_size.py [--kb 10 100 1000] [--words 100 1000 10000] [--rounds 3]

Texts are HotpotQA paragraphs (``../shared/data/hotpotqa_dev500/corpus.jsonl``) joined into
one text, each size a text of its own (else the ``examples/`` files); queries are runs of their
words. The store holds ``--docs`` paragraphs first, so searches find something. The query limit
(``max_query_chars``) is raised for the measurement, and the default limit is shown refusing the
largest query.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memory_graph import InputError, MemoryManager, Settings  # noqa: E402

HOTPOT = ROOT.parent / "shared" / "data" / "hotpotqa_dev500" / "corpus.jsonl"


def paragraphs() -> list[str]:
    if HOTPOT.exists():
        return [f"{d['title']}. {d['text']}" for d in map(json.loads, HOTPOT.read_text().splitlines())]
    from memory_graph.files import read_memory_files

    return [r["text"] for r in read_memory_files([ROOT / "examples"])]


def text_of(paras: list[str], chars: int, start: int) -> str:
    """About ``chars`` characters of paragraphs from ``start`` on, cut at a paragraph."""
    out: list[str] = []
    size = 0
    i = start
    while size < chars:
        out.append(paras[i % len(paras)])
        size += len(out[-1]) + 2
        i += 1
    return "\n\n".join(out)[:chars]


def timed(call) -> float:  # type: ignore[no-untyped-def]
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


def report(unit: str, sizes: list[int], times: dict[int, list[float]]) -> None:
    per = {n: statistics.median(times[n]) / n for n in sizes}
    for n in sizes:
        med = statistics.median(times[n])
        print(f"  {n:>6,} {unit}: median {med:8.3f} s ({len(times[n])} runs), {per[n] * 1000:8.3f} ms per {unit}")
    smallest, largest = sizes[0], sizes[-1]
    print(f"  time per {unit}, {largest:,} against {smallest:,}: {per[largest] / per[smallest]:.2f}x")
    if len(sizes) >= 3:
        a, b, c = sizes[0], sizes[-2], sizes[-1]
        ta, tb, tc = (statistics.median(times[n]) for n in (a, b, c))
        first = (tb - ta) / (b - a)
        last = (tc - tb) / (c - b)
        print(
            f"  marginal cost per {unit}: {first * 1000:.3f} ms ({a:,}->{b:,}), {last * 1000:.3f} ms ({b:,}->{c:,}): "
            f"{last / first:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb", type=int, nargs="+", default=[10, 100, 1000], help="text sizes for add(), kB")
    parser.add_argument("--words", type=int, nargs="+", default=[100, 1000, 10000], help="query sizes, words")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the smaller sizes (the largest text: 1)")
    parser.add_argument("--docs", type=int, default=300, help="paragraphs stored before the searches")
    args = parser.parse_args()
    paras = paragraphs()
    words = " ".join(paras).split()
    rnd = random.Random(27)
    kb, nwords = sorted(args.kb), sorted(args.words)
    longest = max(nwords) * 40  # characters: more than any run of that many words holds

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), max_text_chars=max(kb) * 1000, max_query_chars=longest)
        with MemoryManager(settings) as mm:
            mm.warm_up()
            mm.add_many([{"text": p} for p in paras[: args.docs]], namespace="bench")
            mm.search("warm up", namespace="bench")

            print(f"search() of long queries, {args.rounds * 2 + 1} rounds interleaved, {args.docs} paragraphs stored:")
            search_times: dict[int, list[float]] = {n: [] for n in nwords}
            for _ in range(args.rounds * 2 + 1):
                for n in rnd.sample(nwords, len(nwords)):
                    start = rnd.randrange(len(words) - n)
                    query = " ".join(words[start : start + n])
                    search_times[n].append(timed(lambda q=query: mm.search(q, namespace="bench", k=5)))
            report("word", nwords, search_times)

            print(f"add() of large texts, {args.rounds} rounds interleaved (the largest size once):")
            add_times: dict[int, list[float]] = {n: [] for n in kb}
            offset = args.docs
            for r in range(args.rounds):
                for n in rnd.sample(kb, len(kb)):
                    if n == max(kb) and r > 0:
                        continue
                    text = text_of(paras, n * 1000, offset)
                    offset += text.count("\n\n") + 1
                    add_times[n].append(timed(lambda t=text, i=offset: mm.add(t, namespace=f"big-{i}")))
                    print(f"    {n:,} kB: {add_times[n][-1]:.2f} s", flush=True)
            report("kB", kb, add_times)

    with tempfile.TemporaryDirectory() as tmp, MemoryManager(Settings(data_dir=Path(tmp))) as mm:
        text = text_of(paras, max(kb) * 1000, 0)
        try:
            mm.add(text, namespace="bench")
            print(f"default limit: a {max(kb):,} kB text is accepted")
        except InputError as exc:
            print(f"default limit: a {max(kb):,} kB text is refused: {exc}")
        query = " ".join(words[: max(nwords)])
        try:
            mm.search(query, namespace="bench")
            print(f"default limit: a {max(nwords):,}-word query ({len(query):,} characters) is accepted")
        except InputError as exc:
            print(f"default limit: a {max(nwords):,}-word query is refused: {exc}")


if __name__ == "__main__":
    main()
