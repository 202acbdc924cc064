"""The crash harness's short seeded run (benchmarks/crash.py): SIGKILLed writers lose nothing.

Marked ``slow`` (minutes: every kill is followed by a check, a repair and a re-run), which CI
still runs (pyproject.toml's markers). The full runs' figures are in docs/performance.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _crash(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "crash.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMORY_GRAPH_")}
    env |= {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "crash.py"), *args, "--json", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert out.exists(), proc.stderr[-4000:]
    print(out.read_text())
    return json.loads(out.read_text())


def _assert_clean(summary: dict, kills: int) -> None:
    assert summary["kills"] == kills
    assert summary["kills_mid_operation"] > 0  # how many land inside an operation depends on the machine
    assert summary["acknowledged"] > 0
    assert summary["lost"] == 0 and summary["not_searchable"] == 0
    assert summary["orphans_after_repair"] == 0 and summary["duplicates_after_repair"] == 0
    assert summary["not_idempotent"] == 0 and summary["problems"] == []
    assert summary["ok"] is True


@pytest.mark.slow
def test_crash_sqlite_short_seeded_run(tmp_path: Path) -> None:
    summary = _crash(tmp_path, "--kills", "30", "--seed", "7")
    _assert_clean(summary, 30)
    assert set(summary["by_operation"]) >= {"add", "add_many", "import", "delete", "merge"}


@pytest.mark.slow
@pytest.mark.postgres
def test_crash_postgres_and_chroma_server_short_seeded_run(tmp_path: Path, postgres_server_url: str) -> None:
    from sqlalchemy.engine import make_url

    admin = make_url(postgres_server_url).set(database="postgres").render_as_string(hide_password=False)
    summary = _crash(tmp_path, "--kills", "8", "--seed", "8", "--backend", "postgres", "--postgres-url", admin)
    _assert_clean(summary, 8)
