"""Convert the open treebanks and NER corpora into spaCy training data.

Inputs (read-only, never copied into the repository):

* ``ewt/UD_English-EWT/*.conllu``: words, lemmas, UPOS, XPOS, features, heads, relations.
* ``ewt/UNER_English-EWT/*.iob2``: PER/ORG/LOC for the same sentences (matched by ``sent_id``).
* ``ner-extra/{wikigold,BTC,WNUT17}``: extra NER corpora, labels mapped to PER/ORG/LOC.

Outputs in ``--out`` (``DocBin`` files):

* ``ud/{train,dev,test}.spacy``: syntax docs of up to ``--n-sents`` consecutive sentences of one
  source document, so the parser learns sentence boundaries.
* ``ner/{dev,test}.spacy``, ``ner/train/ewt.spacy``: UNER docs in UNER's own tokenisation (it differs from UD master
  in a handful of sentences), whitespace taken from UD where the words agree.
* ``ner/train/extra.spacy``: the extra corpora, used for NER training only.

Usage: ``python pipelines/convert.py --data ../shared/data --out pipelines/corpus``
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import spacy
from spacy.tokens import Doc, DocBin, Span

# Our entity scheme: the three UNER labels under the names spaCy users expect.
UNER_LABELS = {"PER": "PERSON", "ORG": "ORG", "LOC": "LOC"}
# Extra corpora: everything not in this map becomes O (UNER has no MISC/product class either).
EXTRA_LABELS = {
    "PER": "PERSON",
    "ORG": "ORG",
    "LOC": "LOC",
    "person": "PERSON",
    "location": "LOC",
    "corporation": "ORG",
    "group": "ORG",
}


@dataclass
class Sentence:
    sent_id: str
    doc_id: str
    words: list[str]
    spaces: list[bool]
    lemmas: list[str] = field(default_factory=list)
    pos: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    morphs: list[str] = field(default_factory=list)
    heads: list[int] = field(default_factory=list)  # 0-based index into words
    deps: list[str] = field(default_factory=list)
    iob: list[str] = field(default_factory=list)


def read_conllu(path: Path) -> Iterator[Sentence]:
    """Yield the syntactic words of each sentence (multiword tokens expanded, empty nodes dropped)."""
    sent_id = doc_id = ""
    rows: list[list[str]] = []
    mwt_start = mwt_end = -1
    mwt_space = True
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if line.startswith("# newdoc id"):
            doc_id = line.split("=", 1)[1].strip()
        elif line.startswith("# sent_id"):
            sent_id = line.split("=", 1)[1].strip()
        elif line.startswith("#"):
            continue
        elif not line.strip():
            if rows:
                yield _sentence_from_rows(sent_id, doc_id or sent_id.rsplit("-", 1)[0], rows)
            rows = []
            mwt_start = mwt_end = -1
        else:
            cols = line.split("\t")
            if "-" in cols[0]:
                # A multiword token ("don't" -> do n't): its SpaceAfter belongs to its last word.
                mwt_start, mwt_end = (int(x) for x in cols[0].split("-"))
                mwt_space = "SpaceAfter=No" not in cols[9]
                continue
            if "." in cols[0]:
                continue  # empty nodes of the enhanced graph
            if mwt_start <= int(cols[0]) < mwt_end:
                cols[9] = "SpaceAfter=No"
            elif int(cols[0]) == mwt_end:
                cols[9] = "_" if mwt_space else "SpaceAfter=No"
            rows.append(cols)


def _sentence_from_rows(sent_id: str, doc_id: str, rows: list[list[str]]) -> Sentence:
    return Sentence(
        sent_id=sent_id,
        doc_id=doc_id,
        words=[r[1] for r in rows],
        spaces=["SpaceAfter=No" not in r[9] for r in rows],
        lemmas=[r[2] for r in rows],
        pos=[r[3] for r in rows],
        tags=[r[4] for r in rows],
        morphs=["" if r[5] == "_" else r[5] for r in rows],
        heads=[int(r[6]) - 1 if r[6] != "0" else i for i, r in enumerate(rows)],
        deps=["ROOT" if r[7] == "root" else r[7] for r in rows],
    )


def read_uner(path: Path) -> Iterator[Sentence]:
    sent_id = ""
    words: list[str] = []
    iob: list[str] = []
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if line.startswith("# sent_id"):
            sent_id = line.split("=", 1)[1].strip()
        elif line.startswith("#"):
            continue
        elif not line.strip():
            if words:
                yield Sentence(sent_id, sent_id.rsplit("-", 1)[0], words, [True] * len(words), iob=iob)
            words, iob = [], []
        else:
            cols = line.split("\t")
            words.append(cols[1])
            iob.append(_clean_iob(cols[2], UNER_LABELS))


def _clean_iob(tag: str, labels: dict[str, str]) -> str:
    """Map a corpus tag to IOB2 with our labels; unknown classes (OTH, MISC, stray B-O) become O."""
    if tag == "O" or "-" not in tag:
        return "O"
    prefix, label = tag.split("-", 1)
    if label not in labels:
        return "O"
    return f"{prefix}-{labels[label]}"


def read_conll_ner(path: Path, *, sep: str | None, iob1: bool = False) -> Iterator[Sentence]:
    """Read a two-column token/tag CoNLL file (wikigold is IOB1, BTC and WNUT17 are IOB2)."""
    words: list[str] = []
    tags: list[str] = []
    n = 0
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        cols = line.split(sep) if line.strip() else []
        if len(cols) < 2 or line.startswith("-DOCSTART-"):
            if words:
                n += 1
                iob = [_clean_iob(t, EXTRA_LABELS) for t in tags]
                if iob1:
                    iob = _iob1_to_iob2(iob)
                yield Sentence(
                    f"{path.stem}-{n}", f"{path.stem}-{n // 10}", words, [True] * len(words), iob=_repair_iob2(iob)
                )
            words, tags = [], []
            continue
        if not cols[0].strip():
            continue  # a few BTC/WNUT lines carry an empty or whitespace token
        words.append(cols[0].strip())
        tags.append(cols[-1])


def _iob1_to_iob2(iob: list[str]) -> list[str]:
    out = []
    prev = "O"
    for tag in iob:
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
        prev = tag
    return out


def _repair_iob2(iob: list[str]) -> list[str]:
    """An I- tag that does not continue an entity of its label starts one (the corpora have a few)."""
    return _iob1_to_iob2(iob)


def _ents(doc: Doc, iob: list[str]) -> list[Span]:
    spans = []
    start = None
    label = ""
    for i, tag in enumerate([*iob, "O"]):
        if start is not None and not (tag.startswith("I-") and tag[2:] == label):
            spans.append(Span(doc, start, i, label=label))
            start = None
        if tag.startswith("B-"):
            start, label = i, tag[2:]
    return spans


def _group(sentences: Iterable[Sentence], n_sents: int) -> Iterator[list[Sentence]]:
    group: list[Sentence] = []
    for sent in sentences:
        if group and (len(group) >= n_sents or sent.doc_id != group[0].doc_id):
            yield group
            group = []
        group.append(sent)
    if group:
        yield group


def syntax_doc(vocab, group: list[Sentence]) -> Doc:
    words, spaces, lemmas, pos, tags, morphs, heads, deps, sent_starts = ([] for _ in range(9))
    for sent in group:
        offset = len(words)
        words += sent.words
        spaces += sent.spaces
        spaces[-1] = True
        lemmas += sent.lemmas
        pos += sent.pos
        tags += sent.tags
        morphs += sent.morphs
        heads += [h + offset for h in sent.heads]
        deps += sent.deps
        sent_starts += [True] + [False] * (len(sent.words) - 1)
    return Doc(
        vocab,
        words=words,
        spaces=spaces,
        lemmas=lemmas,
        pos=pos,
        tags=tags,
        morphs=morphs,
        heads=heads,
        deps=deps,
        sent_starts=sent_starts,
    )


def ner_doc(vocab, group: list[Sentence]) -> Doc:
    words, spaces, iob = [], [], []
    for sent in group:
        words += sent.words
        spaces += sent.spaces
        spaces[-1] = True
        iob += sent.iob
    doc = Doc(vocab, words=words, spaces=spaces)
    doc.set_ents(_ents(doc, iob), default="outside")
    return doc


def convert(data: Path, out: Path, *, n_sents: int = 10) -> dict[str, int]:
    nlp = spacy.blank("en")
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    ewt = data / "ewt"
    for split in ("train", "dev", "test"):
        ud = list(read_conllu(ewt / "UD_English-EWT" / f"en_ewt-ud-{split}.conllu"))
        by_id = {s.sent_id: s for s in ud}
        uner = list(read_uner(ewt / "UNER_English-EWT" / f"en_ewt-ud-{split}.iob2"))
        for sent in uner:
            gold = by_id.get(sent.sent_id)
            if gold is not None and gold.words == sent.words:
                sent.spaces = gold.spaces
                sent.doc_id = gold.doc_id
        ner_path = out / "ner" / "train" / "ewt.spacy" if split == "train" else out / "ner" / f"{split}.spacy"
        _save([syntax_doc(nlp.vocab, g) for g in _group(ud, n_sents)], out / "ud" / f"{split}.spacy", counts)
        _save([ner_doc(nlp.vocab, g) for g in _group(uner, n_sents)], ner_path, counts)

    extra_dir = data / "ner-extra"
    extra: list[Sentence] = []
    extra += read_conll_ner(extra_dir / "wikigold" / "wikigold.conll.txt", sep=" ", iob1=True)
    for name in "abefgh":
        extra += read_conll_ner(extra_dir / "BTC" / f"{name}.conll", sep="\t")
    extra += read_conll_ner(extra_dir / "WNUT17" / "wnut17train.conll", sep="\t")
    extra += read_conll_ner(extra_dir / "WNUT17" / "emerging.dev.conll", sep="\t")
    extra += read_conll_ner(extra_dir / "WNUT17" / "emerging.test.annotated", sep="\t")
    _save([ner_doc(nlp.vocab, g) for g in _group(extra, n_sents)], out / "ner" / "train" / "extra.spacy", counts)
    return counts


def _save(docs: list[Doc], path: Path, counts: dict[str, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    DocBin(docs=docs, store_user_data=False).to_disk(path)
    name = f"{path.parent.name}/{path.name}"
    counts[name] = sum(len(d) for d in docs)
    ents = sum(len(d.ents) for d in docs)
    print(f"{name}: {len(docs)} docs, {counts[name]} words, {ents} entities")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "corpus")
    parser.add_argument("--n-sents", type=int, default=10)
    args = parser.parse_args()
    convert(args.data, args.out, n_sents=args.n_sents)


if __name__ == "__main__":
    main()
