"""Sentence-aware chunking with character offsets, on ``semantic-text-splitter``.

The splitter (benbrandt/text-splitter) cuts at the largest semantic unit that fits: paragraphs,
then sentences (Unicode sentence boundaries), then words; it reports character offsets into
the original text, so every chunk maps back to its document exactly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

from semantic_text_splitter import TextSplitter


@dataclass(frozen=True)
class TextChunk:
    """A piece of a text: ``text == source[start:end]``."""

    ordinal: int
    start: int
    end: int
    text: str


@lru_cache(maxsize=8)
def _splitter(max_chars: int) -> TextSplitter:
    # Fills each chunk with whole paragraphs/sentences up to max_chars; it only cuts inside a
    # sentence when that sentence alone is longer than max_chars.
    return TextSplitter(max_chars, trim=True)


def chunk_text(text: str, *, max_chars: int = 800) -> list[TextChunk]:
    """Split ``text`` into chunks of at most ``max_chars`` characters, at sentence boundaries.

    >>> [c.text for c in chunk_text("One. Two.", max_chars=800)]
    ['One. Two.']
    """
    if len(text) <= max_chars:
        stripped = text.strip()
        if not stripped:
            return []
        start = text.index(stripped)
        return [TextChunk(0, start, start + len(stripped), stripped)]
    pieces = [(offset, piece) for offset, piece in _splitter(max_chars).chunk_indices(text) if piece.strip()]
    return [TextChunk(i, offset, offset + len(piece), piece) for i, (offset, piece) in enumerate(pieces)]


def content_hash(text: str) -> str:
    """SHA-256 of the text (the idempotency key of a memory without an external id)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
