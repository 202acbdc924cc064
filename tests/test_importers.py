"""Importers of legacy memory stores: a TOML memory log (seed 000), a SQLite memory database
(seed 002), daily markdown files (seed 004) and JSONL, through the same re-ingest job.

The fixtures under ``tests/fixtures/legacy/`` are shaped like those stores; each test checks that
the counts match the source exactly, that a second import changes nothing, and that bad records
are skipped and reported while the rest goes in.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from memory_graph import InputError, MemoryManager
from memory_graph.cli import cli
from memory_graph.reingest import ImportSpec, ReingestReport, run_reingest

LEGACY = Path(__file__).parent / "fixtures" / "legacy"
SQLITE_TABLES = ("memories", "knowledge_clusters", "learning_patterns", "user_preferences", "conversation_sessions")


@pytest.fixture
def memory_db(tmp_path: Path) -> Path:
    """The seed-002-shaped SQLite database, built from its SQL dump."""
    path = tmp_path / "memory.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript((LEGACY / "ai_memory.sql").read_text())
    return path


def import_three_times(
    manager: MemoryManager, kind: str, path: Path, namespace: str
) -> tuple[ReingestReport, ReingestReport]:
    """Dry run (stores nothing), import, import again (stores nothing twice); return the last two."""
    spec = ImportSpec(kind, path)
    dry = run_reingest(spec, manager=manager, namespace=namespace, dry_run=True)
    assert dry.stored == 0 and dry.accounted and manager.stats(namespace).documents == 0
    first = run_reingest(spec, manager=manager, namespace=namespace)
    assert first.would_store == 0 and dry.would_store == first.stored
    stats = manager.stats(namespace)
    second = run_reingest(spec, manager=manager, namespace=namespace)
    assert second.stored == 0 and second.read == first.read and second.skipped == first.read - first.failed
    assert second.skipped_reasons.get("already stored") == first.stored
    assert manager.stats(namespace) == stats
    assert first.accounted and second.accounted and first.complete
    assert stats.documents == first.stored and stats.vectors == stats.chunks
    return first, second


def hit(manager: MemoryManager, query: str, namespace: str):
    return manager.search(query, namespace=namespace, k=1)[0]


def test_importers_toml_memory_log(manager: MemoryManager) -> None:
    path = LEGACY / "memory_log.toml"
    source = tomllib.loads(path.read_text())
    first, _ = import_three_times(manager, "toml", path, "toml")
    assert first.read == len(source["entries"]) + len(source["reflections"]) == 7
    assert (first.stored, first.skipped, first.failed) == (5, 2, 0)
    assert {p["id"] for p in first.problems} == {"e-005", "memory_log.toml#reflections[1]"}
    assert "no text" in next(p["reason"] for p in first.problems if p["id"] == "e-005")

    pottery = hit(manager, "Who is taking a pottery class?", "toml")
    assert pottery.external_id == "e-001" and pottery.observed_at == datetime(2025, 8, 2, 18, 30, tzinfo=UTC)
    assert (
        pottery.metadata.items()
        >= {"type": "reflection", "importance": 0.7, "tags": ["maya", "hobby"], "section": "entries"}.items()
    )
    jonas = hit(manager, "Where does Jonas work?", "toml")
    assert jonas.external_id == "e-002" and jonas.metadata["emotional_context"] == {"mood": "curious", "intensity": 0.4}
    assert hit(manager, "lighthouse dream", "toml").external_id == "memory_log.toml#entries[3]"  # no id: its position
    assert hit(manager, "trip to Kyoto", "toml").metadata["section"] == "reflections"


def test_importers_sqlite_memory_database(manager: MemoryManager, memory_db: Path) -> None:
    before = hashlib.sha256(memory_db.read_bytes()).hexdigest()
    with sqlite3.connect(memory_db) as conn:
        rows = sum(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in SQLITE_TABLES)
    first, _ = import_three_times(manager, "sqlite", memory_db, "sqlite")
    assert first.read == rows == 11
    assert (first.stored, first.skipped, first.failed) == (9, 2, 0)
    assert {p["id"] for p in first.problems} == {"7f1c2a10-0004", "conversation_sessions:cs-2"}
    assert any("schema_version" in note for note in first.notes)
    assert hashlib.sha256(memory_db.read_bytes()).hexdigest() == before  # opened read-only

    blog = hit(manager, "How often should the blog publish?", "sqlite")
    assert blog.external_id == "7f1c2a10-0001" and blog.observed_at == datetime(2025, 11, 1, 9, tzinfo=UTC)
    assert (
        blog.metadata.items()
        >= {
            "memory_type": "preference",
            "tags": ["content", "schedule"],
            "agent": "content_agent",
            "source_table": "memories",
        }.items()
    )
    assert hit(manager, "Who is the main competitor?", "sqlite").metadata["tags"] == ["market", "competitors"]
    assert hit(manager, "preferred tone", "sqlite").external_id == "user_preferences:tone"
    assert hit(manager, "When does Dana review drafts?", "sqlite").external_id == "learning_patterns:lp-1"


def test_importers_markdown_daily_files(manager: MemoryManager) -> None:
    root = LEGACY / "workspace"
    files = sorted((root / "memory").rglob("*.md"))
    first, _ = import_three_times(manager, "markdown", root, "md")
    assert first.read == len(files) == 6
    assert (first.stored, first.skipped, first.failed) == (3, 3, 0)
    reasons = {p["id"]: p["reason"] for p in first.problems}
    assert set(reasons) == {"memory/2025-01-27.md", "memory/2025-99-99.md", "memory/2025-02-10-empty.md"}
    assert "old copy of memory/2025/01/2025-01-27.md" in reasons["memory/2025-01-27.md"]
    assert "invalid date" in reasons["memory/2025-99-99.md"] and "empty" in reasons["memory/2025-02-10-empty.md"]

    sofia = hit(manager, "Where does Sofia work?", "md")  # the migrated (newer) copy won
    assert sofia.external_id == "memory/2025-01-27.md" and "Karolinska" in sofia.text
    assert sofia.observed_at == datetime(2025, 1, 27, tzinfo=UTC) and sofia.metadata["layout"] == "monthly"
    lars = hit(manager, "Lars moving to Zurich", "md")
    assert lars.metadata.items() >= {"date": "2025-01-26", "slug": "conversation", "layout": "flat"}.items()
    # The memory directory itself works as the path, with the same ids (nothing stored twice).
    again = run_reingest(ImportSpec("markdown", root / "memory"), manager=manager, namespace="md")
    assert again.stored == 0 and manager.stats("md").documents == 3


def test_importers_jsonl_skips_bad_lines(manager: MemoryManager) -> None:
    path = LEGACY / "memories.jsonl"
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    first, _ = import_three_times(manager, "jsonl", path, "jsonl")
    assert first.read == len(lines) == 6
    assert (first.stored, first.skipped, first.failed) == (4, 2, 0)
    reasons = {p["id"]: p["reason"] for p in first.problems}
    assert "invalid JSON" in reasons["memories.jsonl:6"] and "no 'text'" in reasons["j-6"]
    offsite = hit(manager, "Where is the team offsite?", "jsonl")
    assert offsite.external_id == "j-3" and offsite.metadata["topic"] == "work"
    assert offsite.observed_at == datetime(2025, 1, 1, 12, tzinfo=UTC)
    assert hit(manager, "Priya moved to Melbourne", "jsonl").metadata["speaker"] == "Priya"


def read_records(kind: str, path: Path) -> list:
    return ImportSpec(kind, path).open().records


# -- bad input: one line naming the file ---------------------------------------------------------


def test_importers_unreadable_stores_raise_one_line_errors(tmp_path: Path, memory_db: Path) -> None:
    broken = tmp_path / "memory_log.toml"
    broken.write_text('[[entries]]\ncontent = "unterminated\n')
    with pytest.raises(InputError, match=r"memory_log\.toml: invalid TOML"):
        read_records("toml", broken)
    with pytest.raises(InputError, match="no such file"):
        read_records("jsonl", tmp_path / "missing.jsonl")
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"\x00garbage" * 512)
    with pytest.raises(InputError, match=r"corrupt\.db: not a SQLite database, or corrupt"):
        read_records("sqlite", corrupt)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (x TEXT)")
    with pytest.raises(InputError, match=r"other\.db: no memories table .* found notes"):
        read_records("sqlite", other)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(InputError, match=r"empty\.jsonl: no records"):
        read_records("jsonl", empty)
    no_markdown = tmp_path / "workspace"
    no_markdown.mkdir()
    (no_markdown / "notes.txt").write_text("not markdown")
    with pytest.raises(InputError, match="workspace: no markdown memory files"):
        read_records("markdown", no_markdown)

    holder = sqlite3.connect(memory_db, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(InputError, match=r"memory\.sqlite3: database is locked"):
            read_records("sqlite", memory_db)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert len(read_records("sqlite", memory_db)) == 11  # readable again once the lock is gone


def test_importers_cli_reports_and_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--data-dir", str(tmp_path / "data"), "import"]
    dry = runner.invoke(cli, [*base, "jsonl", str(LEGACY / "memories.jsonl"), "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    report = json.loads(dry.stdout)
    assert (report["read"], report["would_store"], report["stored"], report["skipped"]) == (6, 4, 0, 2)
    text = runner.invoke(cli, [*base, "markdown", str(LEGACY / "workspace"), "--dry-run"])
    assert (
        text.exit_code == 0 and "read 6, would store 3, skipped 3, failed 0 (every record accounted for)" in text.stdout
    )

    broken = tmp_path / "broken.toml"
    broken.write_text("entries = [\n")
    for args, fragment in (
        (["toml", str(broken)], "broken.toml: invalid TOML"),
        (["sqlite", str(tmp_path / "nope.db")], "nope.db: no such file"),
        (["markdown", str(tmp_path / "nothing")], "nothing: no such file or directory"),
    ):
        result = runner.invoke(cli, [*base, *args])
        assert result.exit_code == 2, result.output
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr
