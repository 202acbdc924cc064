"""Settings: the one place where ``MEMORY_GRAPH_*`` environment variables are read.

Library code never reads the environment; it receives a :class:`Settings` (built by the caller or
the CLI) and passes it down.
"""

from __future__ import annotations

import difflib
import os
import re
import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from memory_graph.embeddings import DEFAULT_EMBEDDING_MODEL
from memory_graph.errors import ConfigError, MemoryGraphWarning

#: The pipeline this project trains and ships (``models/en_memory_graph``); any installed spaCy
#: pipeline name or a path can be configured instead.
DEFAULT_SPACY_MODEL = "en_memory_graph"
DEFAULT_DATA_DIR = Path(".memory_graph")
DEFAULT_NAMESPACE = "default"
ENV_PREFIX = "MEMORY_GRAPH_"
#: Variables with this prefix belong to the test suite, not to a setting (no warning for them).
TEST_ENV_PREFIX = "MEMORY_GRAPH_TEST_"
#: Settings whose values are secrets: an error about them does not repeat the value.
SECRET_FIELDS = frozenset({"api_keys", "api_key"})


class Settings(BaseSettings):
    """Where memories are stored and how they are processed.

    Every field can be set in code or through ``MEMORY_GRAPH_<FIELD>`` (for example
    ``MEMORY_GRAPH_DATABASE_URL``). With no settings at all, everything lives under
    ``./.memory_graph``: a SQLite file and a Chroma persistent directory.

    Example:
        >>> Settings(data_dir="/tmp/mem").sqlalchemy_url
        'sqlite:////tmp/mem/memory.db'
    """

    model_config = SettingsConfigDict(env_prefix="MEMORY_GRAPH_", frozen=True, extra="forbid")

    data_dir: Path = Field(default=DEFAULT_DATA_DIR, description="Embedded data directory.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; overrides the SQLite file in data_dir (postgresql+psycopg://...).",
    )
    chroma_path: Path | None = Field(default=None, description="Chroma persistent directory; default data_dir/chroma.")
    chroma_host: str | None = Field(
        default=None, description="Chroma server host; use a server instead of a directory."
    )
    chroma_port: int = Field(default=8000, description="Chroma server port.")
    collection: str = Field(default="memory_graph", description="Chroma collection holding chunk vectors.")
    spacy_model: str = Field(default=DEFAULT_SPACY_MODEL, description="spaCy pipeline: package name or path.")
    embedding_model: str = Field(default=DEFAULT_EMBEDDING_MODEL, description="sentence-transformers model.")
    chunk_size: int = Field(default=800, ge=64, description="Largest chunk, in characters.")
    # Limits on inputs (docs/architecture.md, "Inputs and their limits"): beyond them a call
    # raises an InputError that names the limit and the value; nothing is stored.
    # 200,000: one add() holds the write lock for its whole parse (about 40 s on two cores), and
    # beyond it the cost per kB was not measured linear (docs/performance.md).
    max_text_chars: int = Field(default=200_000, ge=1, description="Largest text accepted by add(), in characters.")
    max_query_chars: int = Field(
        default=100_000, ge=1, description="Longest query accepted by search(), explain() and context(), in characters."
    )
    max_k: int = Field(default=1_000, ge=1, description="Largest k (hits asked for) of a search.")
    max_metadata_bytes: int = Field(
        default=65_536, ge=2, description="Largest metadata of a memory, in bytes of its JSON (UTF-8)."
    )
    max_metadata_depth: int = Field(
        default=8, ge=1, description="Deepest nesting of metadata objects and lists (a flat object is 1)."
    )
    batch_size: int = Field(default=64, ge=1, description="Texts per batch on the batch path.")
    namespace: str = Field(default=DEFAULT_NAMESPACE, description="Namespace used when none is given.")
    resolve_aliases: bool = Field(default=True, description='Merge "Bob" into "Bob Smith" when unambiguous.')
    sqlite_synchronous: Literal["NORMAL", "FULL"] = Field(
        default="NORMAL",
        description="SQLite PRAGMA synchronous: NORMAL survives a killed process, FULL an OS crash too (slower commits).",
    )
    # The HTTP server (memory-graph serve) and its clients.
    server_host: str = Field(default="127.0.0.1", description="Address `memory-graph serve` listens on (loopback).")
    server_port: int = Field(default=8765, ge=0, le=65535, description="Port `memory-graph serve` listens on.")
    api_keys: dict[str, list[str]] = Field(
        default_factory=dict,
        repr=False,
        description='Server API keys: key -> namespaces it may touch (JSON: {"key": ["user-42"]}); "*" makes an admin key.',
    )
    api_key_file: Path | None = Field(
        default=None, description="Server key file (hashes only); default data_dir/api_keys.json."
    )
    url: str | None = Field(default=None, description="A running server (http://127.0.0.1:8765): the CLI talks to it.")
    api_key: str | None = Field(default=None, repr=False, description="The key a client sends to the server.")

    def __init__(self, **values: Any) -> None:
        """Settings from ``values``, then ``MEMORY_GRAPH_*`` variables, then the defaults.

        Raises:
            ConfigError: a value is invalid (one line naming the setting, its variable and why).

        A ``MEMORY_GRAPH_*`` variable that no setting reads is a :class:`MemoryGraphWarning`
        naming the closest setting (a misspelt name would otherwise be ignored silently).
        """
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(validation_message(exc)) from None
        except SettingsError as exc:  # a variable of a structured setting that is not JSON
            found = re.search(r'field "(\w+)"', str(exc))
            field = found.group(1) if found else "settings"
            raise ConfigError(f"invalid setting {field} ({env_name(field)}): the value is not valid JSON") from None
        warn_unknown_variables(os.environ)

    @field_validator("data_dir", "chroma_path", "api_key_file", mode="before")
    @classmethod
    def _expand(cls, value: Any) -> Any:
        return Path(value).expanduser() if isinstance(value, str) and value else value

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL in use: ``database_url`` or the SQLite file inside ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'memory.db').as_posix()}"

    @property
    def chroma_dir(self) -> Path:
        """The Chroma persistent directory (ignored when ``chroma_host`` is set)."""
        return self.chroma_path or self.data_dir / "chroma"

    @property
    def key_file(self) -> Path:
        """The server's key file: ``api_key_file`` or ``api_keys.json`` inside ``data_dir``."""
        return self.api_key_file or self.data_dir / "api_keys.json"

    @property
    def is_embedded(self) -> bool:
        """True when both stores live in files under ``data_dir`` (no server involved)."""
        return self.database_url is None and self.chroma_host is None


def env_name(field: str) -> str:
    """The environment variable of a setting (``chunk_size`` -> ``MEMORY_GRAPH_CHUNK_SIZE``)."""
    return f"{ENV_PREFIX}{field.upper()}"


def validation_message(exc: ValidationError) -> str:
    """Pydantic's errors as one line: the first one, with the setting, its variable and the value
    (not for secrets), and how many more there are."""
    errors = exc.errors()
    first = errors[0]
    field = ".".join(str(part) for part in first["loc"]) or "settings"
    name = str(first["loc"][0]) if first["loc"] else ""
    where = f"{field} ({env_name(name)})" if name in Settings.model_fields else repr(field)
    if first.get("type") == "extra_forbidden":
        close = difflib.get_close_matches(name, list(Settings.model_fields), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        message = f"unknown setting {field!r}{hint}"
    else:
        value = "" if name in SECRET_FIELDS else f", got {_short(first.get('input'))}"
        message = f"invalid setting {where}: {first['msg']}{value}"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return " ".join(f"{message}{more}".split())


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def warn_unknown_variables(environ: Any) -> None:
    """Warn about each ``MEMORY_GRAPH_*`` variable that no setting reads, naming the closest one."""
    known = {env_name(field) for field in Settings.model_fields}
    for name in environ:
        upper = str(name).upper()
        if not upper.startswith(ENV_PREFIX) or upper in known or upper.startswith(TEST_ENV_PREFIX):
            continue
        close = difflib.get_close_matches(upper, sorted(known), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        warnings.warn(f"{name} is not a memory-graph setting and is ignored{hint}", MemoryGraphWarning, stacklevel=3)
