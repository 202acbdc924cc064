"""API keys of the server: each bound to the namespaces it may touch, kept only as hashes.

Keys come from the settings (``MEMORY_GRAPH_API_KEYS``: key -> namespaces, read-only here) and
from the key file (``Settings.key_file``), which holds the keys created through the admin
endpoints or at the first start. The file stores a SHA-256 digest of each key, never the key:
keys are random 256-bit tokens, so a plain digest cannot be reversed by guessing. A key with the
namespace ``"*"`` or the admin flag is an admin key: every namespace, plus key management.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import tempfile
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from memory_graph.errors import ConfigError, InputError, NotFoundError

ALL_NAMESPACES = "*"


@dataclasses.dataclass(frozen=True)
class ApiKey:
    """A key as the server knows it (without the key itself)."""

    id: str
    name: str
    namespaces: list[str]
    admin: bool
    source: str  # "settings" or "file"
    created_at: datetime | None = None

    def allows(self, namespace: str) -> bool:
        """Whether this key may read and change ``namespace``."""
        return self.admin or ALL_NAMESPACES in self.namespaces or namespace in self.namespaces


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    """A fresh random key (URL-safe, 256 bits)."""
    return "mg_" + secrets.token_urlsafe(32)


class KeyStore:
    """The server's keys: those of the settings and those of the key file.

    Args:
        path: the key file (created when a key is added; its directory must exist or be creatable).
        configured: keys from the settings, key -> namespaces.

    Raises:
        ConfigError: the key file cannot be read or is malformed.
    """

    def __init__(self, path: Path, configured: Mapping[str, Sequence[str]] | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._keys: dict[str, ApiKey] = {}  # digest -> key
        self._stored: dict[str, dict[str, Any]] = {}  # digest -> file entry
        for token, namespaces in (configured or {}).items():
            if not token:
                raise ConfigError("MEMORY_GRAPH_API_KEYS has an empty key")
            names = list(namespaces)
            h = digest(token)
            self._keys[h] = ApiKey(f"settings-{h[:8]}", "settings", names, ALL_NAMESPACES in names, "settings")
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            entries = json.loads(self.path.read_text(encoding="utf-8"))["keys"]
            for entry in entries:
                key = ApiKey(
                    id=str(entry["id"]),
                    name=str(entry["name"]),
                    namespaces=[str(n) for n in entry["namespaces"]],
                    admin=bool(entry["admin"]),
                    source="file",
                    created_at=datetime.fromisoformat(entry["created_at"]) if entry.get("created_at") else None,
                )
                self._keys[entry["hash"]] = key
                self._stored[entry["hash"]] = entry
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"key file {self.path} is unreadable or malformed ({exc}); fix or remove it") from exc

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"keys": list(self._stored.values())}, indent=2)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".api_keys-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(data)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def __len__(self) -> int:
        return len(self._keys)

    def authenticate(self, token: str) -> ApiKey | None:
        """The key ``token`` is, or None."""
        return self._keys.get(digest(token))

    def all(self) -> list[ApiKey]:
        """Every key, settings' first, then the file's oldest first."""
        return list(self._keys.values())

    def create(self, name: str, namespaces: Sequence[str], *, admin: bool = False) -> tuple[ApiKey, str]:
        """Add a key to the key file. Returns it and the key itself, which is not kept.

        Raises:
            InputError: no name, or a non-admin key without namespaces.
        """
        if not name.strip():
            raise InputError("a key needs a name")
        names = list(dict.fromkeys(namespaces))
        if not admin and not names:
            raise InputError("a key needs at least one namespace (or admin)")
        if any(not n.strip() for n in names):
            raise InputError("a namespace of a key is empty")
        token = new_token()
        h = digest(token)
        key = ApiKey(secrets.token_hex(6), name, names, admin or ALL_NAMESPACES in names, "file", datetime.now(UTC))
        entry = {"id": key.id, "name": name, "hash": h, "namespaces": names, "admin": key.admin}
        entry["created_at"] = key.created_at.isoformat() if key.created_at else None
        with self._lock:
            self._stored[h] = entry
            try:
                self._save()
            except OSError as exc:
                del self._stored[h]
                raise ConfigError(f"cannot write the key file {self.path}: {exc}") from exc
            self._keys[h] = key
        return key, token

    def delete(self, key_id: str) -> None:
        """Remove a key of the key file.

        Raises:
            NotFoundError: no key of the file has this id (settings' keys are changed in the settings).
        """
        with self._lock:
            found = [h for h, k in self._keys.items() if k.id == key_id and k.source == "file"]
            if not found:
                raise NotFoundError("key", key_id)
            entry = self._stored.pop(found[0])
            try:
                self._save()
            except OSError as exc:
                self._stored[found[0]] = entry
                raise ConfigError(f"cannot write the key file {self.path}: {exc}") from exc
            del self._keys[found[0]]

    def ensure_admin(self) -> str | None:
        """With no key at all, create an admin key and return it (to be shown once); else None."""
        if self._keys:
            return None
        return self.create("admin", [], admin=True)[1]
