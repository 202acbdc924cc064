"""Settings: the one place where ``MEMORY_GRAPH_*`` environment variables are read.

Library code never reads the environment; it receives a :class:`Settings` (built by the caller or
the CLI) and passes it down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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

    @field_validator("data_dir", "chroma_path", mode="before")
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
    def is_embedded(self) -> bool:
        """True when both stores live in files under ``data_dir`` (no server involved)."""
        return self.database_url is None and self.chroma_host is None
