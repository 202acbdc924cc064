"""The words extraction, the stores and retrieval share: entity labels, pronouns, name keys, turns.

Nothing here knows spaCy or SQL: extraction writes these values, the stores index and compare
them, and retrieval looks them up, so each imports them from here rather than from another.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

#: A salient noun phrase ("coffee shop"), not a named entity.
CONCEPT = "CONCEPT"
#: Calendar dates; their key is the resolved value (``2025-05``, ``2025-05-31``).
DATE = "DATE"
#: Labels of named things: what the NER finds and what a question may name.
NAMED_LABELS = frozenset({"PERSON", "ORG", "LOC", "NORP", "FAC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW", "LANGUAGE"})
#: The predicate of two names in one sentence with no stated relation between them: a weak
#: signal for retrieval, which views of the facts leave out (or show as such).
COOCCURRENCE = "mentioned with"
#: Labels that never resolve to a named entity's alias (times and values, not names).
UNNAMED_LABELS = frozenset({CONCEPT, DATE, "TIME"})
#: Labels of other pipelines folded into ours (UNER's LOC covers places and countries).
LABEL_MAP = {"PER": "PERSON", "GPE": "LOC", "LOCATION": "LOC", "ORGANIZATION": "ORG"}
#: Entity labels that are noise as graph nodes ("two", "first").
SKIP_LABELS = frozenset({"CARDINAL", "ORDINAL", "QUANTITY"})

#: First-person pronouns: in a turn with a speaker they stand for that speaker.
FIRST_PERSON = frozenset({"i", "me", "my", "mine", "myself"})
#: First-person plural pronouns: a speaker's "we moved" is a move of the speaker's.
FIRST_PLURAL = frozenset({"we", "us", "our", "ours", "ourselves"})
#: Third-person pronouns that may stand for a person named before ("they" and "it" stand for too
#: many kinds of thing to guess: a company, a band, the people just named).
THIRD_PERSON = frozenset({"he", "him", "his", "himself", "she", "her", "hers", "herself"})
#: Mentions with these texts stand for an entity named elsewhere; they do not name it.
PRONOUNS = FIRST_PERSON | THIRD_PERSON

#: Turns of a conversation further apart than this belong to different conversations.
TURN_GAP = timedelta(minutes=30)


def normalize_key(name: str) -> str:
    """The matching key of a name: NFKC, case-folded, no leading article or possessive, single spaces.

    >>> normalize_key("  The  Acme Corp.'s ")
    'acme corp'
    """
    text = unicodedata.normalize("NFKC", name).casefold().strip()
    for suffix in ("'s", "’s", "'"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
    words = "".join(ch if ch.isalnum() or ch in "@.-_+&" else " " for ch in text).split()
    if len(words) > 1 and words[0] in ("the", "a", "an"):
        words = words[1:]
    return " ".join(words).strip(".-_")[:255] or text[:255]


def normalize_label(label: str) -> str:
    """Our label for another pipeline's (``GPE`` → ``LOC``)."""
    return LABEL_MAP.get(label, label)


def speaker_of(metadata: Mapping[str, Any]) -> str | None:
    """The speaker a memory's metadata names (``{"speaker": "Maya"}``), if any."""
    speaker = metadata.get("speaker")
    return speaker.strip() if isinstance(speaker, str) and speaker.strip() else None
