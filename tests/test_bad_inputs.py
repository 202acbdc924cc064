"""Bad inputs, table-driven: each case gets a typed one-line error and stores nothing, or is
stored correctly (docs/architecture.md, "Inputs and their limits").

The API battery runs on real stores (SQLite and PostgreSQL, embedded Chroma, the shipped
pipeline and embedder); the CLI's in subprocesses, as a shell sees them.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memory_graph import (
    ConfigError,
    DocumentNotFoundError,
    EntityNotFoundError,
    Extractor,
    GraphStore,
    InputError,
    MemoryGraphError,
    MemoryGraphWarning,
    MemoryManager,
    NotFoundError,
    Settings,
    StoreError,
    VectorStore,
)
from memory_graph.reingest import ImportSpec, run_reingest
from memory_graph.vector_store import make_chroma_client

#: Small limits, so that "too big" cases are cheap.
LIMITS = {"max_text_chars": 5_000, "max_query_chars": 2_000, "max_k": 50, "max_metadata_bytes": 2_000}
STORED = "stored"  # the case is stored correctly
OK = "ok"  # a read that answers normally

Call = Callable[[MemoryManager], Any]


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def cyclic() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["self"] = value
    return value


_TEXTS = iter(range(10**6))


_OWN = object()


def add(text: Any = _OWN, **kwargs: Any) -> Call:
    """A call of ``add``; by default a text of its own, so a stored case is not a repeat of another."""
    text = f"Alice met Bob in Paris, note {next(_TEXTS)}." if text is _OWN else text
    namespace = kwargs.pop("namespace", "bad")
    return lambda mm: mm.add(text, namespace=namespace, **kwargs)


ADD_CASES: list[tuple[str, Call, Any]] = [
    # text
    ("text-empty", add(""), InputError),
    ("text-whitespace", add(" \n\t "), InputError),
    ("text-none", add(None), InputError),
    ("text-int", add(42), InputError),
    ("text-bytes", add(b"Alice met Bob."), InputError),
    ("text-huge", add("word " * 1_001), InputError),
    ("text-nul", add("Alice\x00 met Bob."), InputError),
    ("text-lone-surrogate", add("Alice \ud800 met Bob."), InputError),
    ("text-undecodable-bytes", add(b"caf\xe9 au lait".decode("utf-8", "surrogateescape")), InputError),
    ("text-control-chars", add("Alice\x07 met\x1b[31m Bob\x7f in Paris.\x0b"), STORED),
    ("text-unicode", add("Zoë met 王小明 in Zürich 🎉."), STORED),
    ("text-fts-operators", add('Alice said "NEAR(Bob) AND OR * : -x ^y" in Paris.'), STORED),
    # metadata
    ("meta-int-key", add(metadata={1: "one"}), InputError),
    ("meta-tuple-key", add(metadata={("a",): 1}), InputError),
    ("meta-nested-int-key", add(metadata={"a": {2: "two"}}), InputError),
    ("meta-not-mapping", add(metadata=["a"]), InputError),
    ("meta-str", add(metadata="speaker=Alice"), InputError),
    ("meta-too-deep", add(metadata=nested(9)), InputError),
    ("meta-very-deep", add(metadata=nested(100_000)), InputError),
    ("meta-cyclic", add(metadata=cyclic()), InputError),
    ("meta-too-big", add(metadata={"x": "a" * 3_000}), InputError),
    ("meta-too-big-multibyte", add(metadata={"x": "é" * 1_100}), InputError),
    ("meta-set", add(metadata={"s": {1, 2}}), InputError),
    ("meta-bytes", add(metadata={"b": b"x"}), InputError),
    ("meta-nan", add(metadata={"n": math.nan}), InputError),
    ("meta-inf-in-list", add(metadata={"n": [1, math.inf]}), InputError),
    ("meta-object", add(metadata={"o": object()}), InputError),
    ("meta-nul-value", add(metadata={"v": "a\x00b"}), InputError),
    ("meta-nul-key", add(metadata={"k\x00": 1}), InputError),
    ("meta-surrogate-value", add(metadata={"v": "\udcff"}), InputError),
    ("meta-huge-int", add(metadata={"i": 10**5000}), InputError),
    ("meta-fine", add(metadata={"speaker": "Alice", "tags": ["a", 1, None, True], "at": date(2025, 1, 2)}), STORED),
    ("meta-speaker-int", add(metadata={"speaker": 5}), STORED),
    ("meta-at-depth-limit", add(metadata=nested(7)), STORED),
    # observed_at
    ("date-1e20", add(observed_at=1e20), InputError),
    ("date-minus-1e20", add(observed_at=-1e20), InputError),
    ("date-nan", add(observed_at=math.nan), InputError),
    ("date-inf", add(observed_at=math.inf), InputError),
    ("date-bool", add(observed_at=True), InputError),
    ("date-list", add(observed_at=[2025]), InputError),
    ("date-garbage", add(observed_at="yesterday-ish"), InputError),
    ("date-month-13", add(observed_at="2025-13-45"), InputError),
    ("date-year-1-east", add(observed_at="0001-01-01T00:00:00+05:00"), InputError),
    ("date-max-west", add(observed_at=datetime.max.replace(tzinfo=timezone(timedelta(hours=-5)))), InputError),
    ("date-min", add(observed_at=date.min), InputError),
    ("date-huge-string", add(observed_at="2025-01-01" * 1_000), InputError),
    ("date-negative-epoch", add(observed_at=-86_400), STORED),
    ("date-naive", add(observed_at=datetime(2025, 6, 1, 12, 0)), STORED),
    ("date-aware", add(observed_at=datetime(2025, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=5)))), STORED),
    ("date-iso-z", add(observed_at="2025-06-01T12:00:00Z"), STORED),
    # external_id and source
    ("id-nul", add(external_id="a\x00b"), InputError),
    ("id-surrogate", add(external_id="\ud800"), InputError),
    ("id-too-long", add(external_id="x" * 600), InputError),
    ("id-dict", add(external_id={"a": 1}), InputError),
    ("id-bool", add(external_id=True), InputError),
    ("id-blank", add(external_id="  "), InputError),
    ("id-int", add("Carol visited Rome.", external_id=12), STORED),
    ("source-int", add(source=5), InputError),
    ("source-nul", add(source="a\x00"), InputError),
    # namespaces
    ("ns-empty", add(namespace=""), InputError),
    ("ns-whitespace", add(namespace="  "), InputError),
    ("ns-too-long", add(namespace="n" * 300), InputError),
    ("ns-nul", add(namespace="a\x00b"), InputError),
    ("ns-newline", add(namespace="a\nb"), InputError),
    ("ns-surrogate", add(namespace="\ud800"), InputError),
    ("ns-int", add(namespace=5), InputError),
    ("ns-dotdot", add(namespace="../../etc"), STORED),
    ("ns-unicode", add(namespace="名前空間-ü"), STORED),
    # add_many
    ("many-none", lambda mm: mm.add_many(None), InputError),
    ("many-str", lambda mm: mm.add_many("Alice met Bob."), InputError),
    ("many-dict", lambda mm: mm.add_many({"text": "Alice met Bob."}), InputError),
    ("many-one-bad", lambda mm: mm.add_many([{"text": "Dave met Eve."}, {"text": ""}], namespace="bad"), InputError),
    ("many-int-key", lambda mm: mm.add_many([{"text": "x", 1: 2, "z": 3}], namespace="bad"), InputError),
    ("many-bad-date", lambda mm: mm.add_many([{"text": "Dave met Eve.", "observed_at": 1e20}]), InputError),
    ("many-batch-zero", lambda mm: mm.add_many([{"text": "Dave met Eve."}], batch_size=0), InputError),
    ("many-not-rows", lambda mm: mm.add_many([["text", "x"]]), InputError),
]


def search(query: Any = "Where did Alice meet Bob?", **kwargs: Any) -> Call:
    namespace = kwargs.pop("namespace", "bad")
    return lambda mm: mm.search(query, namespace=namespace, **kwargs)


READ_CASES: list[tuple[str, Call, Any]] = [
    ("query-empty", search(""), InputError),
    ("query-whitespace", search("\n "), InputError),
    ("query-none", search(None), InputError),
    ("query-int", search(5), InputError),
    ("query-nul", search("Alice\x00"), InputError),
    ("query-surrogate", search("Alice \ud800"), InputError),
    ("query-huge", search("word " * 401), InputError),
    ("query-control", search("Alice\x07\x1b[0m?"), OK),
    *[
        (f"query-fts-{i}", search(q), OK)
        for i, q in enumerate(
            ['"', "NEAR(", "AND OR", "*", ":", "a:b", "-x", "^", "(((", "'", "\\", "%_", 'Alice" OR "1"="1', "NOT"]
        )
    ],
    ("k-zero", search(k=0), InputError),
    ("k-negative", search(k=-1), InputError),
    ("k-huge", search(k=10**9), InputError),
    ("k-float", search(k=2.5), InputError),
    ("k-bool", search(k=True), InputError),
    ("k-str", search(k="5"), InputError),
    ("k-none", search(k=None), InputError),
    ("k-limit", search(k=50), OK),
    ("k-numpy-int", search(k=np.int64(3)), OK),
    ("k-numpy-float", search(k=np.float64(3)), InputError),
    ("since-1e20", search(since=1e20), InputError),
    ("until-garbage", search(until="soon"), InputError),
    ("as-of-max", search(as_of=datetime.max), InputError),
    ("search-ns-nul", search(namespace="a\x00"), InputError),
    ("search-ns-int", search(namespace=3), InputError),
    ("search-ns-unknown", search(namespace="nobody-here"), OK),
    ("explain-k-zero", lambda mm: mm.explain("Alice", namespace="bad", k=0), InputError),
    ("explain-nul", lambda mm: mm.explain("\x00", namespace="bad"), InputError),
    ("context-max-tokens-zero", lambda mm: mm.context("Alice", namespace="bad", max_tokens=0), InputError),
    ("context-max-tokens-str", lambda mm: mm.context("Alice", namespace="bad", max_tokens="9"), InputError),
    ("entity-none", lambda mm: mm.entity(None, namespace="bad"), InputError),
    ("entity-nul", lambda mm: mm.entity("Al\x00", namespace="bad"), InputError),
    ("entity-empty", lambda mm: mm.entity("", namespace="bad"), EntityNotFoundError),
    ("entity-fts", lambda mm: mm.entity('"*', namespace="bad"), EntityNotFoundError),
    ("get-none", lambda mm: mm.get(None), InputError),
    ("get-nul", lambda mm: mm.get("ab\x00"), DocumentNotFoundError),
    ("get-huge", lambda mm: mm.get("x" * 100_000), DocumentNotFoundError),
    ("get-surrogate", lambda mm: mm.get("\ud800"), DocumentNotFoundError),
    ("delete-int", lambda mm: mm.delete(5), InputError),
    ("delete-nul", lambda mm: mm.delete("\x00"), DocumentNotFoundError),
    ("undo-merge-str", lambda mm: mm.undo_merge("1"), InputError),
    ("undo-merge-huge", lambda mm: mm.undo_merge(10**30), NotFoundError),
    ("stats-ns-nul", lambda mm: mm.stats("\x00"), InputError),
]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def bad_manager(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, extractor: Extractor, embedder
) -> Iterator[MemoryManager]:
    """One manager per database for the whole battery, holding one memory to start with."""
    data = tmp_path_factory.mktemp("bad-inputs")
    # PostgreSQL: a database of its own, as the cases check that verify() stays clean.
    url = request.getfixturevalue("new_postgres_database")("bad_inputs") if request.param == "postgresql" else None
    settings = Settings(data_dir=data, database_url=url, collection=f"bad_{request.param}", **LIMITS)
    graph = GraphStore.from_url(settings.sqlalchemy_url, auto_upgrade=True)
    vectors = VectorStore(make_chroma_client(path=settings.chroma_dir), settings.collection, embedder=embedder)
    try:
        with MemoryManager(settings, graph=graph, vectors=vectors, extractor=extractor) as mm:
            mm.add("Alice met Bob in Paris last May.", namespace="bad", external_id="seed")
            yield mm
    finally:
        graph.close()


def counts(mm: MemoryManager) -> dict[str, Any]:
    return asdict(mm.stats())


def check_case(mm: MemoryManager, call: Call, expected: Any) -> Any:
    """Run one case: a typed one-line error and nothing changed, or a normal answer."""
    before = counts(mm)
    if isinstance(expected, type):
        with pytest.raises(expected) as caught:
            call(mm)
        assert isinstance(caught.value, MemoryGraphError), type(caught.value)
        message = str(caught.value)
        assert message and "\n" not in message and len(message) < 400, message
        assert counts(mm) == before
        return caught.value
    result = call(mm)
    if expected == STORED:
        assert result.created and result.chunk_ids
        stored = mm.get(result.document_id)
        assert stored.chunk_ids == result.chunk_ids
        after = counts(mm)
        assert after["documents"] == before["documents"] + 1 and after["vectors"] > before["vectors"]
        assert mm.verify().ok
    else:
        assert counts(mm) == before
    return result


@pytest.mark.parametrize(("case", "call", "expected"), ADD_CASES, ids=[c[0] for c in ADD_CASES])
def test_bad_inputs_api_writes(bad_manager: MemoryManager, case: str, call: Call, expected: Any) -> None:
    check_case(bad_manager, call, expected)


@pytest.mark.parametrize(("case", "call", "expected"), READ_CASES, ids=[c[0] for c in READ_CASES])
def test_bad_inputs_api_reads(bad_manager: MemoryManager, case: str, call: Call, expected: Any) -> None:
    result = check_case(bad_manager, call, expected)
    if expected == OK and case.startswith(("query", "k-")):
        assert isinstance(result, list)


def test_bad_inputs_errors_name_the_limit_and_the_value(bad_manager: MemoryManager) -> None:
    mm = bad_manager
    cases = [
        (add("word " * 1_001), ["5,005", "5,000", "MEMORY_GRAPH_MAX_TEXT_CHARS"]),
        (search("word " * 401), ["2,005", "2,000", "MEMORY_GRAPH_MAX_QUERY_CHARS"]),
        (search(k=51), ["51", "50", "MEMORY_GRAPH_MAX_K"]),
        (add(metadata={"x": "a" * 3_000}), ["2,000", "MEMORY_GRAPH_MAX_METADATA_BYTES"]),
        (add(metadata=nested(9)), ["8", "MEMORY_GRAPH_MAX_METADATA_DEPTH"]),
        (add(metadata={1: "one"}), ["1", "keys must be strings"]),
        (add(observed_at=1e20), ["1e+20", "out of range"]),
    ]
    for call, fragments in cases:
        error = check_case(mm, call, InputError)
        for fragment in fragments:
            assert fragment in str(error), (fragment, str(error))


def test_bad_inputs_stored_text_round_trips(bad_manager: MemoryManager) -> None:
    text = "Mallory\x07 wrote\x1b[1m to Trent\x7f from Zürich 🎉."
    record = bad_manager.add(text, namespace="round-trip", metadata={"speaker": "Mallory", "n": [1, {"b": None}]})
    hits = bad_manager.search("Mallory Trent Zürich", namespace="round-trip", k=3)
    assert hits and hits[0].document_id == record.document_id
    assert hits[0].text == text and hits[0].metadata == {"speaker": "Mallory", "n": [1, {"b": None}]}


# -- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "env", "fragments"),
    [
        ({"chunk_size": "abc"}, {}, ["chunk_size", "MEMORY_GRAPH_CHUNK_SIZE", "'abc'"]),
        ({}, {"MEMORY_GRAPH_CHUNK_SIZE": "abc"}, ["chunk_size", "MEMORY_GRAPH_CHUNK_SIZE", "'abc'"]),
        ({}, {"MEMORY_GRAPH_MAX_K": "0"}, ["max_k", "greater than or equal to 1"]),
        ({}, {"MEMORY_GRAPH_RESOLVE_ALIASES": "maybe"}, ["resolve_aliases"]),
        ({}, {"MEMORY_GRAPH_SERVER_PORT": "70000"}, ["server_port", "65535"]),
        ({}, {"MEMORY_GRAPH_API_KEYS": "not-json-secret"}, ["api_keys"]),
        ({"chunk_sise": 100}, {}, ["unknown setting", "chunk_size"]),
        ({"chunk_size": 1, "batch_size": 0}, {}, ["chunk_size", "(and 1 more)"]),
    ],
)
def test_bad_settings_are_one_line_config_errors(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, Any], env: dict[str, str], fragments: list[str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        Settings(**values)
    message = str(caught.value)
    assert "\n" not in message and "secret" not in message, message
    for fragment in fragments:
        assert fragment in message


def test_misspelt_variable_warns_naming_the_closest_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMORY_GRAPH_CHUNK_SIZ", "100")
    monkeypatch.setenv("MEMORY_GRAPH_TEST_ANYTHING", "1")  # the test suite's own: no warning
    with pytest.warns(
        MemoryGraphWarning, match="MEMORY_GRAPH_CHUNK_SIZ .*did you mean MEMORY_GRAPH_CHUNK_SIZE"
    ) as seen:
        assert Settings().chunk_size == 800
    assert len(seen) == 1
    monkeypatch.delenv("MEMORY_GRAPH_CHUNK_SIZ")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Settings()


# -- data directories --------------------------------------------------------------------------


def can_write_despite_mode(path: Path) -> bool:
    """Whether this process writes to a directory whose mode forbids it (root does)."""
    probe = path / ".probe"
    try:
        probe.write_text("x")
    except OSError:
        return False
    probe.unlink()
    return True


def test_bad_data_dirs(tmp_path: Path, extractor: Extractor) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="not writable"):
        MemoryManager(Settings(data_dir=blocker / "data"), extractor=extractor)

    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "memory.db").write_bytes(b"this is not a SQLite database" * 100)
    with pytest.raises(StoreError) as caught:
        MemoryManager(Settings(data_dir=garbage), extractor=extractor)
    assert ("\n" not in str(caught.value) and "memory.db" in str(caught.value)) or "database" in str(caught.value)

    chroma_file = tmp_path / "chroma-file"
    chroma_file.mkdir()
    (chroma_file / "chroma").write_text("not a directory")
    with pytest.raises(MemoryGraphError) as caught_chroma:
        MemoryManager(Settings(data_dir=chroma_file), extractor=extractor)
    assert "\n" not in str(caught_chroma.value)

    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        if can_write_despite_mode(read_only):  # root: the mode does not stop it, so it must work
            with MemoryManager(Settings(data_dir=read_only), extractor=extractor) as mm:
                assert mm.stats().documents == 0
        else:
            with pytest.raises(ConfigError, match="not writable"):
                MemoryManager(Settings(data_dir=read_only), extractor=extractor)
    finally:
        read_only.chmod(0o700)


# -- importers ---------------------------------------------------------------------------------


def test_jsonl_import_skips_and_reports_bad_records(tmp_path: Path, manager: MemoryManager) -> None:
    lines = [
        json.dumps({"id": "good-1", "text": "Oscar moved to Lisbon in 2024."}).encode(),
        b'{"id": "surrogate", "text": "Bad \\ud800 text"}',
        b'{"id": "\\udc00", "text": "Its id is not Unicode."}',
        '{"id": "latin1", "text": "caf\xe9"}'.encode("latin-1"),
        json.dumps({"id": "overflow", "text": "Peggy met Victor.", "observed_at": 1e20}).encode(),
        json.dumps({"id": "negative", "text": "Peggy met Walter.", "observed_at": -1e18}).encode(),
        json.dumps({"id": "nan-date", "text": "Peggy met Ivan."}).replace("}", ', "observed_at": NaN}').encode(),
        json.dumps({"id": "word-date", "text": "Peggy met Judy.", "observed_at": "last tuesday"}).encode(),
        json.dumps({"id": "nul", "text": "Peggy\u0000 met Mike."}).encode(),
        json.dumps({"id": "meta-deep", "text": "Peggy met Niaj.", "metadata": nested(20)}).encode(),
        b"[" * 100_000,
        json.dumps(
            {"id": "good-2", "text": "Oscar works at Initech.", "observed_at": "2025-02-01T10:00:00+02:00"}
        ).encode(),
        json.dumps({"id": "good-3", "text": "Oscar likes tea.", "observed_at": "2025-02-02T10:00:00"}).encode(),
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = run_reingest(ImportSpec("jsonl", path), manager=manager, namespace="imported")
    assert (report.read, report.stored, report.skipped, report.failed) == (13, 3, 10, 0), report.to_dict()
    reasons = {p["id"]: p["reason"] for p in report.to_dict()["problems"] if p.get("id")}
    assert "lone surrogate" in reasons["surrogate"]
    assert "not valid UTF-8" in reasons["mixed.jsonl:4"]
    assert "out of range" in reasons["overflow"] and "out of range" in reasons["negative"]
    assert "NUL" in reasons["nul"] and "deeper" in reasons["meta-deep"]
    assert manager.stats("imported").documents == 3
    again = run_reingest(ImportSpec("jsonl", path), manager=manager, namespace="imported")
    assert again.stored == 0 and manager.stats("imported").documents == 3


# -- the CLI -----------------------------------------------------------------------------------


def cli(*args: str, data_dir: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MEMORY_GRAPH_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "memory_graph.cli", "--data-dir", str(data_dir), *args],
        capture_output=True,
        timeout=600,
        env=full_env,
    )


def one_line_error(result: subprocess.CompletedProcess[bytes], code: int, *fragments: str) -> None:
    stderr = result.stderr.decode("utf-8", "replace")
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert result.returncode == code, stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_bad_inputs_cli(tmp_path: Path) -> None:
    data = tmp_path / "data"
    notes = tmp_path / "notes.md"
    notes.write_text("Peggy visited the Louvre in Paris.\n")
    assert cli("ingest", str(notes), data_dir=data).returncode == 0
    before = cli("stats", "--json", data_dir=data).stdout

    undecodable = os.fsdecode(b"caf\xe9?")  # bytes in argv that are not UTF-8 arrive as lone surrogates
    one_line_error(cli("query", undecodable, data_dir=data), 2, "query", "lone surrogate")
    one_line_error(cli("query", "x" * 60, data_dir=data, env={"MEMORY_GRAPH_MAX_QUERY_CHARS": "50"}), 2,
                   "60", "50", "MEMORY_GRAPH_MAX_QUERY_CHARS")  # fmt: skip
    one_line_error(cli("query", "Paris", "-k", "5000", data_dir=data), 2, "MEMORY_GRAPH_MAX_K")
    one_line_error(cli("query", "Paris", "--namespace", "a\nb", data_dir=data), 2, "namespace")
    one_line_error(cli("query", "Paris", "--since", "1e20", data_dir=data), 2, "since")
    one_line_error(cli("stats", data_dir=data, env={"MEMORY_GRAPH_CHUNK_SIZE": "abc"}), 2,
                   "chunk_size", "MEMORY_GRAPH_CHUNK_SIZE", "'abc'")  # fmt: skip
    for fts in ['"', "NEAR(", "AND OR", "*", ":"]:
        assert cli("query", fts, "--json", data_dir=data).returncode == 0

    misspelt = cli("stats", data_dir=data, env={"MEMORY_GRAPH_NAMESPASE": "x"})
    assert misspelt.returncode == 0
    warned = [line for line in misspelt.stderr.decode().splitlines() if line.strip()]
    assert warned == ["warning: MEMORY_GRAPH_NAMESPASE is not a memory-graph setting and is ignored; "
                      "did you mean MEMORY_GRAPH_NAMESPACE?"]  # fmt: skip

    jsonl = tmp_path / "mixed.jsonl"
    jsonl.write_bytes(b'{"id": "a", "text": "Quentin met Rupert."}\n{"id": "b", "text": "\\ud800"}\n'
                      b'{"id": "c", "text": "x", "observed_at": 1e20}\n')  # fmt: skip
    imported = cli("import", "jsonl", str(jsonl), "--json", data_dir=data)
    assert imported.returncode == 0, imported.stderr[-2000:]
    report = json.loads(imported.stdout)
    assert (report["stored"], report["skipped"]) == (1, 2)

    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "memory.db").write_bytes(b"garbage" * 1000)
    one_line_error(cli("stats", data_dir=garbage), 1)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    one_line_error(cli("stats", data_dir=blocker / "data"), 2, "not writable")
    after = json.loads(cli("stats", "--json", data_dir=data).stdout)
    assert after["documents"] == json.loads(before)["documents"] + 1  # the import's one good record


def test_naive_and_aware_times_are_utc(bad_manager: MemoryManager) -> None:
    naive = bad_manager.add("Sybil met Trent.", namespace="times", observed_at=datetime(2025, 1, 1, 12))
    aware = bad_manager.add(
        "Sybil met Uma.", namespace="times", observed_at=datetime(2025, 1, 1, 14, tzinfo=timezone(timedelta(hours=2)))
    )
    hits = bad_manager.search("Sybil", namespace="times", k=5)
    times = {h.document_id: h.observed_at for h in hits}
    assert times[naive.document_id] == times[aware.document_id] == datetime(2025, 1, 1, 12, tzinfo=UTC)


# -- the server --------------------------------------------------------------------------------

SERVER_CASES: list[tuple[str, str, str | dict[str, Any], int, str]] = [
    ("nul-text", "memories", {"text": "a\u0000b"}, 422, "NUL"),
    ("surrogate-text", "memories", '{"text": "bad \\ud800 text"}', 422, "lone surrogate"),
    ("surrogate-meta", "memories", '{"text": "ok", "metadata": {"v": "\\udfff"}}', 422, "lone surrogate"),
    ("deep-metadata", "memories", {"text": "ok", "metadata": nested(9)}, 422, "deeper than the limit"),
    ("year-1-east", "memories", {"text": "ok", "observed_at": "0001-01-01T00:00:00+05:00"}, 422, "out of range"),
    ("huge-metadata", "memories", {"text": "ok", "metadata": {"x": "a" * 70_000}}, 422, "MEMORY_GRAPH_MAX_METADATA"),
    ("batch-one-bad", "memories/batch", {"memories": [{"text": "Fine."}, {"text": "\u0000"}]}, 422, "NUL"),
    ("long-query", "search", {"query": "word " * 20_001}, 422, "MEMORY_GRAPH_MAX_QUERY_CHARS"),
    ("nul-query", "search", {"query": "a\u0000"}, 422, "NUL"),
    ("bad-since", "search", {"query": "a", "since": "1e20"}, 422, "since"),
    *[(f"fts-{i}", "search", {"query": q}, 200, "") for i, q in enumerate(['"', "NEAR(", "AND OR", "*", ":"])],
]


@pytest.mark.parametrize(
    ("case", "path", "payload", "status", "reason"), SERVER_CASES, ids=[c[0] for c in SERVER_CASES]
)
def test_bad_inputs_server(server: Any, case: str, path: str, payload: Any, status: int, reason: str) -> None:
    import httpx

    headers = {"Authorization": "Bearer test-admin-key", "content-type": "application/json"}
    stats_url = f"{server.url}/v1/stats"
    before = httpx.get(stats_url, headers=headers).json()
    body = payload if isinstance(payload, str) else json.dumps(payload)
    r = httpx.post(f"{server.url}/v1/namespaces/s-bad/{path}", content=body, headers=headers, timeout=120)
    assert r.status_code == status, r.text[:500]
    if status == 422:
        detail = r.json()["detail"]
        assert isinstance(detail, str) and "\n" not in detail and reason in detail, detail
    assert httpx.get(stats_url, headers=headers).json() == before


def test_bad_namespaces_in_server_paths(server: Any) -> None:
    import httpx

    headers = {"Authorization": "Bearer test-admin-key"}
    for namespace in ("a%00b", "a%0Ab", "n" * 300):
        r = httpx.post(f"{server.url}/v1/namespaces/{namespace}/search", json={"query": "a"}, headers=headers)
        assert r.status_code in (404, 422) and "\n" not in r.json()["detail"], r.text[:300]
    r = httpx.post(
        f"{server.url}/v1/namespaces/..%2F..%2Fetc/memories", json={"text": "Dots are fine."}, headers=headers
    )
    assert r.status_code in (200, 201, 404), r.text[:300]
