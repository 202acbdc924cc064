"""Batch re-ingest: old Chroma collections and legacy memory stores into the graph memory,
resumable, idempotent, in parallel, with a report that accounts for every record.

- :mod:`~memory_graph.reingest.sources`: records at stable positions, and whether their stored
  vectors may be reused;
- :mod:`~memory_graph.reingest.chroma`: Chroma persist directories (any release) and servers;
- :mod:`~memory_graph.reingest.importers`: TOML logs, SQLite memory databases, markdown diaries, JSONL;
- :mod:`~memory_graph.reingest.jobs`: the job and its batches in the target database (the checkpoint);
- :mod:`~memory_graph.reingest.runner`: a run, from opening the source to the report;
- :mod:`~memory_graph.reingest.batch`: one batch, stored through :meth:`MemoryManager.add_validated`;
- :mod:`~memory_graph.reingest.workers`: worker processes, and the relay of their vector writes;
- :mod:`~memory_graph.reingest.report`: :class:`ReingestReport` and the kinds of problem it counts.
"""

from memory_graph.reingest.chroma import ChromaSpec, reingest_chroma
from memory_graph.reingest.importers import ImportSpec
from memory_graph.reingest.report import ProblemKind, ReingestReport
from memory_graph.reingest.runner import run_reingest

__all__ = ["ChromaSpec", "ImportSpec", "ProblemKind", "ReingestReport", "reingest_chroma", "run_reingest"]
