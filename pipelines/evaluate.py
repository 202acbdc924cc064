"""Evaluate the shipped pipeline and write its model card.

Accuracy is measured with gold tokenisation (the predicted docs are built from the treebank's
words), on the held-out EWT **test** split and, for reference, on dev (where models are selected):

* syntax on UD English-EWT: UPOS, XPOS, morphology, lemma, UAS/LAS, sentence boundaries;
* entities on UNER English-EWT: exact-span P/R/F for PERSON, ORG, LOC.

Speed is ``nlp.pipe`` over the raw test texts (our own tokenisation), median of three runs, in one
process (the components run on one core) and with ``n_process=2`` over the texts four times over
(both cores; the longer input amortises starting the second process).
Results go into ``meta.json`` (``performance``) and ``MODEL_CARD.md`` of the model directory.

Usage: ``python pipelines/evaluate.py [--model models/en_memory_graph]``
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import spacy
from spacy.tokens import Doc, DocBin
from spacy.training import Example

HERE = Path(__file__).resolve().parent


def examples(nlp, path: Path) -> list[Example]:
    gold_docs = DocBin().from_disk(path).get_docs(nlp.vocab)
    return [
        Example(Doc(nlp.vocab, words=[t.text for t in g], spaces=[bool(t.whitespace_) for t in g]), g)
        for g in gold_docs
    ]


def score(nlp, corpus: Path, split: str) -> dict[str, float]:
    ud = nlp.evaluate(examples(nlp, corpus / "ud" / f"{split}.spacy"))
    with nlp.select_pipes(enable=["ner"]):
        ner = nlp.evaluate(examples(nlp, corpus / "ner" / f"{split}.spacy"))
    out = {k: ud[k] for k in ("pos_acc", "tag_acc", "morph_acc", "lemma_acc", "dep_uas", "dep_las", "sents_f")}
    out.update({k: ner[k] for k in ("ents_p", "ents_r", "ents_f")})
    out["ents_per_type"] = {label: {k: round(v, 4) for k, v in s.items()} for label, s in ner["ents_per_type"].items()}
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


def speed(nlp, corpus: Path, *, processes: int = 1, repeat: int = 1, runs: int = 3) -> int:
    texts = [d.text for d in DocBin().from_disk(corpus / "ud" / "test.spacy").get_docs(nlp.vocab)] * repeat
    sum(len(d) for d in nlp.pipe(texts[:50]))  # warm-up
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        words = sum(len(d) for d in nlp.pipe(texts, batch_size=256, n_process=processes))
        rates.append(words / (time.perf_counter() - start))
    return round(statistics.median(rates))


def size_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1024 / 1024, 1)


def evaluate(model: Path, corpus: Path) -> dict:
    nlp = spacy.load(model)
    results = {"test": score(nlp, corpus, "test"), "dev": score(nlp, corpus, "dev")}
    results["speed_wps"] = speed(nlp, corpus)
    results["speed_wps_2_processes"] = speed(nlp, corpus, processes=2, repeat=4)
    results["size_mb"] = size_mb(model)
    results["machine"] = f"{platform.machine()}, {__import__('os').cpu_count()} CPUs, spaCy {spacy.__version__}"
    meta_path = model / "meta.json"
    meta = json.loads(meta_path.read_text())
    test = results["test"]
    meta["performance"] = {k: v for k, v in test.items() if k != "ents_per_type"} | {
        "ents_per_type": test["ents_per_type"],
        "speed_wps": results["speed_wps"],
        "speed_wps_2_processes": results["speed_wps_2_processes"],
        "dev": {k: v for k, v in results["dev"].items() if k != "ents_per_type"},
    }
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    (model / "MODEL_CARD.md").write_text(model_card(meta, results))
    return results


def model_card(meta: dict, r: dict) -> str:
    t, d = r["test"], r["dev"]
    per_type = "\n".join(
        f"| {label} | {s['p']:.3f} | {s['r']:.3f} | {s['f']:.3f} |" for label, s in sorted(t["ents_per_type"].items())
    )
    vectors = meta.get("vectors", {})
    return f"""# Model card: en_{meta["name"]} {meta["version"]}

{meta["description"]}

Pipeline: `{" → ".join(meta["pipeline"])}`. Load it with `spacy.load("models/en_{meta["name"]}")`;
memory-graph loads it by default (setting `spacy_model`, default `en_memory_graph`).

## Labels

* `ner`: **PERSON**, **ORG**, **LOC** (UNER's PER/ORG/LOC; LOC covers countries, cities and other
  places, i.e. OntoNotes' GPE + LOC + FAC). Extra corpora were mapped: wikigold/BTC `PER/ORG/LOC`;
  WNUT17 `person → PERSON`, `location → LOC`, `corporation` and `group → ORG`; everything else
  (MISC, product, creative-work, UNER's OTH) is not an entity.
* `entity_ruler` (after `ner`, never overwriting it): DATE, TIME, MONEY, PERCENT, EMAIL, URL, PHONE.
* `parser`: Universal Dependencies relations of English-EWT (`nsubj`, `obj`, `obl`, `nmod:poss`,
  `appos`, `cop`, ...); it also sets sentence boundaries.
* `tagger`: Penn Treebank tags (XPOS); `morphologizer`: UPOS and UD features; `lemmatizer`: rule
  lemmatizer on UPOS with the English tables of spacy-lookups-data, plus an attribute ruler for
  auxiliaries.

## Accuracy (gold tokenisation)

| metric | test | dev |
|---|---|---|
| NER P / R / F (PERSON, ORG, LOC; exact span) | {t["ents_p"]:.3f} / {t["ents_r"]:.3f} / **{t["ents_f"]:.3f}** | {d["ents_p"]:.3f} / {d["ents_r"]:.3f} / {d["ents_f"]:.3f} |
| LAS | **{t["dep_las"]:.3f}** | {d["dep_las"]:.3f} |
| UAS | {t["dep_uas"]:.3f} | {d["dep_uas"]:.3f} |
| UPOS | **{t["pos_acc"]:.3f}** | {d["pos_acc"]:.3f} |
| XPOS | {t["tag_acc"]:.3f} | {d["tag_acc"]:.3f} |
| morphology (all features) | {t["morph_acc"]:.3f} | {d["morph_acc"]:.3f} |
| lemma | {t["lemma_acc"]:.3f} | {d["lemma_acc"]:.3f} |
| sentence boundaries F | {t["sents_f"]:.3f} | {d["sents_f"]:.3f} |

Test NER per type:

| label | P | R | F |
|---|---|---|---|
{per_type}

Test = UD English-EWT test (syntax) and UNER English-EWT test (entities): never used for training or
model selection; the best checkpoint of each trained component was selected on dev.

## Speed and size

* {r["speed_wps_2_processes"]:,} words/s with `nlp.pipe(texts, n_process=2)` on 2 cores and
  {r["speed_wps"]:,} words/s in one process (one core), medians of 3 runs over the raw EWT test
  texts with our own tokenisation; {r["machine"]}.
* {r["size_mb"]} MB on disk; {vectors.get("vectors", 0):,} static vectors of {vectors.get("width", 0)} dimensions
  ({vectors.get("keys", 0):,} keys).

## Training data

| data | use | licence |
|---|---|---|
| UD English-EWT r2.16 (train 12,544 sentences) | tagger, morphologizer, parser | CC BY-SA 4.0 |
| UNER English-EWT (train) | NER | CC BY-SA 4.0 |
| wikigold, Broad Twitter Corpus, WNUT17 (train+dev+test) | NER (extra data) | CC BY 4.0 |
| all-MiniLM-L6-v2 word embeddings, PCA to 128 dims | static vectors for every component | Apache-2.0 |
| spacy-lookups-data English lemma tables | lemmatizer | MIT |

Static vectors: the bundled sentence-transformer embeds each of the 40,000 most frequent English
words (`wordfreq`) and the training corpora's words on its own; PCA reduces them to 128 dimensions.
This is how the pipeline gets pretrained word features without downloading any.

Recipe and exact commands: `pipelines/README.md` (`bash pipelines/train.sh`, then
`python pipelines/evaluate.py`). Training is deterministic (seed 0, one thread per component).

## Attribution and licence

This pipeline is a derivative of the following works and is distributed under **CC BY-SA 4.0**:

* Universal Dependencies English Web Treebank (UD_English-EWT), Natalia Silveira, Timothy Dozat,
  Marie-Catherine de Marneffe, Samuel Bowman, Miriam Connor, John Bauer and Christopher D. Manning
  (2014), and the Universal Dependencies contributors. CC BY-SA 4.0.
* Universal NER English-EWT (UNER v1), Stephen Mayhew, Terra Blevins, Shuheng Liu, Marek Šuppa,
  Hila Gonen, Joseph Marvin Imperial, Börje F. Karlsson, Peiqin Lin, Nikola Ljubešić, LJ Miranda,
  Barbara Plank, Arij Riabi and Yuval Pinter (NAACL 2024). CC BY-SA 4.0.
* wikigold (Balasuriya et al., 2009), Broad Twitter Corpus (Derczynski, Bontcheva and Roberts,
  COLING 2016), WNUT17 Emerging and Rare Entities (Derczynski et al., 2017). CC BY 4.0.

No changes were made to the annotations except the label mapping described above; the UNER train
file is the 2022 release (its OTH and stray B-O tags were mapped to O).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=HERE.parent / "models" / "en_memory_graph")
    parser.add_argument("--corpus", type=Path, default=HERE / "corpus")
    args = parser.parse_args()
    results = evaluate(args.model, args.corpus)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
