"""Locks between processes: ``fcntl.flock`` on a file beside the store it guards.

An flock belongs to an open file, so the OS drops it when its process ends, however it ends
(``kill -9`` included): a lock file left on disk by a dead process never blocks anyone. Two kinds:

- :func:`exclusive`: held for the length of a block, waiting for it (creating a schema, opening a
  Chroma directory);
- :class:`HeldLock`: taken without waiting and kept until released (the one process that writes
  an embedded store). The holder writes its pid into the file, so that a refused process can name
  it. Within one process every :class:`HeldLock` of a path shares one flock (counted), because a
  second flock of the same file by the same process would refuse it.

POSIX only (``fcntl``), like the embedded store's other assumptions.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_registry_lock = threading.Lock()
_held: dict[str, tuple[int, int]] = {}  # path -> (file descriptor, holders in this process)


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the block, waiting for it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the file drops the lock


def holder_pid(path: Path, wait: float = 1.0) -> int | None:
    """The pid the holder of ``path`` wrote into it, if any.

    A holder writes its pid just after it takes the lock, so a process refused in between finds
    the file empty: it reads again for up to ``wait`` seconds before it gives up (None also when
    the holder let go meanwhile, which empties the file).
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            return int(path.read_text(encoding="ascii").strip() or "x")
        except (OSError, ValueError):
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)


class HeldLock:
    """An exclusive lock on ``path`` taken without waiting and held until :meth:`release`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key = str(path.resolve())
        self.held = False

    def try_acquire(self) -> bool:
        """Take the lock (or share this process's hold of it); False if another process holds it."""
        if self.held:
            return True
        with _registry_lock:
            if (entry := _held.get(self._key)) is not None:
                _held[self._key] = (entry[0], entry[1] + 1)
                self.held = True
                return True
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            _held[self._key] = (fd, 1)
            self.held = True
            return True

    def held_in_process(self) -> bool:
        """True when this process holds the lock (through this object or another of the path)."""
        return self._key in _held

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        with _registry_lock:
            fd, count = _held[self._key]
            if count > 1:
                _held[self._key] = (fd, count - 1)
                return
            del _held[self._key]
            os.ftruncate(fd, 0)
            os.close(fd)
