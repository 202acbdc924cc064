"""Reading memories from files for ``memory-graph ingest``: text, markdown and JSONL."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from memory_graph.errors import InputError

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
JSONL_KEYS = {"text", "id", "external_id", "metadata", "observed_at", "source", "namespace"}


def read_text_file(path: Path) -> str:
    """The file's text; a one-line :class:`InputError` naming the file when it is not UTF-8."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})") from exc


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES | JSONL_SUFFIXES
            )
            if not found:
                raise InputError(f"{path}: no .txt, .md or .jsonl files in this directory")
            files += found
        elif path.is_file():
            if path.suffix.lower() not in TEXT_SUFFIXES | JSONL_SUFFIXES:
                raise InputError(f"{path}: unsupported file type {path.suffix or '(none)'}; use .txt, .md or .jsonl")
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or directory")
    return files


def read_memory_files(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Rows for ``MemoryManager.add_many`` from files; every file is read and checked first."""
    rows: list[dict[str, Any]] = []
    for path in expand_paths(paths):
        text = read_text_file(path)
        if path.suffix.lower() in JSONL_SUFFIXES:
            rows += _jsonl_rows(path, text)
            continue
        if not text.strip():
            raise InputError(f"{path}: file is empty")
        rows.append(
            {
                "text": text,
                "external_id": path.as_posix(),
                "observed_at": datetime.fromtimestamp(path.stat().st_mtime, UTC),
                "metadata": {"path": path.as_posix()},
                "source": "file",
            }
        )
    return rows


def _jsonl_rows(path: Path, text: str) -> list[dict[str, Any]]:
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from exc
        if not isinstance(record, dict):
            raise InputError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
        unknown = set(record) - JSONL_KEYS
        if unknown:
            raise InputError(f"{path}:{lineno}: unknown keys {sorted(unknown)}; allowed: {sorted(JSONL_KEYS)}")
        if not isinstance(record.get("text"), str) or not record["text"].strip():
            raise InputError(f"{path}:{lineno}: 'text' is missing or empty")
        row: dict[str, Any] = {"text": record["text"], "source": record.get("source") or "jsonl"}
        external_id = record.get("external_id", record.get("id"))
        if external_id is not None:
            row["external_id"] = str(external_id)
        for key in ("metadata", "observed_at", "namespace"):
            if record.get(key) is not None:
                row[key] = record[key]
        rows.append(row)
    if not rows:
        raise InputError(f"{path}: no records")
    return rows
