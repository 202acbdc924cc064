#!/usr/bin/env bash
# Set up and run the whole test suite: SQLite, PostgreSQL, Chroma, the shipped pipeline and the
# real embedding model. PostgreSQL comes from MEMORY_GRAPH_TEST_POSTGRES_URL (default: the local
# server, user postgres, trust auth); it is started if it is installed here and down.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "PostgreSQL is down; starting it" >&2
  for version in $(ls /etc/postgresql 2>/dev/null); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
python -m pytest "$@"
