"""Settings: the one place where ``MEMORY_GRAPH_*`` environment variables are read.

Library code never reads the environment; it receives a :class:`Settings` (built by the caller or
the CLI) and passes it down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from memory_graph.embeddings import DEFAULT_EMBEDDING_MODEL

#: The pipeline this project trains and ships (``models/en_memory_graph``); any installed spaCy
#: pipeline name or a path can be configured instead.
DEFAULT_SPACY_MODEL = "en_memory_graph"
DEFAULT_DATA_DIR = Path(".memory_graph")
DEFAULT_NAMESPACE = "default"


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
    max_text_chars: int = Field(default=1_000_000, ge=1, description="Largest text accepted by add(), in characters.")
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
