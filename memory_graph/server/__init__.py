"""The memory as a service: an HTTP API over one MemoryManager (``pip install 'memory-graph[server]'``).

>>> from memory_graph.server import create_app, serve  # doctest: +SKIP
"""

from memory_graph.server.app import create_app
from memory_graph.server.keys import ApiKey, KeyStore
from memory_graph.server.run import serve

__all__ = ["ApiKey", "KeyStore", "create_app", "serve"]
