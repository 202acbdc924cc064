"""The ``memory-graph`` command line: thin wrappers over the library.

Data goes to stdout (``--json`` for scripts), progress and errors to stderr. Exit codes: 0
success, 1 the operation failed, 2 bad usage or input. Errors are one line unless ``--debug``.
"""

from __future__ import annotations

import functools
import json
import sys
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from memory_graph.config import Settings
from memory_graph.errors import ConfigError, InputError, MemoryGraphError, NotFoundError
from memory_graph.facts import status_text

F = TypeVar("F", bound=Callable[..., Any])


class AppContext:
    def __init__(self, data_dir: Path | None, database_url: str | None, debug: bool, url: str | None = None) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self.debug = debug
        self.url = url

    def settings(self) -> Settings:
        overrides: dict[str, Any] = {}
        if self.data_dir is not None:
            overrides["data_dir"] = self.data_dir
        if self.database_url is not None:
            overrides["database_url"] = self.database_url
        if self.url is not None:
            overrides["url"] = self.url
        return Settings(**overrides)  # an invalid value is a one-line ConfigError already

    def manager(self) -> Any:
        from memory_graph.manager import MemoryManager

        return MemoryManager(self.settings())

    def memory(self) -> Any:
        """The memory the data commands use: a running server's (``--url``, ``MEMORY_GRAPH_URL``;
        no model load here) or an in-process :class:`MemoryManager`."""
        settings = self.settings()
        if settings.url is None:
            return self.manager()
        try:
            from memory_graph.client import MemoryGraphClient
        except ImportError as exc:
            raise ConfigError(f"--url needs httpx ({exc}): pip install 'memory-graph[server]'") from exc
        return MemoryGraphClient(settings=settings)


def handle_errors(func: F) -> F:
    """Turn library errors into one line on stderr and the documented exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = bool(click.get_current_context().find_root().params.get("debug"))
        try:
            return func(*args, **kwargs)
        except click.exceptions.Exit:
            raise
        except (InputError, ConfigError, NotFoundError) as exc:
            _fail(exc, 2, debug)
        except MemoryGraphError as exc:
            _fail(exc, 1, debug)
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            sys.exit(130)
        except Exception as exc:  # anything unplanned is still one line unless --debug
            _fail(exc, 1, debug, prefix=f"unexpected {exc.__class__.__name__}: ")

    return wrapper  # type: ignore[return-value]


def _fail(exc: BaseException, code: int, debug: bool, prefix: str = "") -> None:
    if debug:
        traceback.print_exc()
    message = " ".join(str(exc).split()) or exc.__class__.__name__
    click.echo(f"error: {prefix}{message}", err=True)
    sys.exit(code)


def emit(data: Any, as_json: bool, render: Callable[[Any], str]) -> None:
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        click.echo(render(data))


namespace_option = click.option(
    "--namespace", "-n", default=None, help="Namespace (tenant/user scope); default from settings."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
as_of_option = click.option(
    "--as-of", default=None, help="Answer as of this ISO date: the facts valid then (default: now)."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data-dir", type=click.Path(path_type=Path), envvar="MEMORY_GRAPH_DATA_DIR", help="Embedded data directory."
)
@click.option("--database-url", envvar="MEMORY_GRAPH_DATABASE_URL", help="SQLAlchemy URL (postgresql+psycopg://...).")
@click.option(
    "--url",
    default=None,
    help="A running server (memory-graph serve) for ingest, query, entity, stats and verify; "
    "key in MEMORY_GRAPH_API_KEY (default: MEMORY_GRAPH_URL, else in-process).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(package_name="memory-graph")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, database_url: str | None, url: str | None, debug: bool) -> None:
    """Entity-aware knowledge-graph memory: ingest text, query it with its graph context."""
    warnings.showwarning = _show_warning
    ctx.obj = AppContext(data_dir, database_url, debug, url)


def _show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    """A warning as one line on stderr (a misspelt MEMORY_GRAPH_* variable, for example)."""
    click.echo(f"warning: {' '.join(str(message).split())}", err=True)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@namespace_option
@json_option
@click.pass_obj
@handle_errors
def ingest(app: AppContext, paths: tuple[Path, ...], namespace: str | None, as_json: bool) -> None:
    """Ingest text, markdown and JSONL files (directories are searched for them).

    A .txt or .md file is one memory (its path is the external id, its modification time the
    observation time); each line of a .jsonl file is one memory:
    {"text": ..., "id": ..., "metadata": {...}, "observed_at": ...}.
    Every file is read and checked before anything is stored.

    Example:
        memory-graph ingest examples/ --namespace demo
    """
    from tqdm import tqdm

    from memory_graph.files import read_memory_files

    rows = read_memory_files(paths)
    with app.memory() as mm, tqdm(total=len(rows), unit="memory", file=sys.stderr, disable=None) as bar:
        records = mm.add_many(rows, namespace=namespace, progress=bar.update)
    summary = {
        "read": len(rows),
        "stored": sum(r.created for r in records),
        "unchanged": sum(not r.created for r in records),
        "entities": len({e.id for r in records for e in r.entities}),
        "relations": len({rel.id for r in records for rel in r.relations}),
    }
    emit(summary, as_json, lambda s: ", ".join(f"{k}: {v}" for k, v in s.items()))


@cli.command()
@click.argument("question")
@namespace_option
@click.option("-k", default=5, show_default=True, type=click.IntRange(min=1), help="Number of hits.")
@click.option("--since", default=None, help="Only memories observed at or after this ISO date.")
@click.option("--until", default=None, help="Only memories observed before this ISO date.")
@as_of_option
@click.option(
    "--where",
    "where",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only memories whose metadata KEY is VALUE (repeatable: each key must match, one of a key's values).",
)
@json_option
@click.pass_obj
@handle_errors
def query(
    app: AppContext,
    question: str,
    namespace: str | None,
    k: int,
    since: str | None,
    until: str | None,
    as_of: str | None,
    where: tuple[str, ...],
    as_json: bool,
) -> None:
    """Search memories; print each hit with its entities and relations.

    Example:
        memory-graph query "Where does Alice work?" --namespace demo -k 3 --where kind=episodic
    """
    metadata = parse_where_options(where)
    with app.memory() as mm:
        hits = mm.search(question, namespace=namespace, k=k, since=since, until=until, as_of=as_of, where=metadata)
    emit([h.to_dict() for h in hits], as_json, lambda _: render_hits(hits))


def parse_where_options(options: tuple[str, ...]) -> dict[str, Any] | None:
    """``--where KEY=VALUE`` options as a ``where=`` filter: a VALUE that reads as a JSON number,
    ``true`` or ``false`` is one, any other is a string; a key given twice matches either value."""
    values: dict[str, list[Any]] = {}
    for option in options:
        key, sep, raw = option.partition("=")
        if not sep or not key:
            raise InputError(f"--where takes KEY=VALUE, not {option!r}")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        values.setdefault(key, []).append(value if isinstance(value, (bool, int, float)) else raw)
    if not values:
        return None
    return {key: vs[0] if len(vs) == 1 else {"$in": vs} for key, vs in values.items()}


def render_hits(hits: list[Any]) -> str:
    if not hits:
        return "no memories found"
    lines = []
    for i, hit in enumerate(hits, 1):
        when = hit.observed_at.date().isoformat() if hit.observed_at else "undated"
        lines.append(f"{i}. [{hit.score:.4f} {'+'.join(hit.reasons)}] {hit.external_id or hit.document_id} ({when})")
        lines.append("   " + " ".join(hit.text.split())[:300])
        if hit.entities:
            lines.append("   entities: " + ", ".join(f"{e.name} ({e.label})" for e in hit.entities[:12]))
        for rel in hit.relations[:6]:
            status = f" ({status_text(rel.status, rel.valid_from, rel.valid_until)})" if rel.status else ""
            lines.append(
                f"   relation: {rel.source.name} —{rel.predicate}→ {rel.target.name}{status}{_as_written(rel)}"
            )
    return "\n".join(lines)


@cli.command()
@click.argument("memory_id", metavar="ID")
@namespace_option
@json_option
@click.pass_obj
@handle_errors
def get(app: AppContext, memory_id: str, namespace: str | None, as_json: bool) -> None:
    """Show a stored memory by its document id, or by the external id it was added with.

    Example:
        memory-graph get msg-1 --namespace demo
    """
    with app.memory() as mm:
        record = mm.get(memory_id, namespace=namespace)
    emit(record.to_dict(), as_json, lambda _: render_record(record))


def render_record(record: Any) -> str:
    lines = [f"{record.document_id} ({record.external_id or 'no external id'}) in {record.namespace}"]
    lines.append(f"  chunks: {len(record.chunk_ids)}")
    if record.entities:
        lines.append("  entities: " + ", ".join(f"{e.name} ({e.label})" for e in record.entities[:12]))
    lines += [f"  relation: {r.source.name} —{r.predicate}→ {r.target.name}" for r in record.relations[:6]]
    return "\n".join(lines)


@cli.command()
@click.argument("memory_id", metavar="ID")
@namespace_option
@click.pass_obj
@handle_errors
def delete(app: AppContext, memory_id: str, namespace: str | None) -> None:
    """Remove a memory from both stores, by its document id or its external id.

    Example:
        memory-graph delete msg-1 --namespace demo
    """
    with app.memory() as mm:
        mm.delete(memory_id, namespace=namespace)
    click.echo(f"deleted {memory_id}", err=True)


@cli.command()
@click.option("--namespace", "-n", required=True, help="The namespace to remove, entirely (no default).")
@json_option
@click.pass_obj
@handle_errors
def forget(app: AppContext, namespace: str, as_json: bool) -> None:
    """Remove every memory, graph row and vector of a namespace, and print what went.

    Example:
        memory-graph forget --namespace user-42
    """
    with app.memory() as mm:
        result = mm.forget(namespace)
    emit(result.to_dict(), as_json, lambda d: "\n".join(f"{k}: {v}" for k, v in d.items()))


@cli.command()
@click.argument("name")
@namespace_option
@as_of_option
@json_option
@click.pass_obj
@handle_errors
def entity(app: AppContext, name: str, namespace: str | None, as_of: str | None, as_json: bool) -> None:
    """Show an entity: aliases, relations with evidence (current values first, former ones with their
    period), mentions.

    Example:
        memory-graph entity Alice --namespace demo
    """
    with app.memory() as mm:
        view = mm.entity(name, namespace=namespace, as_of=as_of)
    emit(view.to_dict(), as_json, lambda _: render_entity(view))


def _as_written(rel: Any) -> str:
    """(as written: "was born in")" where the sentence words the relation otherwise."""
    return f' (as written: "{rel.surface}")' if rel.surface and rel.surface != rel.predicate else ""


def render_entity(view: Any) -> str:
    e = view.entity
    lines = [f"{e.name} ({e.label}), {view.mention_count} mentions, aliases: {', '.join(view.aliases) or '-'}"]
    for rel in view.relations:
        status = f" ({status_text(rel.status, rel.valid_from, rel.valid_until)})" if rel.status else ""
        lines.append(
            f"  {rel.source.name} —{rel.predicate}→ {rel.target.name}{status}{_as_written(rel)}"
            f'   "{" ".join(rel.evidence.split())[:120]}"'
        )
    for m in view.mentions[:10]:
        when = m.observed_at.date().isoformat() if m.observed_at else "undated"
        lines.append(f"  mentioned {when}: {' '.join(m.sentence.split())[:120]}")
    return "\n".join(lines)


@cli.command()
@namespace_option
@json_option
@click.pass_obj
@handle_errors
def stats(app: AppContext, namespace: str | None, as_json: bool) -> None:
    """Count documents, chunks, entities, relations, mentions and vectors.

    Example:
        memory-graph stats --json
    """
    with app.memory() as mm:
        result = mm.stats(namespace)
    emit(result.to_dict(), as_json, lambda d: "\n".join(f"{k}: {v}" for k, v in d.items() if v is not None))


@cli.command()
@click.option("--repair", is_flag=True, help="Fix what is found, from the SQL side.")
@json_option
@click.pass_obj
@handle_errors
def verify(app: AppContext, repair: bool, as_json: bool) -> None:
    """Check that the relational store and the vector index agree (exit 1 when they do not).

    Example:
        memory-graph verify --repair
    """
    with app.memory() as mm:
        report = mm.verify(repair=repair)
    emit(report.to_dict(), as_json, lambda d: "\n".join(f"{k}: {v}" for k, v in d.items()))
    if not report.ok:
        sys.exit(1)


@cli.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@click.pass_obj
@handle_errors
def db_upgrade(app: AppContext, revision: str) -> None:
    """Upgrade the database schema (Alembic), then move the vectors of a store written with one
    shared Chroma collection into one collection per namespace (no embedding again).

    Example:
        memory-graph --database-url postgresql+psycopg://postgres@localhost/memory db upgrade
    """
    from memory_graph.migrate import upgrade
    from memory_graph.store.engine import create_store_engine, sql_errors

    settings = app.settings()
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_store_engine(settings.sqlalchemy_url)
    try:
        with sql_errors("upgrading the schema", engine):
            reached = upgrade(engine, revision)
    finally:
        engine.dispose()
    click.echo(f"database at revision {reached}")
    if revision == "head":
        with app.manager() as mm:
            moved = mm.upgrade_vectors()
        if moved:
            click.echo(f"moved {moved} vectors into one collection per namespace")


@db.command("current")
@click.pass_obj
@handle_errors
def db_current(app: AppContext) -> None:
    """Print the database's schema revision and the code's.

    Example:
        memory-graph db current
    """
    from memory_graph.migrate import current_revision, head_revision
    from memory_graph.store.engine import create_store_engine, sql_errors

    engine = create_store_engine(app.settings().sqlalchemy_url)
    try:
        with sql_errors("reading the schema revision", engine):
            current = current_revision(engine)
    finally:
        engine.dispose()
    click.echo(f"database: {current or 'empty'}, code: {head_revision()}")


@cli.command()
@click.argument("fmt", metavar="FORMAT", type=click.Choice(["graphml", "json"]))
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@namespace_option
@click.pass_obj
@handle_errors
def export(app: AppContext, fmt: str, path: Path, namespace: str | None) -> None:
    """Export a namespace's graph as GraphML or JSON (node-link).

    Example:
        memory-graph export graphml graph.graphml --namespace demo
    """
    from memory_graph.analysis import export_graph

    with app.manager() as mm:
        counts = export_graph(mm, path, fmt=fmt, namespace=namespace)
    click.echo(f"wrote {path}: {counts['nodes']} entities, {counts['edges']} relations")


def job_options(func: F) -> F:
    """Options shared by ``reingest`` and ``import``: workers, batch size, dry run."""
    func = click.option("--dry-run", is_flag=True, help="Read and check everything; store nothing.")(func)
    func = click.option(
        "--batch-size", type=click.IntRange(min=1), default=None, help="Records per batch (checkpoint unit)."
    )(func)
    func = click.option(
        "--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Worker processes."
    )(func)
    return func


class ProgressBar:
    """A tqdm bar on stderr (rate and ETA), opened on the first update so a resumed job starts
    where it stopped."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, initial=done, unit="record", desc=self.desc, file=sys.stderr, disable=None)
        elif done > self.bar.n:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def render_report(report: dict[str, Any]) -> str:
    accounted = "every record accounted for" if report["accounted"] else "NOT all records accounted for"
    stored = f"would store {report['would_store']}" if report["dry_run"] else f"stored {report['stored']}"
    lines = [
        f"{report['source']} -> namespace {report['namespace']}{' (dry run)' if report['dry_run'] else ''}",
        f"  read {report['read']}, {stored}, skipped {report['skipped']}, failed {report['failed']} ({accounted})",
    ]
    if report["replaced"]:
        lines.append(f"  replaced: {report['replaced']} memories stored earlier under the same id (their text changed)")
    for kind in ("skipped", "failed"):
        if report[f"{kind}_reasons"]:
            lines.append(f"  {kind}: " + "; ".join(f"{r} ({n})" for r, n in report[f"{kind}_reasons"].items()))
    lines.append(
        f"  vectors: {report['vectors']}" + (f"; {report['vectors_reused']} reused" if report["vectors_reused"] else "")
    )
    lines += [f"  note: {note}" for note in report["notes"]]
    lines += [f"  {p['kind']} {p['id']}: {p['reason']}" for p in report["problems"][:20]]
    if len(report["problems"]) > 20:
        lines.append(f"  … {len(report['problems']) - 20} more problems (--json lists them all)")
    if not report["complete"]:
        lines.append("  job not complete: batches are still claimed by other workers; run again to finish")
    lines.append(
        f"  {report['processed']} records in {report['seconds']:.1f} s ({report['records_per_s']:.1f} records/s, {report['workers']} worker(s))"
    )
    return "\n".join(lines)


def _run_with_bars(run: Callable[[Callable[[str], ProgressBar]], Any]) -> Any:
    bars: list[ProgressBar] = []

    def bar(desc: str) -> ProgressBar:
        for old in bars:
            old.close()
        bars.append(ProgressBar(desc))
        return bars[-1]

    try:
        return run(bar)
    finally:
        for old in bars:
            old.close()


@cli.group()
def reingest() -> None:
    """Re-ingest memories kept by older systems (Chroma collections), resumably and idempotently.

    Example:
        memory-graph reingest chroma --path old_chroma/ --collection memories
    """


@reingest.command("chroma")
@click.option("--path", type=click.Path(path_type=Path), help="Chroma persist directory (copied first; never changed).")
@click.option("--host", help="Chroma server host (instead of --path).")
@click.option("--port", type=int, default=8000, show_default=True, help="Chroma server port.")
@click.option("--collection", "collections", multiple=True, help="Collection to re-ingest (repeatable).")
@click.option("--all-collections", is_flag=True, help="Re-ingest every collection.")
@click.option(
    "--source-model", default=None, help="Embedding model of the stored vectors, if the collection does not say."
)
@click.option("--reembed", is_flag=True, help="Embed every memory again; never reuse stored vectors.")
@job_options
@namespace_option
@json_option
@click.pass_obj
@handle_errors
def reingest_chroma(app: AppContext, path: Path | None, host: str | None, port: int, collections: tuple[str, ...], all_collections: bool, source_model: str | None, reembed: bool, workers: int, batch_size: int | None, dry_run: bool, namespace: str | None, as_json: bool) -> None:  # fmt: skip
    """Re-ingest Chroma collections (0.4.x, 0.5.x or current persist directories, or a server).

    Each record becomes a memory whose external id is its Chroma id, with its metadata (plus
    source_collection); it is chunked and extracted again, and its stored vector is reused only
    when the collection names the target's embedding model. A checkpoint in the target database
    makes the run resumable; a re-run stores nothing twice. Exit 1 when records failed.

    Example:
        memory-graph reingest chroma --path old_chroma/ --collection memories --workers 2
    """
    from memory_graph.reingest import reingest_chroma as run

    with app.manager() as mm:
        reports = _run_with_bars(lambda bar: run(mm, path=path, host=host, port=port, collections=collections, all_collections=all_collections, source_model=source_model, reembed=reembed, namespace=namespace, workers=workers, batch_size=batch_size, dry_run=dry_run, progress=bar))  # fmt: skip
    data = [r.to_dict() for r in reports]
    totals = {k: sum(d[k] for d in data) for k in ("read", "stored", "skipped", "failed", "would_store")}
    emit(
        {**totals, "accounted": all(d["accounted"] for d in data), "collections": data},
        as_json,
        lambda _: "\n".join(render_report(d) for d in data),
    )
    if totals["failed"]:
        sys.exit(1)


@cli.command("import")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(["toml", "sqlite", "markdown", "jsonl"]))
@click.argument("path", type=click.Path(path_type=Path))
@job_options
@namespace_option
@json_option
@click.pass_obj
@handle_errors
def import_(app: AppContext, fmt: str, path: Path, workers: int, batch_size: int | None, dry_run: bool, namespace: str | None, as_json: bool) -> None:  # fmt: skip
    """Import a legacy memory store: a TOML log, a SQLite memory database, daily markdown files, JSONL.

    toml: [[entries]], reflections or any top-level lists (type, importance, tags -> metadata,
    timestamp -> observed_at). sqlite: the memories table and the tables beside it that hold
    memories. markdown: memory/YYYY-MM-DD*.md and memory/YYYY/MM/... (the date -> observed_at).
    jsonl: one {"id", "text", "metadata"} object per line. Bad records are skipped and reported;
    importing twice stores nothing twice.

    Example:
        memory-graph import toml memory/memory_log.toml --namespace child1 --dry-run
    """
    from memory_graph.reingest import ImportSpec, run_reingest

    with app.manager() as mm:
        report = _run_with_bars(lambda bar: run_reingest(ImportSpec(fmt, path), manager=mm, namespace=namespace, workers=workers, batch_size=batch_size, dry_run=dry_run, progress=bar(fmt)))  # fmt: skip
    emit(report.to_dict(), as_json, render_report)
    if report.failed:
        sys.exit(1)


@cli.command()
@click.option("--host", default=None, help="Address to listen on; default loopback (MEMORY_GRAPH_SERVER_HOST).")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=None, help="Port; default 8765 (MEMORY_GRAPH_SERVER_PORT)."
)
@click.pass_obj
@handle_errors
def serve(app: AppContext, host: str | None, port: int | None) -> None:
    """Serve the memory over HTTP (JSON API, OpenAPI at /docs, metrics at /metrics).

    The models load once at start-up. Requests need an API key; with none configured
    (MEMORY_GRAPH_API_KEYS or the key file), the first start creates an admin key and prints it once.

    Example:
        memory-graph serve --port 8765
    """
    try:
        from memory_graph.server import serve as run
    except ImportError as exc:
        raise ConfigError(f"the server needs its extra ({exc}): pip install 'memory-graph[server]'") from exc
    run(app.settings(), host=host, port=port)


@cli.command("mcp")
@click.option(
    "--transport",
    type=click.Choice(["stdio", "streamable-http"]),
    default="stdio",
    show_default=True,
    help="MCP transport.",
)
@click.option("--host", default=None, help="streamable-http: address; default loopback (MEMORY_GRAPH_SERVER_HOST).")
@click.option("--port", type=click.IntRange(0, 65535), default=8766, show_default=True, help="streamable-http: port.")
@namespace_option
@click.pass_obj
@handle_errors
def mcp_command(app: AppContext, transport: str, host: str | None, port: int, namespace: str | None) -> None:
    """Serve memory tools to agents over MCP: add_memory, search_memories, get_context, get_entity.

    In-process by default (the models load once, at start-up), or over a running server with --url.
    stdio is for an agent that starts the command itself (Claude Desktop, IDEs); stdout then
    carries only MCP messages.

    Example:
        memory-graph --data-dir ~/.memory_graph mcp --namespace me
    """
    import contextlib

    try:
        from memory_graph.integrations.mcp import create_mcp_server
    except ImportError as exc:
        raise ConfigError(str(exc)) from exc
    with app.memory() as memory:
        if hasattr(memory, "warm_up"):
            with contextlib.redirect_stdout(sys.stderr):  # stdout belongs to the MCP messages
                memory.warm_up()
        server = create_mcp_server(memory, namespace=namespace)
        if transport == "stdio":
            server.run("stdio")
        else:
            server.run("streamable-http", host=host or app.settings().server_host, port=port)


def main() -> None:
    cli(prog_name="memory-graph")


if __name__ == "__main__":
    main()
