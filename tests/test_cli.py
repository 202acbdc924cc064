"""The memory-graph CLI: commands, JSON output, one-line errors and exit codes.

Most tests call the real entry point in a subprocess (as a user would), so exit codes and
stderr are exactly what a shell sees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from memory_graph.cli import cli


def run(*args: str, data_dir: Path, env: dict | None = None, check: bool = False) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MEMORY_GRAPH_")}
    full_env.update(env or {})
    result = subprocess.run(
        [sys.executable, "-m", "memory_graph.cli", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=full_env,
    )
    if check:
        assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    (root / "notes.md").write_text("# Trip\nPeggy visited the Louvre in Paris with Quentin in April 2024.\n")
    (root / "chat.jsonl").write_text(
        json.dumps(
            {
                "id": "c1",
                "text": "I started a new job at Umbrella in Seattle.",
                "metadata": {"speaker": "Rupert"},
                "observed_at": "2025-02-01T10:00:00",
            }
        )
        + "\n"
        + json.dumps({"id": "c2", "text": "Rupert's manager is Sybil.", "observed_at": "2025-02-02"})
        + "\n"
    )
    return root


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Path:
    data = tmp_path_factory.mktemp("data")
    result = run("ingest", str(corpus), "--namespace", "demo", "--json", data_dir=data, check=True)
    assert json.loads(result.stdout)["stored"] == 3
    return data


def test_cli_ingest_is_idempotent(ingested: Path, corpus: Path) -> None:
    result = run("ingest", str(corpus), "--namespace", "demo", "--json", data_dir=ingested, check=True)
    assert json.loads(result.stdout) | {"entities": 0, "relations": 0} == {
        "read": 3, "stored": 0, "unchanged": 3, "entities": 0, "relations": 0,
    }  # fmt: skip


def test_cli_query_json(ingested: Path) -> None:
    result = run(
        "query", "Where does Rupert work?", "--namespace", "demo", "-k", "2", "--json", data_dir=ingested, check=True
    )
    hits = json.loads(result.stdout)
    assert len(hits) == 2 and "c1" in [h["external_id"] for h in hits]
    assert {
        "chunk_id",
        "document_id",
        "external_id",
        "namespace",
        "text",
        "score",
        "reasons",
        "entities",
        "relations",
        "metadata",
        "observed_at",
    } <= set(hits[0])
    c1 = next(h for h in hits if h["external_id"] == "c1")
    assert any(e["name"] == "Rupert" for e in c1["entities"])  # the speaker behind "I"
    assert any(r["source"]["name"] == "Rupert" and r["target"]["name"] == "Umbrella" for r in c1["relations"])


def test_cli_query_text_shows_entities_and_relations(ingested: Path) -> None:
    result = run("query", "Louvre", "--namespace", "demo", "-k", "1", data_dir=ingested, check=True)
    assert "Louvre" in result.stdout and "entities:" in result.stdout and "relation:" in result.stdout
    # Nothing but the answer: no library's log lines (transformers warned of a training loss on every query).
    assert result.stderr.strip() == "", result.stderr


def test_cli_stats_and_entity(ingested: Path) -> None:
    stats = json.loads(run("stats", "--json", "--namespace", "demo", data_dir=ingested, check=True).stdout)
    assert stats["documents"] == 3 and stats["chunks"] == 3 and stats["vectors"] == 3
    assert stats["entities"] > 5 and stats["relations"] > 2
    view = json.loads(run("entity", "Rupert", "--namespace", "demo", "--json", data_dir=ingested, check=True).stdout)
    assert view["entity"]["label"] == "PERSON" and view["mention_count"] >= 2


def test_cli_verify_and_export(ingested: Path, tmp_path: Path) -> None:
    report = json.loads(run("verify", "--json", data_dir=ingested, check=True).stdout)
    assert report["ok"] is True
    out = tmp_path / "graph.graphml"
    run("export", "graphml", str(out), "--namespace", "demo", data_dir=ingested, check=True)
    import networkx as nx

    graph = nx.read_graphml(out)
    assert graph.number_of_nodes() > 5 and graph.number_of_edges() > 2
    out_json = tmp_path / "graph.json"
    run("export", "json", str(out_json), "--namespace", "demo", data_dir=ingested, check=True)
    assert len(json.loads(out_json.read_text())["nodes"]) == graph.number_of_nodes()


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_cli_bad_inputs_exit_2_and_store_nothing(ingested: Path, tmp_path: Path) -> None:
    before = run("stats", "--json", data_dir=ingested, check=True).stdout
    bad_utf8 = tmp_path / "latin1.txt"
    bad_utf8.write_bytes("caf\xe9 au lait".encode("latin-1"))
    assert_one_line_error(run("ingest", str(bad_utf8), data_dir=ingested), 2, "latin1.txt", "not valid UTF-8")
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    assert_one_line_error(run("ingest", str(empty), data_dir=ingested), 2, "empty.txt", "empty")
    huge = tmp_path / "huge.txt"
    huge.write_text("word " * 2_100_000)  # 10.5 MB
    assert_one_line_error(run("ingest", str(huge), data_dir=ingested), 2, "more than the limit")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "fine"}\n{"text": oops}\n')
    assert_one_line_error(run("ingest", str(broken), data_dir=ingested), 2, "broken.jsonl:2", "invalid JSON")
    assert_one_line_error(run("ingest", str(tmp_path / "missing.txt"), data_dir=ingested), 2, "no such file")
    assert_one_line_error(run("entity", "Nobody", "--namespace", "demo", data_dir=ingested), 2, "no entity 'Nobody'")
    assert_one_line_error(run("query", "  ", data_dir=ingested), 2, "query is empty")
    assert run("stats", "--json", data_dir=ingested, check=True).stdout == before


def test_cli_wrong_database_url(tmp_path: Path) -> None:
    result = run("--database-url", "postgresql+psycopg://nobody@127.0.0.1:1/x", "stats", data_dir=tmp_path)
    assert_one_line_error(result, 1, "127.0.0.1:1", "failed")
    assert_one_line_error(run("--database-url", "nonsense://", "stats", data_dir=tmp_path), 2, "database URL")


def test_cli_unwritable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert_one_line_error(run("stats", data_dir=blocker / "data"), 2, "not writable")


def test_cli_db_upgrade_and_current(tmp_path: Path) -> None:
    assert "database at revision" in run("db", "upgrade", data_dir=tmp_path, check=True).stdout
    assert run("db", "current", data_dir=tmp_path, check=True).stdout.startswith("database: 0")


def test_cli_every_command_has_help_with_an_example() -> None:
    def walk(group, prefix=""):
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                yield from walk(command, f"{prefix}{name} ")
            else:
                yield f"{prefix}{name}", command

    for name, command in walk(cli):
        assert command.help and "Example:" in command.help, f"{name} lacks help with an example"


@pytest.mark.postgres
def test_cli_on_postgresql(postgres_server_url: str, corpus: Path, tmp_path: Path) -> None:
    url = postgres_server_url
    assert "database at revision" in run("--database-url", url, "db", "upgrade", data_dir=tmp_path, check=True).stdout
    result = run(
        "--database-url",
        url,
        "ingest",
        str(corpus / "chat.jsonl"),
        "--namespace",
        "pg-cli",
        "--json",
        data_dir=tmp_path,
        check=True,
    )
    assert json.loads(result.stdout)["stored"] == 2
    stats = json.loads(
        run("--database-url", url, "stats", "--namespace", "pg-cli", "--json", data_dir=tmp_path, check=True).stdout
    )
    assert (stats["documents"], stats["chunks"], stats["vectors"]) == (2, 2, 2)
    hits = json.loads(
        run(
            "--database-url", url, "query", "Umbrella", "--namespace", "pg-cli", "--json", data_dir=tmp_path, check=True
        ).stdout
    )
    assert hits[0]["external_id"] == "c1"


def test_cli_get_delete_by_external_id_and_forget(corpus: Path, tmp_path: Path) -> None:
    for ns in ("cli-a", "cli-b"):
        run("ingest", str(corpus / "chat.jsonl"), "--namespace", ns, data_dir=tmp_path, check=True)
    record = json.loads(run("get", "c1", "--namespace", "cli-a", "--json", data_dir=tmp_path, check=True).stdout)
    assert record["external_id"] == "c1" and record["namespace"] == "cli-a"
    assert "c1" in run("get", record["document_id"], data_dir=tmp_path, check=True).stdout
    run("delete", "c1", "--namespace", "cli-a", data_dir=tmp_path, check=True)
    assert_one_line_error(run("delete", "c1", "--namespace", "cli-a", data_dir=tmp_path), 2, "no document 'c1'")
    assert_one_line_error(run("get", "c1", "--namespace", "cli-a", data_dir=tmp_path), 2, "no document 'c1'")
    # forget names its namespace: there is no default to fall back on.
    assert run("forget", data_dir=tmp_path).returncode == 2
    nothing = json.loads(run("forget", "--namespace", "cli-c", "--json", data_dir=tmp_path, check=True).stdout)
    assert {k: v for k, v in nothing.items() if k != "namespace"} == dict.fromkeys(nothing.keys() - {"namespace"}, 0)
    gone = json.loads(run("forget", "--namespace", "cli-b", "--json", data_dir=tmp_path, check=True).stdout)
    assert (gone["documents"], gone["chunks"], gone["vectors"]) == (2, 2, 2)
    left = json.loads(run("stats", "--json", data_dir=tmp_path, check=True).stdout)
    assert (left["documents"], left["chunks"], left["vectors"]) == (1, 1, 1)  # cli-a's c2
    assert json.loads(run("verify", "--json", data_dir=tmp_path, check=True).stdout)["ok"]


def test_cli_query_where(ingested: Path) -> None:
    def ids(*where: str) -> list[str]:
        args = [a for w in where for a in ("--where", w)]
        result = run("query", "Rupert job", "--namespace", "demo", "--json", *args, data_dir=ingested, check=True)
        return sorted(h["external_id"] for h in json.loads(result.stdout) if h["external_id"] in ("c1", "c2"))

    assert ids() == ["c1", "c2"]
    assert ids("speaker=Rupert") == ["c1"]
    assert ids("speaker=Rupert", "speaker=Sybil") == ["c1"]
    assert ids("speaker=Nobody") == [] and ids("colour=red") == []
    assert_one_line_error(run("query", "job", "--where", "speaker", data_dir=ingested), 2, "--where takes KEY=VALUE")
    assert_one_line_error(run("query", "job", "--where", "bad key=1", data_dir=ingested), 2, "is invalid")
