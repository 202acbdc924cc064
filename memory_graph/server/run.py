"""``memory-graph serve``: the API on uvicorn, models loaded once, keys checked from the start."""

from __future__ import annotations

import ipaddress
import logging
import sys

from memory_graph.config import Settings
from memory_graph.manager import MemoryManager
from memory_graph.server.app import access_log, create_app
from memory_graph.server.keys import KeyStore


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """Serve the memory the settings describe until interrupted.

    With no key in the settings or the key file, an admin key is created, its hash stored in the
    key file and the key printed once on stderr (as Jupyter prints its token): a fresh server is
    usable and never open.

    Raises:
        ConfigError: the settings or the key file are unusable.
    """
    import uvicorn

    host = host or settings.server_host
    port = settings.server_port if port is None else port
    keys = KeyStore(settings.key_file, settings.api_keys)
    with MemoryManager(settings) as manager:
        token = keys.ensure_admin()
        if token is not None:
            print(
                f"memory-graph: no API key was configured, so an admin key was created "
                f"(only its hash is kept, in {settings.key_file}). It is shown this once:\n\n    {token}\n",
                file=sys.stderr,
                flush=True,
            )
        if not is_loopback(host):
            print(f"memory-graph: listening on {host}, beyond this machine", file=sys.stderr, flush=True)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access_log.handlers[:] = [handler]
        access_log.setLevel(logging.INFO)
        access_log.propagate = False
        app = create_app(manager, keys)
        uvicorn.run(app, host=host, port=port, access_log=False, log_level="info")
