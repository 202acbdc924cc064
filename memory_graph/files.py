"""Reading memories from files for ``memory-graph ingest``: text, markdown and JSONL."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import yaml

from memory_graph.errors import InputError
from memory_graph.temporal import normalize_date

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
        front, body = front_matter(text)
        if not body.strip():
            raise InputError(f"{path}: file holds front matter only")
        observed = note_date(front, body) or datetime.fromtimestamp(path.stat().st_mtime, UTC)
        rows.append(
            {
                "text": body,
                "external_id": path.as_posix(),
                "observed_at": observed,
                "metadata": {**{key: _json_value(value) for key, value in front.items()}, "path": path.as_posix()},
                "source": "file",
            }
        )
    return rows


_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL | re.MULTILINE)
#: Front-matter keys that give the note's own date, in order of preference.
DATE_KEYS = ("date", "created", "created_at")


def front_matter(text: str) -> tuple[dict[str, Any], str]:
    """A note's YAML front matter (between ``---`` lines at its start) and the text after it.
    Text whose first block is not a YAML mapping has no front matter: it is returned whole."""
    match = _FRONT_MATTER.match(text)
    if match is None:
        return {}, text
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return {}, text
    if not isinstance(data, dict):
        return {}, text
    return {str(key): value for key, value in data.items()}, text[match.end() :]


def note_date(front: dict[str, Any], body: str) -> datetime | None:
    """When a note was written, as it says: its front matter's ``date`` (or ``created``), else
    a first line that is a calendar day alone ("# 2025-03-14", "March 14, 2025"); ``None``
    when it says neither. A date without a time is taken as midnight UTC."""
    for key in DATE_KEYS:
        value = front.get(key)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, date):
            return datetime.combine(value, time(), UTC)
        if isinstance(value, str) and (day := _calendar_day(value)) is not None:
            return day
    first = next((line for line in body.splitlines() if line.strip()), "")
    return _calendar_day(first.strip().lstrip("#").strip())


def _calendar_day(text: str) -> datetime | None:
    # Absolute days only: with no base, "yesterday" would mean the day before the reading.
    if not re.search(r"\d{4}", text) or len(text) > 40:
        return None
    value = normalize_date(text, date(1, 1, 1))
    if value is None or value.granularity != "day":
        return None
    return datetime.combine(value.start, time(), UTC)


def _json_value(value: Any) -> Any:
    """A front-matter value as JSON metadata holds it: dates as ISO strings."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


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
