"""Alembic migrations of memory_graph (run them with ``memory-graph db upgrade``)."""
