"""Prometheus metrics of the server, in a registry of its own (one per app, so that tests and
embedding applications can run several).

- ``memory_graph_operations_total{operation, outcome}``: requests by route name and outcome
  (``ok``, ``rejected`` for a 4xx, ``error`` for a 5xx).
- ``memory_graph_operation_seconds{operation}``: request handling time.
- ``memory_graph_search_seconds``, ``memory_graph_extraction_seconds``,
  ``memory_graph_embedding_seconds``: time in the manager's search, in the spaCy pipeline, in the
  embedder (the last two wrap the manager's extractor and vector store at start-up).
- ``memory_graph_store_rows{kind}``: row counts of both stores, read when scraped.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from memory_graph.manager import MemoryManager

T = TypeVar("T")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _StoreSizes(Collector):
    def __init__(self, manager: MemoryManager) -> None:
        self.manager = manager

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("memory_graph_store_rows", "Rows in the stores, all namespaces.", labels=["kind"])
        stats = self.manager.stats().to_dict()
        for kind in ("documents", "chunks", "entities", "relations", "mentions", "vectors"):
            family.add_metric([kind], float(stats[kind]))
        yield family


class Metrics:
    """The server's metrics over one manager."""

    def __init__(self, manager: MemoryManager) -> None:
        self.registry = CollectorRegistry()
        self.operations = Counter(
            "memory_graph_operations",
            "Requests by operation and outcome.",
            ["operation", "outcome"],
            registry=self.registry,
        )
        self.operation_seconds = Histogram(
            "memory_graph_operation_seconds",
            "Request handling time by operation.",
            ["operation"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.search_seconds = Histogram(
            "memory_graph_search_seconds",
            "Time in MemoryManager.search.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.extraction_seconds = Histogram(
            "memory_graph_extraction_seconds",
            "Time in the spaCy pipeline per call (a batch of chunks).",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.embedding_seconds = Histogram(
            "memory_graph_embedding_seconds",
            "Time in the embedder per call (a batch of texts).",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StoreSizes(manager))

    def instrument(self, manager: MemoryManager) -> None:
        """Time the manager's extraction and embedding calls (wrapping its instances' callables)."""
        extractor = manager.extractor
        for name in ("parse_many", "parse"):
            setattr(extractor, name, _timed(getattr(extractor, name), self.extraction_seconds))
        manager.vectors.embed = _timed(manager.vectors.embed, self.embedding_seconds)

    def observe(self, operation: str, status: int, seconds: float) -> None:
        outcome = "ok" if status < 400 else "rejected" if status < 500 else "error"
        self.operations.labels(operation, outcome).inc()
        self.operation_seconds.labels(operation).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _timed(func: Callable[..., T], histogram: Histogram) -> Callable[..., T]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            histogram.observe(time.perf_counter() - start)

    return wrapper
