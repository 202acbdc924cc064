"""Relations on the CaRB Open IE benchmark (dev split): our clauses beside OpenIE-5's published output.

Every dev sentence is parsed by the shipped pipeline on its own tokens (CaRB's sentences are
PTB-tokenised), and each clause of :mod:`memory_graph.openie` becomes one tuple
``(arg1; relation; arg2 ...)`` in the scorer's tabbed format, with the clause's confidence. The
graph's relations (what ``memory-graph`` stores between entities, with their surface predicate
and argument spans) are scored the same way. The scorer is CaRB's lenient tuple match, at the
best confidence threshold and over all tuples.

    python benchmarks/openie.py [--carb-dir DIR] [--scorer FILE] [--out DIR] [--limit N]

Writes ``clauses.tsv`` and ``relations.tsv`` to ``--out`` (a temporary directory by default).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memory_graph.extraction import Extractor, load_pipeline  # noqa: E402
from memory_graph.openie import clauses  # noqa: E402

SHARED = ROOT.parent / "shared"


def load_scorer(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("carb_score", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules["carb_score"] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def parse(nlp, words: list[str]):
    from spacy.tokens import Doc

    doc = Doc(nlp.vocab, words=words)
    for _, component in nlp.pipeline:
        doc = component(doc)
    return doc


def field(text: str) -> str:
    return " ".join(text.replace("\t", " ").split())


def clause_rows(sentence: str, doc) -> list[str]:
    rows = []
    for sent in doc.sents:
        for clause in clauses(sent):
            args = [clause.subject.text, *(a.text for a in clause.arguments)]
            if len(args) < 2 or not clause.relation_text:
                continue
            rows.append(
                "\t".join([sentence, f"{clause.confidence:.3f}", field(clause.relation_text), *map(field, args)])
            )
    return rows


def relation_rows(sentence: str, doc, extractor: Extractor) -> list[str]:
    """The graph's relations as tuples: the predicate as written and the arguments' spans."""
    extraction = extractor.from_doc(doc)
    text = doc.text
    rows = []
    for relation in extraction.relations:
        if relation.pattern == "cooccur":
            continue
        surface = relation.surface or relation.predicate
        source = text[relation.source_span[0] : relation.source_span[1]] if relation.source_span else ""
        target = text[relation.target_span[0] : relation.target_span[1]] if relation.target_span else ""
        source = source or extraction.entities[relation.source].text
        target = target or extraction.entities[relation.target].text
        rows.append("\t".join([sentence, f"{relation.confidence:.3f}", field(surface), field(source), field(target)]))
    return rows


def score(scorer: ModuleType, gold: dict, path: Path) -> dict:
    return scorer.evaluate(gold, scorer.read_tabbed(path)).summary()


def line(name: str, summary: dict) -> str:
    best, every = summary["best"], summary["all"]
    return (
        f"| {name} | {best['P']:.3f} | {best['R']:.3f} | **{best['F1']:.3f}** | {every['P']:.3f} | {every['R']:.3f} "
        f"| {every['F1']:.3f} | {summary['auc']:.3f} | {summary['tuples_per_sentence']:.2f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--carb-dir", type=Path, default=SHARED / "data" / "carb-dev")
    parser.add_argument("--scorer", type=Path, default=SHARED / "tools" / "carb_score.py")
    parser.add_argument("--out", type=Path, default=None, help="where to write the tuples (default: a temp dir)")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N sentences")
    args = parser.parse_args()
    for path in (args.carb_dir / "sentences_dev.txt", args.carb_dir / "gold_dev.tsv", args.scorer):
        if not path.is_file():
            raise SystemExit(f"{path}: not found (give CaRB's dev split with --carb-dir and its scorer with --scorer)")
    scorer = load_scorer(args.scorer)
    out = args.out or Path(tempfile.mkdtemp(prefix="openie-"))
    out.mkdir(parents=True, exist_ok=True)
    sentences = (args.carb_dir / "sentences_dev.txt").read_text(encoding="utf-8").splitlines()[: args.limit]
    gold = scorer.read_gold(args.carb_dir / "gold_dev.tsv")
    if args.limit is not None:
        keys = {scorer.sentence_key(s) for s in sentences}
        gold = {s: t for s, t in gold.items() if scorer.sentence_key(s) in keys}

    nlp = load_pipeline("en_memory_graph")
    extractor = Extractor(nlp)
    started = time.perf_counter()
    clause_lines: list[str] = []
    relation_lines: list[str] = []
    for sentence in sentences:
        doc = parse(nlp, sentence.split())
        clause_lines += clause_rows(sentence, doc)
        relation_lines += relation_rows(sentence, doc, extractor)
    elapsed = time.perf_counter() - started
    (out / "clauses.tsv").write_text("".join(f"{r}\n" for r in clause_lines), encoding="utf-8")
    (out / "relations.tsv").write_text("".join(f"{r}\n" for r in relation_lines), encoding="utf-8")

    print(
        f"CaRB dev: {len(sentences)} sentences, {sum(map(len, gold.values()))} gold tuples; parsed in {elapsed:.1f} s"
    )
    print("| system | P | R | F1 (best threshold) | P all | R all | F1 all | AUC | tuples/sentence |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(line("memory_graph.openie clauses", score(scorer, gold, out / "clauses.tsv")))
    print(line("graph relations (surface form)", score(scorer, gold, out / "relations.tsv")))
    openie5 = args.carb_dir / "dev_openie5_output.txt.gz"
    if openie5.is_file() and args.limit is None:
        print(line("OpenIE-5 (published output)", scorer.evaluate(gold, scorer.read_openie5(openie5)).summary()))
    print(f"tuples: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
