#!/usr/bin/env bash
# Train the shipped spaCy pipeline from ../shared/data (43 min measured on 2 cores):
# convert the corpora, derive static vectors, train syntax and NER side by side (one core each),
# assemble models/en_memory_graph (OUT= and MODEL= move the checkpoints and the result). Then: python pipelines/evaluate.py (scores + model card).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
OUT=${OUT:-pipelines/training}
MODEL=${MODEL:-models/en_memory_graph}
python pipelines/convert.py --data "$DATA" --out pipelines/corpus
python pipelines/vectors.py --corpus pipelines/corpus --out pipelines/vectors
mkdir -p "$OUT"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
python -m spacy train pipelines/configs/syntax.cfg -o "$OUT/syntax" > "$OUT/syntax.log" 2>&1 &
syntax=$!
python -m spacy train pipelines/configs/ner.cfg -o "$OUT/ner" > "$OUT/ner.log" 2>&1 &
ner=$!
wait $syntax || { tail -20 "$OUT/syntax.log"; exit 1; }
wait $ner || { tail -20 "$OUT/ner.log"; exit 1; }
python pipelines/assemble.py --syntax "$OUT/syntax/model-best" --ner "$OUT/ner/model-best" --out "$MODEL"
echo "trained: $MODEL (logs in $OUT/); next: python pipelines/evaluate.py"
