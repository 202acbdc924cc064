#!/usr/bin/env bash
# The main job on the embedded default (SQLite + local Chroma under .memory_graph/demo):
# ingest the example chats and notes, then ask a few questions.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export MEMORY_GRAPH_DATA_DIR=${MEMORY_GRAPH_DATA_DIR:-.memory_graph/demo}
memory-graph ingest examples --namespace demo
for question in \
  "Where does Maya work?" \
  "Where does Maya live now?" \
  "Who is Priya and where does she live?" \
  "When is the meeting with Tom in Montreal?" \
  "Who did Maya travel to Kyoto with?"; do
  echo
  echo "=== $question"
  memory-graph query "$question" --namespace demo -k 3
done
echo
memory-graph stats --namespace demo
