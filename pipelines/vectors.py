"""Build static word vectors for the pipeline from the bundled all-MiniLM-L6-v2 model.

No pretrained word vectors can be downloaded here, so we derive them: every word of a
vocabulary (the most frequent English words from ``wordfreq`` plus the training corpora's
words) is embedded on its own by the sentence-transformer the product already ships, and the
384-dimensional embeddings are reduced with PCA to ``--dims`` so the table stays small. The
model is uncased, so each row is reachable under the lower, Title and UPPER forms of its word.

Usage: ``python pipelines/vectors.py --corpus pipelines/corpus --out pipelines/vectors``
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
import spacy
from spacy.tokens import DocBin
from spacy.vectors import Vectors


def build_vocabulary(corpus: Path, *, n_frequent: int, min_count: int) -> list[str]:
    """The lowercased words to embed: frequent English words, then corpus words, deduplicated."""
    from wordfreq import top_n_list

    nlp = spacy.blank("en")
    counts: Counter[str] = Counter()
    for path in sorted(corpus.rglob("*.spacy")):
        if path.stem in ("dev", "test"):
            continue  # the vocabulary must not peek at evaluation data
        for doc in DocBin().from_disk(path).get_docs(nlp.vocab):
            counts.update(t.lower_ for t in doc)
    words = list(dict.fromkeys(w.lower() for w in top_n_list("en", n_frequent)))
    seen = set(words)
    words += sorted(w for w, c in counts.items() if c >= min_count and w not in seen and w.strip())
    return words


def embed(words: list[str], *, batch_size: int = 512):
    from memory_graph.embeddings import load_sentence_transformer

    model = load_sentence_transformer()
    return model.encode(words, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True)


def pca(matrix, dims: int):
    centred = matrix - matrix.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    reduced = centred @ vt[:dims].T
    return (reduced / reduced.std()).astype("float32")


def build_vectors(corpus: Path, out: Path, *, dims: int, n_frequent: int, min_count: int) -> None:
    words = build_vocabulary(corpus, n_frequent=n_frequent, min_count=min_count)
    print(f"embedding {len(words)} words")
    table = pca(embed(words), dims)
    nlp = spacy.blank("en")
    vectors = Vectors(strings=nlp.vocab.strings, shape=table.shape)
    vectors.data[:] = table
    for row, word in enumerate(words):
        for form in {word, word.title(), word.upper()}:
            vectors.add(form, row=row)
    nlp.vocab.vectors = vectors
    out.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(out)
    print(f"{out}: {table.shape[0]} rows x {table.shape[1]} dims, {len(vectors.key2row)} keys")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parent
    parser.add_argument("--corpus", type=Path, default=here / "corpus")
    parser.add_argument("--out", type=Path, default=here / "vectors")
    parser.add_argument("--dims", type=int, default=128)
    parser.add_argument("--n-frequent", type=int, default=40_000)
    parser.add_argument("--min-count", type=int, default=2)
    args = parser.parse_args()
    build_vectors(args.corpus, args.out, dims=args.dims, n_frequent=args.n_frequent, min_count=args.min_count)


if __name__ == "__main__":
    main()
