"""Legacy memory stores as records for re-ingest: TOML logs, SQLite databases, markdown diaries, JSONL.

Each reader turns a store into :class:`~memory_graph.reingest.sources.SourceRecord` s (one per memory,
with a stable id that becomes the memory's ``external_id``), so an import runs through the same
resumable, idempotent job as a Chroma re-ingest (:func:`memory_graph.reingest.runner.run_reingest`).
A whole store that cannot be read (missing, malformed TOML, a locked or corrupt SQLite file) is a
one-line :class:`InputError` naming the file; a single bad record becomes a record with a
``problem``, which the job skips and reports while the rest goes in.

Formats (from the stores our users run today):

- ``toml``: a memory log such as ``memory_log.toml``: ``[[entries]]``, ``reflections``, or any
  top-level lists (all of them are read); ``type``, ``importance``, ``tags`` and the rest of an
  entry become metadata, ``timestamp`` (or ``created_at``/``date``) its ``observed_at``. A
  directory imports every ``*.toml`` in it (the split ``*_memory.toml`` stores, for example).
- ``sqlite``: a memory database with a ``memories`` table (``id, content, memory_type,
  importance, confidence, created_at, last_accessed, access_count, tags, related_memories,
  metadata, embedding``) and the tables beside it that hold memories: ``knowledge_clusters``,
  ``learning_patterns``, ``user_preferences``, ``conversation_sessions``. Opened read-only.
- ``markdown``: daily memory files, flat (``memory/YYYY-MM-DD*.md``) or by month
  (``memory/YYYY/MM/YYYY-MM-DD*.md``); the date in the name is ``observed_at``. When a flat file
  was migrated and both copies exist, the ``YYYY/MM`` copy wins and the old one is skipped.
- ``jsonl``: one JSON object per line with ``id``, ``text``, ``metadata`` (and optionally
  ``observed_at``); other keys are kept as metadata.
"""

from __future__ import annotations

import json
import re
import sqlite3
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from memory_graph.errors import ConfigError, InputError
from memory_graph.files import read_text_file
from memory_graph.ingest import MAX_ID_CHARS, check_string
from memory_graph.reingest.sources import ListSource, SourceRecord, record_row

#: Fields that hold a memory's text, in the order they are looked for.
TEXT_FIELDS = ("text", "content", "memory", "reflection", "summary", "message", "entry", "body", "note", "description")
#: Fields read as a record's observation time, in order.
TIME_FIELDS = ("observed_at", "timestamp", "created_at", "created", "date")
FORMATS = ("toml", "sqlite", "markdown", "jsonl")


@dataclass
class ImportSpec:
    """A legacy store to import: its format and path (picklable, for worker processes)."""

    kind: str
    path: Path

    def open(self) -> ListSource:
        """Read the whole store into records.

        Raises:
            InputError: the store is missing or unreadable as a whole.
        """
        reader = READERS.get(self.kind)
        if reader is None:
            raise ConfigError(f"unknown import format {self.kind!r}; use one of {', '.join(FORMATS)}")
        records, notes = reader(Path(self.path))
        return ListSource(f"{self.kind}:{Path(self.path).resolve()}", mark_duplicates(records), notes=notes)


def mark_duplicates(records: list[SourceRecord]) -> list[SourceRecord]:
    """Give every record but the last of each id a problem (the last one replaces them)."""
    last = {r.id: i for i, r in enumerate(records) if r.problem is None}
    for i, r in enumerate(records):
        if r.problem is None and last[r.id] != i:
            r.problem = f"duplicate id {r.id!r}: a later record with this id replaces it"
    return records


# -- TOML --------------------------------------------------------------------------------------


def read_toml(path: Path) -> tuple[list[SourceRecord], list[str]]:
    """Records of a TOML memory log (or of every ``*.toml`` under a directory)."""
    files = _files(path, (".toml",), "TOML")
    records: list[SourceRecord] = []
    for file in files:
        rel = _relative(file, path)
        try:
            data = tomllib.loads(read_text_file(file))
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{file}: invalid TOML ({exc})") from exc
        sections = _toml_sections(data)
        if not sections and len(files) == 1:
            raise InputError(f"{file}: no memory entries (expected [[entries]], reflections or another top-level list)")
        for section, entries in sections:
            for index, entry in enumerate(entries):
                records.append(_toml_record(entry, file=rel, section=section, index=index))
    if not records:
        raise InputError(f"{path}: no memory entries in these TOML files")
    return records, []


def _toml_sections(data: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    lists = [
        (key, value)
        for key, value in data.items()
        if isinstance(value, list) and value and all(isinstance(v, (dict, str)) for v in value)
    ]
    # entries first, then reflections, then the other lists in file order
    order = {"entries": 0, "reflections": 1}
    return sorted(lists, key=lambda kv: order.get(kv[0], 2))


def _toml_record(entry: Any, *, file: str, section: str, index: int) -> SourceRecord:
    fallback_id = f"{file}#{section}[{index}]"
    if isinstance(entry, str):
        return SourceRecord(
            fallback_id, record_row(fallback_id, entry, {"section": section, "source_file": file}, source="toml")
        )
    fields = _plain(entry)
    text_field = next((k for k in TEXT_FIELDS if isinstance(fields.get(k), str)), None)
    record_id = str(fields.get("id") or fields.get("uuid") or fallback_id)
    if text_field is None:
        return SourceRecord(
            record_id,
            None,
            problem=_at(fallback_id, record_id, f"no text (expected one of {', '.join(TEXT_FIELDS[:6])}, …)"),
        )
    text = fields.pop(text_field)
    meta = {k: v for k, v in fields.items() if k not in ("id", "uuid")}
    row = record_row(record_id, text, meta, source="toml", extra={"section": section, "source_file": file})
    return SourceRecord(record_id, _with_time(row, fields))


# -- SQLite ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Table:
    key: str  # primary key column
    text: Callable[[dict[str, Any]], str | None]
    time: tuple[str, ...]
    prefix: bool = True  # external id "table:key" (the memories table keeps its ids as they are)


def _joined(*parts: Any) -> str | None:
    text = "\n".join(str(p).strip() for p in parts if p not in (None, "") and str(p).strip())
    return text or None


SQLITE_TABLES: dict[str, _Table] = {
    "memories": _Table("id", lambda r: r.get("content"), ("created_at",), prefix=False),
    "knowledge_clusters": _Table(
        "id",
        lambda r: _joined(
            f"{r['name']}:" if r.get("name") and r.get("description") else r.get("name"), r.get("description")
        ),
        ("created_at", "last_updated"),
    ),
    "learning_patterns": _Table(
        "pattern_id",
        lambda r: _joined(
            r.get("description"),
            "Examples: " + "; ".join(map(str, r["examples"]))
            if isinstance(r.get("examples"), list) and r["examples"]
            else None,
        ),
        ("discovered_at", "updated_at"),
    ),
    "user_preferences": _Table(
        "key",
        lambda r: (
            f"User preference {r['key']}: {r['value']}" if r.get("key") and r.get("value") not in (None, "") else None
        ),
        ("updated_at",),
    ),
    "conversation_sessions": _Table("session_id", lambda r: r.get("summary"), ("started_at", "ended_at")),
}
_JSON_COLUMNS = {"tags", "related_memories", "metadata", "memories", "topics", "examples"}
_SKIP_COLUMNS = {"embedding"}


def read_sqlite(path: Path) -> tuple[list[SourceRecord], list[str]]:
    """Records of a SQLite memory database (opened read-only; it is never changed)."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory; give the SQLite database file")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=2)
    except sqlite3.Error as exc:
        raise _sqlite_error(path, exc) from exc
    try:
        conn.row_factory = sqlite3.Row
        # Text that is not UTF-8 becomes lone surrogates, so that its record is skipped and
        # reported (not valid Unicode) instead of the whole read failing.
        conn.text_factory = lambda data: data.decode("utf-8", "surrogateescape")
        try:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        except sqlite3.Error as exc:
            raise _sqlite_error(path, exc) from exc
        known = [t for t in SQLITE_TABLES if t in tables]
        if not known:
            raise InputError(
                f"{path}: no memories table (expected one of {', '.join(SQLITE_TABLES)}; found {', '.join(tables) or 'no tables'})"
            )
        records: list[SourceRecord] = []
        for table in known:
            spec = SQLITE_TABLES[table]
            try:
                rows = conn.execute(f'SELECT * FROM "{table}" ORDER BY rowid').fetchall()
            except sqlite3.Error as exc:
                raise _sqlite_error(path, exc) from exc
            for row in rows:
                records.append(_sqlite_record(dict(row), table=table, spec=spec))
        others = [t for t in tables if t not in SQLITE_TABLES and not t.startswith("sqlite_")]
        notes = [f"tables not imported (they hold no memories): {', '.join(others)}"] if others else []
        return records, notes
    finally:
        conn.close()


def _sqlite_error(path: Path, exc: sqlite3.Error) -> InputError:
    reason = str(exc)
    if "locked" in reason or "busy" in reason:
        return InputError(f"{path}: database is locked by another program ({reason}); close it and retry")
    if isinstance(exc, sqlite3.DatabaseError) and ("not a database" in reason or "malformed" in reason):
        return InputError(f"{path}: not a SQLite database, or corrupt ({reason})")
    return InputError(f"{path}: cannot read the SQLite database ({reason})")


def _sqlite_record(row: dict[str, Any], *, table: str, spec: _Table) -> SourceRecord:
    values = {k: _parse_json_column(k, v) for k, v in row.items() if k not in _SKIP_COLUMNS}
    key = values.get(spec.key)
    record_id = str(key) if not spec.prefix else f"{table}:{key}"
    if key is None:
        return SourceRecord(f"{table}:rowid?", None, problem=f"{table}: a row has no {spec.key}")
    text = spec.text(values)
    if not isinstance(text, str) or not text.strip():
        return SourceRecord(record_id, None, problem=f"{table} row {key!r} has no text")
    meta = {
        k: v
        for k, v in values.items()
        if v is not None and k != spec.key and not (k == "content" and table == "memories")
    }
    nested = meta.pop("metadata", None)
    if isinstance(nested, dict):
        meta = {**{k: v for k, v in nested.items() if k not in meta}, **meta}
    elif nested is not None:
        meta["metadata"] = nested
    if row.get("embedding") is not None:
        meta["had_embedding"] = True
    if spec.prefix:
        meta[spec.key] = key
    when = next((values[c] for c in spec.time if values.get(c) not in (None, "")), None)
    row_out = record_row(record_id, text, meta, source="sqlite", extra={"source_table": table})
    row_out.pop("observed_at", None)
    if when is not None:
        row_out["observed_at"] = when
    return SourceRecord(record_id, row_out)


def _parse_json_column(column: str, value: Any) -> Any:
    if isinstance(value, bytes):
        return None
    if column in _JSON_COLUMNS and isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if column == "tags" and isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    return value


# -- markdown ----------------------------------------------------------------------------------

_DATED = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[-_ ](.+))?$")


def read_markdown(path: Path) -> tuple[list[SourceRecord], list[str]]:
    """Records of daily markdown memory files (flat or by ``YYYY/MM``), one per file."""
    root = path / "memory" if (path / "memory").is_dir() else path
    files = _files(root, (".md", ".markdown"), "markdown memory")
    candidates: list[tuple[SourceRecord, str]] = []
    for file in files:
        rel = _relative(file, root)
        candidates.append(_markdown_record(file, rel))
    # A flat file and its migrated YYYY/MM copy are one memory: the migrated copy wins.
    winners: dict[str, str] = {}
    for record, layout in candidates:
        if record.problem is None and (record.id not in winners or layout == "monthly"):
            winners[record.id] = (record.row or {}).get("metadata", {}).get("path", "")
    for record, _ in candidates:
        if record.problem is None and record.row is not None:
            winner = winners[record.id]
            if record.row["metadata"].get("path") != winner:
                where = f"memory/{record.row['metadata']['path']}"
                record.problem = _at(where, record.id, f"old copy of memory/{winner}, which is imported instead")
    return [r for r, _ in candidates], []


def _markdown_record(file: Path, rel: str) -> tuple[SourceRecord, str]:
    name = Path(rel).stem
    parts = Path(rel).parts
    match = _DATED.match(name)
    layout = "flat" if len(parts) == 1 else "other"
    meta: dict[str, Any] = {"path": rel}
    observed: Any
    if match:
        year, month, day, slug = match.groups()
        record_id = f"memory/{Path(rel).name}"
        try:
            observed = date(int(year), int(month), int(day))
        except ValueError:
            return SourceRecord(
                record_id,
                None,
                problem=_at(f"memory/{rel}", record_id, f"invalid date {year}-{month}-{day} in the file name"),
            ), layout
        if len(parts) == 3 and parts[0] == year and parts[1] == month:
            layout = "monthly"
        meta["date"] = observed.isoformat()
        if slug:
            meta["slug"] = slug
    else:
        record_id = f"memory/{rel}"
        observed = datetime.fromtimestamp(file.stat().st_mtime, UTC)
    meta["layout"] = layout
    try:
        text = read_text_file(file)
    except InputError as exc:
        return SourceRecord(record_id, None, problem=str(exc)), layout
    if not text.strip():
        return SourceRecord(record_id, None, problem=_at(f"memory/{rel}", record_id, "file is empty")), layout
    row = record_row(record_id, text, meta, source="markdown")
    row["observed_at"] = observed
    return SourceRecord(record_id, row), layout


# -- JSONL -------------------------------------------------------------------------------------

_JSONL_OWN = {"id", "external_id", "text", "metadata", "observed_at", "timestamp"}


def read_jsonl(path: Path) -> tuple[list[SourceRecord], list[str]]:
    """Records of JSONL files: a bad line (not UTF-8, not JSON, bad fields) is a skipped record,
    not a failed import. Each line is decoded on its own, so one line of other bytes spoils
    only itself."""
    records: list[SourceRecord] = []
    for file in _files(path, (".jsonl", ".ndjson"), "JSONL"):
        rel = _relative(file, path)
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise InputError(f"{file}: cannot read ({exc.strerror})") from exc
        found = 0
        for lineno, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").splitlines(), 1):
            if raw.strip():
                found += 1
                records.append(_jsonl_record(raw, where=f"{rel}:{lineno}"))
        if not found:
            raise InputError(f"{file}: no records (the file is empty)")
    return records, []


def _jsonl_record(raw: bytes, *, where: str) -> SourceRecord:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return SourceRecord(
            where, None, problem=f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
        )
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        return SourceRecord(where, None, problem=f"invalid JSON: {exc.msg} (column {exc.colno})")
    except RecursionError:
        return SourceRecord(where, None, problem="invalid JSON: nested too deeply")
    if not isinstance(obj, dict):
        return SourceRecord(where, None, problem=f"expected a JSON object, got {type(obj).__name__}")
    raw_id = obj.get("id", obj.get("external_id"))
    record_id = where if raw_id is None else str(raw_id)
    if (bad := _unusable_id(record_id)) is not None:
        return SourceRecord(where, None, problem=f"{where}: the id {bad}")
    if not isinstance(obj.get("text"), str):
        return SourceRecord(record_id, None, problem=_at(where, record_id, "no 'text' string"))
    meta = obj.get("metadata") or {}
    if not isinstance(meta, dict):
        return SourceRecord(record_id, None, problem=_at(where, record_id, "'metadata' must be a JSON object"))
    meta = {**meta, **{k: v for k, v in obj.items() if k not in _JSONL_OWN}}
    row = record_row(record_id, obj["text"], meta, source="jsonl")
    when = obj.get("observed_at", obj.get("timestamp"))
    if when is not None:
        row["observed_at"] = when
    return SourceRecord(record_id, row)


# -- helpers -----------------------------------------------------------------------------------


def _unusable_id(record_id: str) -> str | None:
    """Why a record's id cannot be its ``external_id`` (the record is then named by its place),
    or None when it can."""
    try:
        check_string(record_id, "id", max_chars=MAX_ID_CHARS)
    except InputError as exc:
        return str(exc).removeprefix("id ")
    return None


def _at(where: str, record_id: str, problem: str) -> str:
    """A problem, prefixed with where the record is when its id does not say it already."""
    return problem if where == record_id else f"{where}: {problem}"


def _files(path: Path, suffixes: tuple[str, ...], what: str) -> list[Path]:
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise InputError(f"{path}: no {what} files ({', '.join('*' + s for s in suffixes)}) in this directory")
    return files


def _relative(file: Path, root: Path) -> str:
    return file.name if root.is_file() or file == root else file.relative_to(root).as_posix()


def _plain(value: Any) -> Any:
    """TOML values as JSON values (dates and times as ISO strings)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return value


def _with_time(row: dict[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    row.pop("observed_at", None)
    for key in TIME_FIELDS:
        if fields.get(key) not in (None, ""):
            row["observed_at"] = fields[key]
            break
    return row


READERS: dict[str, Callable[[Path], tuple[list[SourceRecord], list[str]]]] = {
    "toml": read_toml,
    "sqlite": read_sqlite,
    "markdown": read_markdown,
    "jsonl": read_jsonl,
}
