"""Re-ingest of Chroma collections persisted by older chromadb releases, and its job table.

The persist directories under ``tests/fixtures/chroma/<release>/`` were written by chromadb 0.4.24
and 0.5.23 themselves (``tests/fixtures/make_chroma_fixtures.py``); the installed chromadb would
migrate them in place, so every test also checks that they are byte-identical afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError

from memory_graph import ConfigError, GraphStore, InputError, MemoryManager, Settings
from memory_graph.cli import cli
from memory_graph.ingest import with_precomputed
from memory_graph.reingest import ChromaSpec, reingest_chroma, run_reingest
from memory_graph.reingest.jobs import BatchCounts, JobStore, job_key
from memory_graph.schema import ReingestBatch
from memory_graph.vector_store import VectorStore, chunk_metadata, make_chroma_client

CHROMA = Path(__file__).parent / "fixtures" / "chroma"
V04 = CHROMA / "0.4.24"
V05 = CHROMA / "0.5.23"


def tree_digest(path: Path) -> dict[str, str]:
    return {
        p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module", autouse=True)
def fixtures_untouched():
    """Nothing in this module may change the committed persist directories."""
    before = {v: tree_digest(v) for v in (V04, V05)}
    yield
    assert {v: tree_digest(v) for v in (V04, V05)} == before


def source_vectors(tmp_path: Path, release: Path, collection: str, ids: list[str]) -> dict[str, np.ndarray]:
    """The vectors stored in a fixture collection (read from a copy, with the installed chromadb)."""
    import shutil

    copy = tmp_path / f"copy-{release.name}"
    if not copy.exists():
        shutil.copytree(release, copy)
    got = (
        make_chroma_client(path=copy)
        .get_collection(collection, embedding_function=None)
        .get(ids=ids, include=["embeddings"])
    )
    return {i: np.asarray(v, dtype=np.float32) for i, v in zip(got["ids"], got["embeddings"], strict=True)}


def stored_vectors(manager: MemoryManager, chunk_ids: list[str]) -> dict[str, np.ndarray]:
    got: dict[str, list] = {"ids": [], "embeddings": []}
    for namespace in manager.vectors.namespaces():
        part = manager.vectors.collection_for(namespace).get(ids=chunk_ids, include=["embeddings"])
        got["ids"] += part["ids"]
        got["embeddings"] += list(part["embeddings"])
    return {i: np.asarray(v, dtype=np.float32) for i, v in zip(got["ids"], got["embeddings"], strict=True)}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def doc_id(manager: MemoryManager, namespace: str, external_id: str) -> str:
    return manager.graph.document_ids_by_key(namespace, [external_id])[external_id]


# -- acceptance: a 0.4.x collection of 200 records --------------------------------------------


def test_reingest_chroma_04_collection_dry_run_store_and_rerun(manager: MemoryManager) -> None:
    dry = reingest_chroma(manager, path=V04, collections=["memories"], namespace="legacy", dry_run=True)[0]
    assert (dry.read, dry.stored, dry.would_store, dry.skipped, dry.failed) == (200, 0, 200, 0, 0)
    assert dry.accounted and dry.job_id is None
    assert manager.stats("legacy").documents == 0

    report = reingest_chroma(manager, path=V04, collections=["memories"], namespace="legacy")[0]
    assert (report.read, report.stored, report.skipped, report.failed) == (200, 200, 0, 0)
    assert report.complete and report.accounted and not report.problems
    assert report.vectors_reused == 200 and "reused" in report.vectors

    again = reingest_chroma(manager, path=V04, collections=["memories"], namespace="legacy")[0]
    assert (again.read, again.stored, again.skipped, again.failed) == (200, 0, 200, 0)
    assert again.skipped_reasons == {"already stored": 200} and again.job_id != report.job_id

    stats = manager.stats("legacy")
    assert (stats.documents, stats.chunks, stats.vectors) == (200, 200, 200)
    assert stats.entities > 20 and stats.relations > 10  # re-extracted, not just copied

    hits = manager.search("Who joined Acme Robotics in Berlin?", namespace="legacy", k=5)
    assert hits and all(h.external_id and h.external_id.startswith("mem-") for h in hits)
    top = hits[0]
    assert "Acme Robotics" in top.text
    assert top.metadata["source_collection"] == "memories" and top.metadata["speaker"] in top.text
    assert top.observed_at == datetime.fromisoformat(top.metadata["timestamp"]).astimezone(UTC)
    assert manager.verify().ok


def test_stored_vectors_are_not_reused_where_a_speaker_leads_the_embedded_text(tmp_path: Path, fake_embedder) -> None:
    """A stored vector is of the bare text: reused for a turn that names its speaker, embedded
    again (led by the speaker) for one that does not."""
    vs = VectorStore(make_chroma_client(path=tmp_path), "memory_graph", embedder=fake_embedder)
    texts = ["I moved to Denver.", "Nina moved to Denver."]
    metas = [chunk_metadata(namespace="n", document_id=f"d{i}", observed_at=None, speaker="Nina") for i in (1, 2)]
    stored = {"h1": fake_embedder(texts)[0], "h2": fake_embedder(["something else"])[0]}
    out = with_precomputed(texts, metas, ["h1", "h2"], stored, vs)
    assert np.allclose(out[0], fake_embedder(["Nina: I moved to Denver."])[0])
    assert np.allclose(out[1], stored["h2"])


def test_reingest_chroma_05_reuses_matching_vectors_and_reports_bad_records(
    manager: MemoryManager, tmp_path: Path
) -> None:
    reports = {
        r.source.rsplit("#", 1)[1]: r for r in reingest_chroma(manager, path=V05, all_collections=True, namespace="v05")
    }
    memories, mixed = reports["memories"], reports["mixed"]
    assert (memories.read, memories.stored, memories.vectors_reused) == (50, 50, 50)

    # The stored MiniLM vectors were reused as they are; the other model's vectors were not.
    chunk = manager.get(doc_id(manager, "v05", "mem-0007")).chunk_ids
    assert len(chunk) == 1
    reused = stored_vectors(manager, chunk)[chunk[0]]
    assert cosine(reused, source_vectors(tmp_path, V05, "memories", ["mem-0007"])["mem-0007"]) > 0.9999

    assert (mixed.read, mixed.stored, mixed.skipped, mixed.failed) == (6, 3, 3, 0) and mixed.accounted
    assert mixed.vectors_reused == 0 and "text-embedding-3-small" in mixed.vectors
    reasons = {p["id"]: p["reason"] for p in mixed.problems}
    assert set(reasons) == {"mix-empty", "mix-nodoc", "mix-badtime"}
    assert "empty" in reasons["mix-empty"] and "no document" in reasons["mix-nodoc"]
    assert "sometime last year" in reasons["mix-badtime"] and "not a date" in reasons["mix-badtime"]
    assert len(manager.get(doc_id(manager, "v05", "mix-long")).chunk_ids) > 1
    good = manager.get(doc_id(manager, "v05", "mix-good-1")).chunk_ids
    foreign = source_vectors(tmp_path, V05, "mixed", ["mix-good-1"])["mix-good-1"]
    assert cosine(stored_vectors(manager, good)[good[0]], foreign) < 0.5  # re-embedded


def test_reingest_chroma_current_release_reuses_vectors_only_when_model_is_known(
    manager: MemoryManager, tmp_path: Path
) -> None:
    texts = [
        "Noor teaches chemistry in Rotterdam.",
        "Kwame opened a cafe in Accra.",
        "Ines plays cello with the Porto orchestra.",
    ]
    ids = ["n1", "n2", "n3"]
    source = tmp_path / "current"
    collection = make_chroma_client(path=source).create_collection("notes", embedding_function=None)
    collection.add(
        ids=ids, documents=texts, embeddings=manager.vectors.embed(texts), metadatas=[{"n": i} for i in range(3)]
    )

    unknown = reingest_chroma(manager, path=source, collections=["notes"], namespace="cur-a")[0]
    assert unknown.stored == 3 and unknown.vectors_reused == 0 and "does not name" in unknown.vectors
    declared = reingest_chroma(
        manager, path=source, collections=["notes"], namespace="cur-b", source_model="all-MiniLM-L6-v2"
    )[0]
    assert declared.stored == 3 and declared.vectors_reused == 3
    forced = reingest_chroma(
        manager, path=source, collections=["notes"], namespace="cur-c", source_model="all-MiniLM-L6-v2", reembed=True
    )[0]
    assert forced.stored == 3 and forced.vectors_reused == 0
    assert manager.search("Who teaches chemistry?", namespace="cur-b", k=1)[0].external_id == "n1"

    # A record whose text changed replaces its memory, and the report says so.
    changed_text = ["Kwame opened a bakery in Kumasi."]
    collection.update(ids=["n2"], documents=changed_text, embeddings=manager.vectors.embed(changed_text))
    changed = reingest_chroma(manager, path=source, collections=["notes"], namespace="cur-a")[0]
    assert (changed.stored, changed.replaced, changed.skipped) == (1, 1, 2)
    assert [p["id"] for p in changed.problems if p["kind"] == "replaced"] == ["n2"]
    assert manager.stats("cur-a").documents == 3

    # Collections that share ids cannot go into one namespace together.
    make_chroma_client(path=source).create_collection("more", embedding_function=None).add(
        ids=["n3", "x1"], documents=["Other text.", "More text."], embeddings=manager.vectors.embed(["a", "b"])
    )
    with pytest.raises(ConfigError, match=r"collections 'more' and 'notes' share ids \(e\.g\. 'n3'\)"):
        reingest_chroma(manager, path=source, all_collections=True, namespace="cur-d")
    assert manager.stats("cur-d").documents == 0


def test_reingest_chroma_server_by_host_and_port(manager: MemoryManager, tmp_path: Path) -> None:
    import shutil
    import socket
    import urllib.request

    served = tmp_path / "served"
    shutil.copytree(V05, served)  # the server migrates what it serves: never the fixture itself
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (tmp_path / "chroma.log").open("w")
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "chroma"),
            "run",
            "--path",
            str(served),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, (tmp_path / "chroma.log").read_text()[
                    -2000:
                ]
                time.sleep(0.2)
        report = reingest_chroma(manager, host="127.0.0.1", port=port, collections=["memories"], namespace="srv")[0]
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    assert report.source == f"chroma:127.0.0.1:{port}#memories"
    assert (report.read, report.stored, report.vectors_reused) == (50, 50, 50)
    assert manager.search("Who joined Acme Robotics?", namespace="srv", k=1)[0].external_id.startswith("mem-")


# -- resumable, parallel -------------------------------------------------------------------------


def test_reingest_resumes_after_the_process_is_killed(settings: Settings) -> None:
    # Only subprocesses open the target's Chroma directory here (one process at a time).
    base = ["--data-dir", str(settings.data_dir), "--database-url", settings.sqlalchemy_url]
    args = ["reingest", "chroma", "--path", str(V04), "--collection", "memories", "--namespace", "legacy", "--batch-size", "10", "--reembed"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "memory_graph.cli", *base, *args],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    engine = create_engine(settings.sqlalchemy_url)
    done = 0
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with engine.connect() as conn:
                    done = len(conn.execute(select(ReingestBatch.id).where(ReingestBatch.status == "done")).all())
            except DBAPIError:  # the run has not created its tables yet
                pass
            if done >= 3:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.1)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        engine.dispose()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    assert 3 <= done < 20

    report = json.loads(run_cli(settings.data_dir, *base[2:], *args, "--json").stdout)["collections"][0]
    assert report["resumed"] and report["complete"] and report["accounted"]
    assert report["read"] == 200 and report["stored"] + report["skipped"] == 200 and report["failed"] == 0
    assert report["processed"] < 200  # it went on from the checkpoint instead of starting over
    assert not list(Path(tempfile.gettempdir()).glob(f"memory-graph-reingest-{proc.pid}-*"))  # its copy is gone
    stats = json.loads(run_cli(settings.data_dir, *base[2:], "stats", "--json", "--namespace", "legacy").stdout)
    assert (stats["documents"], stats["chunks"], stats["vectors"]) == (200, 200, 200)
    assert json.loads(run_cli(settings.data_dir, *base[2:], "verify", "--json").stdout)["ok"] is True


def test_reingest_two_worker_processes_share_the_job(manager: MemoryManager) -> None:
    report = reingest_chroma(
        manager, path=V05, collections=["memories"], namespace="par", workers=2, batch_size=5, reembed=True
    )[0]
    assert (report.read, report.stored, report.failed, report.workers) == (50, 50, 0, 2) and report.complete
    with manager.graph.engine.connect() as conn:
        rows = conn.execute(
            select(ReingestBatch.status, ReingestBatch.worker).where(ReingestBatch.job_id == report.job_id)
        ).all()
    assert len(rows) == 10 and {r.status for r in rows} == {"done"}
    assert all(r.worker and r.worker.split(":")[-1] != str(os.getpid()) for r in rows)  # done by the workers
    stats = manager.stats("par")
    assert (stats.documents, stats.vectors) == (50, 50)
    assert manager.verify().ok


# -- the job table --------------------------------------------------------------------------------


def new_job(jobs: JobStore, *, total: int = 25, size: int = 10, key: str = "k" * 48):
    return jobs.open_job(key=key, namespace="ns", source="test:source", total=total, batch_size=size)


def test_job_store_hands_out_every_batch_once(graph: GraphStore) -> None:
    jobs = JobStore(graph.engine)
    job = new_job(jobs)
    assert job.id.endswith(".0") and not job.resumed
    claims = [jobs.claim(job.id, worker=f"w{i}") for i in range(4)]
    assert [(b.start, b.stop) for b in claims[:3] if b] == [(0, 10), (10, 20), (20, 25)] and claims[3] is None
    assert jobs.complete(
        claims[0],
        BatchCounts(stored=9, skipped=1, problems=[{"id": "x", "kind": "skipped", "reason": "r"}]),
        worker="w0",
    )
    assert not jobs.complete(claims[1], BatchCounts(), worker="someone-else")
    state = jobs.progress(job.id)
    assert (state.total, state.done_records, state.done_batches, state.claimed_batches) == (25, 10, 1, 2)
    assert jobs.batch_counts(job.id)[0].problems == [{"id": "x", "kind": "skipped", "reason": "r"}]


def test_job_store_resumes_reclaims_dead_workers_and_starts_a_new_generation(graph: GraphStore) -> None:
    jobs = JobStore(graph.engine)
    job = new_job(jobs, total=20)
    first = jobs.claim(job.id, worker="this-host:999999")
    assert first is not None
    again = new_job(jobs, total=20)
    assert again.resumed and again.id == job.id
    assert jobs.reclaim_dead(job.id, host="other-host", alive=lambda pid: False) == 0  # not our host: leave it
    assert jobs.reclaim_dead(job.id, host="this-host", alive=lambda pid: True) == 0  # still running
    assert jobs.reclaim_dead(job.id, host="this-host", alive=lambda pid: False) == 1
    batches = [jobs.claim(job.id, worker="w"), jobs.claim(job.id, worker="w")]
    assert sorted(b.batch_no for b in batches if b) == [0, 1]
    for b in batches:
        assert b is not None and jobs.complete(b, BatchCounts(stored=10), worker="w")
    jobs.finish(job.id, {"stored": 20})
    assert jobs.job(job.id).finished_at is not None
    later = new_job(jobs, total=20)
    assert later.id.endswith(".1") and not later.resumed


def test_job_store_expired_lease_is_claimed_again(graph: GraphStore) -> None:
    job = new_job(JobStore(graph.engine), total=5)
    assert JobStore(graph.engine).claim(job.id, worker="slow") is not None
    assert JobStore(graph.engine).claim(job.id, worker="other") is None
    impatient = JobStore(graph.engine, lease=timedelta(seconds=-1))
    taken = impatient.claim(job.id, worker="other")
    assert taken is not None and taken.batch_no == 0


@pytest.mark.postgres
def test_job_store_claims_skip_locked_batches_on_postgresql(postgres_server_url: str) -> None:
    store = GraphStore.from_url(postgres_server_url, auto_upgrade=True)
    try:
        jobs = JobStore(store.engine)
        job = new_job(jobs, total=30, key=hashlib.sha256(b"skip-locked").hexdigest()[:48])
        with store.engine.connect() as holder:
            holder.begin()
            locked = holder.execute(
                text("SELECT id FROM reingest_batches WHERE job_id = :j AND batch_no = 0 FOR UPDATE"), {"j": job.id}
            ).scalar_one()
            started = time.perf_counter()
            batch = jobs.claim(job.id, worker="w")  # must not wait for the holder's lock
            waited = time.perf_counter() - started
            holder.rollback()
        assert batch is not None and batch.id != locked and batch.batch_no == 1 and waited < 2
    finally:
        store.close()


def test_job_key_depends_on_namespace_source_and_content() -> None:
    base = job_key(namespace="a", source="s", fingerprint="f")
    assert len(base) == 48
    assert len({base, job_key(namespace="b", source="s", fingerprint="f"), job_key(namespace="a", source="t", fingerprint="f"), job_key(namespace="a", source="s", fingerprint="g")}) == 4  # fmt: skip


# -- bad input --------------------------------------------------------------------------------------


def invoke(tmp_path: Path, *args: str):
    return CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "reingest", "chroma", *args])


def assert_one_line(result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_reingest_bad_input_is_one_line_naming_the_place(tmp_path: Path) -> None:
    assert_one_line(
        invoke(tmp_path, "--path", str(tmp_path / "nowhere"), "--collection", "x"), 2, "nowhere", "no such directory"
    )
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("not chroma")
    assert_one_line(
        invoke(tmp_path, "--path", str(plain), "--collection", "x"), 2, "plain", "not a Chroma persist directory"
    )
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)
    assert_one_line(
        invoke(tmp_path, "--path", str(corrupt), "--collection", "x"),
        2,
        "chroma.sqlite3",
        "not a readable Chroma database",
    )
    assert_one_line(
        invoke(tmp_path, "--path", str(V04), "--collection", "nope"),
        2,
        "0.4.24",
        "no collection 'nope'",
        "memories, mixed",
    )
    assert_one_line(invoke(tmp_path, "--collection", "memories"), 2, "--path")
    assert_one_line(
        invoke(tmp_path, "--path", str(V04), "--collection", "memories", "--all-collections"), 2, "--all-collections"
    )
    assert_one_line(
        invoke(tmp_path, "--host", "127.0.0.1", "--port", "1", "--collection", "memories"), 1, "127.0.0.1:1"
    )


def test_reingest_spec_of_a_missing_source_fails_before_any_job(manager: MemoryManager, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such directory"):
        run_reingest(ChromaSpec("memories", path=tmp_path / "gone", label=str(tmp_path / "gone")), manager=manager)
    assert JobStore(manager.graph.engine).jobs() == []


# -- the command line, end to end ---------------------------------------------------------------


def cli_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MEMORY_GRAPH_")} | {"OMP_NUM_THREADS": "1"}


def run_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "memory_graph.cli", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=cli_env(),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_reingest_cli_json_report_matches_stats(tmp_path: Path) -> None:
    data = tmp_path / "data"
    out = json.loads(
        run_cli(data, "reingest", "chroma", "--path", str(V04), "--collection", "memories", "--json").stdout
    )
    assert (out["read"], out["stored"], out["skipped"], out["failed"], out["accounted"]) == (200, 200, 0, 0, True)
    assert out["collections"][0]["vectors_reused"] == 200
    stats = json.loads(run_cli(data, "stats", "--json").stdout)
    assert (stats["documents"], stats["chunks"], stats["vectors"]) == (200, 200, 200)
    dry = json.loads(
        run_cli(data, "reingest", "chroma", "--path", str(V04), "--all-collections", "--dry-run", "--json").stdout
    )
    by_name = {c["source"].rsplit("#", 1)[1]: c for c in dry["collections"]}
    assert by_name["memories"]["would_store"] == 0 and by_name["memories"]["skipped_reasons"] == {"already stored": 200}
    assert by_name["mixed"]["would_store"] == 3 and dry["stored"] == 0
    assert json.loads(run_cli(data, "stats", "--json").stdout) == stats
