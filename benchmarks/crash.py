"""Crash harness: SIGKILL writers at random points, then check that nothing acknowledged is lost.

Each round forks a child that runs one operation (``add``, ``add_many``, a JSONL ``import``, a
``reingest`` of a JSONL store with 2 worker processes, ``delete``, ``forget`` of an earlier
round's namespace, ``merge``: memories whose
one-word names merge into the full ones, then an undo of the merge) and writes each
acknowledgement to a log, fsynced, the moment the call returns. The parent kills the child's
whole process group (workers included) at a random, seeded moment. A fresh child then:

1. checks that every acknowledged memory is present in SQL and in the vector index (and that
   this round's are found by a search for their unique code word and by their own vector);
   deleted ones are gone, forgotten namespaces hold nothing and undone merges stay undone;
2. counts orphans on both sides (chunks without vectors, vectors without chunks, unconfirmed
   chunks) and duplicates (documents by namespace and external id, chunks by document and
   position, relations by their ends and predicate);
3. runs ``verify(repair=True)`` and counts again;
4. re-runs the killed operation to the end and checks it stored nothing twice.

The models load once, in the parent, before any store is opened; every child is a fork of it
(a child opens its own stores), so a round costs the operation, not a model load.

    python benchmarks/crash.py --kills 200 [--seed 1] [--backend sqlite|postgres]
        [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--json OUT]

``--backend postgres`` creates a database of its own on that server (dropped afterwards) and
starts ``chroma run`` on a free loopback port. Exit status 1 when anything was lost, left
orphaned or duplicated after repair, or a re-run was not idempotent.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OPERATIONS = ("add", "add_many", "import", "reingest", "delete", "forget", "merge")
#: How often each operation is drawn (a re-ingest spawns 2 workers that load the models: costly).
WEIGHTS = {"add": 3, "add_many": 3, "import": 2, "reingest": 1, "delete": 2, "forget": 1, "merge": 2}
ITEMS = 6  # memories per operation

CITIES = ("Oslo", "Lisbon", "Nairobi", "Osaka", "Quito", "Tallinn", "Perth", "Accra")
FIRST = ("Marla", "Teodor", "Ingrid", "Casimir", "Yusra", "Oren", "Lisette", "Bram")
LAST = ("Quenby", "Halvorsen", "Okafor", "Vidal", "Brandt", "Moreau", "Sato", "Lindqvist")


@dataclass
class Totals:
    """What a run found, summed over its rounds."""

    kills: int = 0
    kills_mid_operation: int = 0
    by_operation: dict[str, int] = field(default_factory=dict)
    acknowledged: int = 0  # by the killed operations
    checked_at_end: int = 0  # acknowledged memories (re-runs included) the last check found
    lost: int = 0
    not_searchable: int = 0
    orphans_before_repair: int = 0
    orphans_after_repair: int = 0
    duplicates_before_repair: int = 0
    duplicates_after_repair: int = 0
    not_idempotent: int = 0
    problems: list[str] = field(default_factory=list)

    def ok(self) -> bool:
        return not (
            self.lost
            or self.not_searchable
            or self.orphans_after_repair
            or self.duplicates_after_repair
            or self.not_idempotent
            or self.problems
        )


# -- the operations (run in a forked child) ------------------------------------------------------


def _text(r: int, i: int) -> str:
    name = f"{FIRST[i % len(FIRST)]} {LAST[(i + r) % len(LAST)]}"
    return f"{name} moved to {CITIES[(i + r) % len(CITIES)]} in round {r} and filed note code K{r}x{i}."


def _ack(log: Any, **entry: Any) -> None:
    log.write(json.dumps(entry) + "\n")
    log.flush()
    os.fsync(log.fileno())


def _jsonl(work: Path, r: int, kind: str) -> Path:
    path = work / f"{kind}-{r}.jsonl"
    if not path.exists():
        rows = [{"id": f"{kind}-{r}-{i}", "text": _text(r, i)} for i in range(ITEMS)]
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def run_operation(mm: Any, op: str, r: int, work: Path, log: Any, candidates: list[list[str]]) -> None:
    """Run operation ``op`` of round ``r`` to its end, acknowledging as it goes."""
    from memory_graph.errors import DocumentNotFoundError, NotFoundError
    from memory_graph.reingest import ImportSpec, run_reingest

    ns = f"r{r}"
    if op == "add":
        for i in range(ITEMS):
            rec = mm.add(_text(r, i), namespace=ns, external_id=f"{ns}-{i}")
            _ack(log, op="add", ns=ns, ext=f"{ns}-{i}", doc=rec.document_id, code=f"K{r}x{i}")
    elif op == "add_many":
        for start in range(0, ITEMS, 4):
            rows = [{"text": _text(r, i), "external_id": f"{ns}-{i}"} for i in range(start, start + 4)]
            for i, rec in zip(range(start, start + 4), mm.add_many(rows, namespace=ns), strict=True):
                _ack(log, op="add", ns=ns, ext=f"{ns}-{i}", doc=rec.document_id, code=f"K{r}x{i}")
    elif op in ("import", "reingest"):
        spec = ImportSpec("jsonl", _jsonl(work, r, op))
        report = run_reingest(spec, manager=mm, namespace=ns, workers=2 if op == "reingest" else 1, batch_size=2)
        if not (report.complete and report.failed == 0):
            raise RuntimeError(f"{op} did not complete: {report}")
        for i in range(ITEMS):
            _ack(log, op="add", ns=ns, ext=f"{op}-{r}-{i}", doc=None, code=f"K{r}x{i}")
    elif op == "delete":
        for doc, _ns in candidates:
            with contextlib.suppress(DocumentNotFoundError):  # a re-run: deleted the first time
                mm.delete(doc)
            _ack(log, op="del", doc=doc)
    elif op == "forget":
        for _doc, gone in candidates:  # one namespace of an earlier round, all of it
            mm.forget(gone)  # idempotent: a re-run removes what the first try left
            _ack(log, op="forget", ns=gone)
    elif op == "merge":
        for i in range(ITEMS // 2):
            mns = f"{ns}-m{i}"
            full = f"{FIRST[i]} {LAST[(i + r) % len(LAST)]}"
            for j, text in enumerate(
                (
                    f"{full} joined the Kestrel choir, code K{r}x{i}a.",
                    f"{FIRST[i]} sang there on Friday, code K{r}x{i}b.",
                )
            ):
                rec = mm.add(text, namespace=mns, external_id=f"{mns}-{j}")
                _ack(log, op="add", ns=mns, ext=f"{mns}-{j}", doc=rec.document_id, code=f"K{r}x{i}{'ab'[j]}")
            if i % 2 == 0:
                for merge in mm.merges(mns):
                    if merge.undone_at is None:
                        with contextlib.suppress(NotFoundError):
                            mm.undo_merge(merge.id)
                        _ack(log, op="undo", ns=mns, merge=merge.id)
    else:
        raise ValueError(op)


# -- the check (a fresh forked child) ------------------------------------------------------------


def _duplicates(mm: Any) -> int:
    from sqlalchemy import text

    queries = (
        "SELECT count(*) FROM (SELECT 1 FROM documents WHERE external_id IS NOT NULL AND deleted_at IS NULL"
        " GROUP BY namespace, external_id HAVING count(*) > 1) d",
        "SELECT count(*) FROM (SELECT 1 FROM chunks GROUP BY document_id, ordinal HAVING count(*) > 1) c",
        "SELECT count(*) FROM (SELECT 1 FROM relations GROUP BY namespace, source_id, predicate, target_id"
        " HAVING count(*) > 1) r",
    )
    with mm.graph.engine.connect() as conn:
        return sum(int(conn.execute(text(q)).scalar() or 0) for q in queries)


def _orphans(report: Any) -> int:
    return int(report.chunks_without_vectors + report.vectors_without_chunks + report.unindexed_chunks)


def _live_documents(mm: Any, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    from sqlalchemy import text

    found: dict[tuple[str, str], str] = {}
    with mm.graph.engine.connect() as conn:
        rows = conn.execute(text("SELECT namespace, external_id, id FROM documents WHERE deleted_at IS NULL")).all()
    wanted = set(keys)
    for ns, ext, doc in rows:
        if (ns, ext) in wanted:
            found[(ns, ext)] = doc
    return found


def check(mm: Any, state: dict[str, Any], op: str, r: int, work: Path, candidates: list[list[str]]) -> dict[str, Any]:
    """Everything acknowledged is there; orphans and duplicates before and after repair; the re-run."""
    from sqlalchemy import text

    out: dict[str, Any] = {"problems": []}
    live = state["live"]  # "ns|ext" -> code
    keys = [tuple(k.split("|", 1)) for k in live]
    docs = _live_documents(mm, keys)  # type: ignore[arg-type]
    out["lost"] = sum(1 for k in keys if k not in docs)
    wanted = set(docs.values())
    with mm.graph.engine.connect() as conn:
        chunk_ids = [c for c, d in conn.execute(text("SELECT id, document_id FROM chunks")).all() if d in wanted]
    out["lost"] += len(chunk_ids) - len(mm.vectors.existing_ids(chunk_ids))
    out["not_searchable"] = 0
    for key in state["this_round"]:
        ns, ext = key.split("|", 1)
        doc = docs.get((ns, ext))
        if doc is None:
            continue  # counted as lost
        # Found by a search for its code word (k above the namespace's size: the ranking among
        # near-identical texts is not what is checked), and by its own vector.
        hits = mm.search(f"code {live[key]}", namespace=ns, k=ITEMS + 2)
        chunk = mm.get(doc).chunk_ids[0]
        own = mm.vectors.query(mm.vectors.embed([mm.graph.chunks([chunk])[chunk].text])[0], namespace=ns, k=3)
        if doc not in {h.document_id for h in hits} or chunk not in {cid for cid, _ in own}:
            out["not_searchable"] += 1
    for doc in state["deleted"]:
        try:
            mm.get(doc)
            out["problems"].append(f"deleted document {doc} is back")
        except Exception:
            pass
    for ns in state["forgotten"]:
        counts = mm.stats(ns)
        if counts.documents or counts.chunks or counts.entities or counts.vectors:
            out["problems"].append(f"forgotten namespace {ns} still holds {counts.to_dict()}")
    for ns, merge_id in state["undone"]:
        # (A delete of the memories it joined removes a merge with its entities.)
        if any(m.id == merge_id and m.undone_at is None for m in mm.merges(ns)):
            out["problems"].append(f"undone merge {merge_id} of {ns} is not undone")
    before = mm.verify()
    out["orphans_before"] = _orphans(before)
    out["duplicates_before"] = _duplicates(mm)
    mm.verify(repair=True)
    after = mm.verify()
    out["orphans_after"] = _orphans(after) + (0 if after.ok else 1)
    out["duplicates_after"] = _duplicates(mm)
    # The re-run: the operation again, to its end; it may add what the kill cut off, never twice.
    counts = mm.stats()
    with (work / "rerun.log").open("w") as log:
        run_operation(mm, op, r, work, log, candidates)
    rerun = [json.loads(line) for line in (work / "rerun.log").read_text().splitlines()]
    added = {(e["ns"], e["ext"]) for e in rerun if e["op"] == "add"}
    redone = _live_documents(mm, list(added))
    stats = mm.stats()
    out["rerun"] = rerun
    out["not_idempotent"] = int(len(redone) != len(added) or _duplicates(mm) > 0 or not mm.verify().ok)
    if op not in ("delete",) and stats.documents - counts.documents > len(added - set(docs)):
        out["not_idempotent"] += 1
    return out


# -- the parent --------------------------------------------------------------------------------


def _settings(args: argparse.Namespace, data_dir: Path) -> Any:
    from memory_graph import Settings

    if args.backend == "sqlite":
        return Settings(data_dir=data_dir)
    return Settings(
        data_dir=data_dir, database_url=args.database_url, chroma_host="127.0.0.1", chroma_port=args.chroma_port
    )


def _in_own_group(target: Any) -> None:
    os.setpgid(0, 0)  # its own process group, so that a kill takes its workers too
    target()


def _fork(target: Any) -> Any:
    """``target`` in a forked child (the models already loaded), started."""
    process = multiprocessing.get_context("fork").Process(target=_in_own_group, args=(target,))
    process.start()
    return process


def _wait_group_gone(pgid: int, timeout: float = 30) -> None:
    """Until no process of the killed group (a re-ingest's workers) is left, zombies aside."""
    from memory_graph.reingest.jobs import pid_alive

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rpartition(")")[2].split()
                except OSError:
                    continue
                if len(fields) > 3 and int(fields[2]) == pgid:
                    pids.append(int(entry.name))
        if not any(pid_alive(p) for p in pids):
            return
        time.sleep(0.05)


def _read_log(path: Path) -> list[dict[str, Any]]:
    entries = []
    if path.exists():
        for line in path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):  # a line cut short: never acknowledged
                entries.append(json.loads(line))
    return entries


def _forget_doc(state: dict[str, Any], doc: str) -> None:
    for key, v in list(state["docs"].items()):
        if v[1] == doc:
            del state["docs"][key]
            state["live"].pop(key, None)


def _apply(state: dict[str, Any], e: dict[str, Any]) -> None:
    """What an acknowledgement promises, from now on."""
    if e["op"] == "add":
        key = f"{e['ns']}|{e['ext']}"
        state["live"][key] = e["code"]
        if e.get("doc"):
            state["docs"][key] = [e["code"], e["doc"], e["ns"]]
    elif e["op"] == "del":
        _forget_doc(state, e["doc"])
        if e["doc"] not in state["deleted"]:
            state["deleted"].append(e["doc"])
    elif e["op"] == "forget":
        for key in [k for k in state["live"] if k.split("|", 1)[0] == e["ns"]]:
            state["live"].pop(key, None)
            state["docs"].pop(key, None)
        if e["ns"] not in state["forgotten"]:
            state["forgotten"].append(e["ns"])
    elif e["op"] == "undo" and [e["ns"], e["merge"]] not in state["undone"]:
        state["undone"].append([e["ns"], e["merge"]])


def run(args: argparse.Namespace) -> Totals:
    import torch

    from memory_graph import Extractor, MemoryManager
    from memory_graph.vector_store import SentenceTransformerEmbedder

    torch.set_num_threads(1)  # children are forks: no thread pool may exist before the fork
    extractor = Extractor.load("en_memory_graph")
    extractor.tokenize("warm up")
    embedder = SentenceTransformerEmbedder()
    embedder(["warm up"])  # the single-text encoder of searches
    embedder(["warm", "up"])
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="memory-graph-crash-"))
    settings = _settings(args, work / "data")
    totals = Totals()
    state: dict[str, Any] = {"live": {}, "docs": {}, "deleted": [], "undone": [], "forgotten": []}
    ops = [op for op in OPERATIONS if op in args.operations]
    weights = [WEIGHTS[op] for op in ops]
    started = time.monotonic()

    def manager() -> Any:
        return MemoryManager(settings, extractor=extractor)

    try:
        for r in range(args.kills):
            op = rng.choices(ops, weights)[0]
            live_docs = [[v[1], v[2]] for v in state["docs"].values()]
            candidates = rng.sample(live_docs, min(3, len(live_docs))) if op == "delete" else []
            if op == "forget" and live_docs:
                candidates = [["", rng.choice(sorted({ns for _doc, ns in live_docs}))]]
            if op in ("delete", "forget") and not candidates:
                op = "add"
            log_path, ready = work / f"ack-{r}.log", work / f"ready-{r}"

            def child(
                op: str = op, r: int = r, log_path: Path = log_path, ready: Path = ready, candidates: list = candidates
            ) -> None:
                with manager() as mm, log_path.open("a") as log:
                    ready.touch()
                    run_operation(mm, op, r, work, log, candidates)
                (work / f"done-{r}").touch()
                time.sleep(3600)  # finished before the kill: wait for it

            process = _fork(child)
            pid = process.pid
            deadline = time.monotonic() + 120
            while not ready.exists() and process.is_alive() and time.monotonic() < deadline:
                time.sleep(0.01)
            if not ready.exists():
                process.kill()
                process.join()
                raise RuntimeError(f"round {r} ({op}): the child did not open the store (exit {process.exitcode})")
            span = args.reingest_span if op == "reingest" else args.span
            time.sleep(rng.uniform(0.0, span))
            os.killpg(pid, signal.SIGKILL)
            process.join()
            _wait_group_gone(pid)
            totals.kills += 1
            totals.by_operation[op] = totals.by_operation.get(op, 0) + 1
            mid = not (work / f"done-{r}").exists()
            totals.kills_mid_operation += mid
            acks = _read_log(log_path)
            state["this_round"] = []
            # A delete the kill cut short may or may not have happened: its re-run settles it.
            for _doc, _ns in candidates if op == "delete" else []:
                _forget_doc(state, _doc)
            if op == "forget":  # cut short, it may have removed any part of the namespace
                for key in [k for k in state["live"] if k.split("|", 1)[0] == candidates[0][1]]:
                    state["live"].pop(key, None)
                    state["docs"].pop(key, None)
            for e in acks:
                _apply(state, e)
                if e["op"] == "add":
                    state["this_round"].append(f"{e['ns']}|{e['ext']}")
            totals.acknowledged += sum(1 for e in acks if e["op"] == "add")
            result_path = work / f"check-{r}.json"

            def checker(
                op: str = op, r: int = r, result_path: Path = result_path, candidates: list = candidates
            ) -> None:
                with manager() as mm:
                    result_path.write_text(json.dumps(check(mm, state, op, r, work, candidates)))

            checking = _fork(checker)
            checking.join()
            status = checking.exitcode
            if status != 0 or not result_path.exists():
                totals.problems.append(f"round {r} ({op}): the check failed (status {status})")
                continue
            result = json.loads(result_path.read_text())
            totals.lost += result["lost"]
            totals.not_searchable += result["not_searchable"]
            totals.orphans_before_repair += result["orphans_before"]
            totals.orphans_after_repair += result["orphans_after"]
            totals.duplicates_before_repair += result["duplicates_before"]
            totals.duplicates_after_repair += result["duplicates_after"]
            totals.not_idempotent += result["not_idempotent"]
            totals.problems += [f"round {r} ({op}): {p}" for p in result["problems"]]
            # The re-run finished the operation: what it acknowledged holds from now on.
            for e in result["rerun"]:
                _apply(state, e)
            if args.verbose:
                print(
                    f"round {r:3d} {op:9s} mid={mid!s:5s} acked={len(acks):2d} {json.dumps({k: v for k, v in result.items() if k != 'rerun'})}",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    totals.checked_at_end = len(state["live"])
    totals.problems += [] if totals.kills else ["no kills"]
    print(f"{totals.kills} kills in {time.monotonic() - started:.0f} s", flush=True)
    return totals


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "MEMORY_GRAPH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--operations", nargs="+", default=list(OPERATIONS), choices=OPERATIONS)
    parser.add_argument("--span", type=float, default=1.0, help="kill within this many seconds of the start")
    parser.add_argument(
        "--reingest-span", type=float, default=25.0, help="the same, for a re-ingest (its workers load models)"
    )
    parser.add_argument("--json", type=Path, help="write the totals here")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    chroma = None
    chroma_dir = Path()
    admin = None
    db_name = f"memory_graph_crash_{uuid.uuid4().hex[:8]}"
    try:
        if args.backend == "postgres":
            from sqlalchemy import create_engine, text
            from sqlalchemy.engine import make_url

            admin_url = make_url(args.postgres_url)
            admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{db_name}"'))
            args.database_url = admin_url.set(database=db_name).render_as_string(hide_password=False)
            args.chroma_port = _free_port()
            chroma_dir = Path(tempfile.mkdtemp(prefix="memory-graph-crash-chroma-"))
            chroma_bin = Path(sys.executable).with_name("chroma")
            chroma = subprocess.Popen(
                [
                    str(chroma_bin),
                    "run",
                    "--path",
                    str(chroma_dir),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(args.chroma_port),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", args.chroma_port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("chroma run did not start") from None
                    time.sleep(0.2)
            from memory_graph import GraphStore

            GraphStore.from_url(args.database_url, auto_upgrade=True).close()  # a server database: migrated once
        totals = run(args)
    finally:
        if chroma is not None:
            chroma.terminate()
            chroma.wait(30)
            shutil.rmtree(chroma_dir, ignore_errors=True)
        if admin is not None:
            from sqlalchemy import text

            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
            admin.dispose()
    summary = asdict(totals) | {"backend": args.backend, "seed": args.seed, "ok": totals.ok()}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0 if totals.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
