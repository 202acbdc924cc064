"""How a search weighs and bounds its signals, and what a question asks for."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta

from memory_graph.vocabulary import TURN_GAP

#: The signals fused into a hit's score, in the order a hit's ``reasons`` lists them.
SIGNALS = ("vector", "keyword", "entity", "graph")
MAX_NAME_WORDS = 4  # the longest query n-gram looked up as an entity name
PREFETCH_BATCH = 5  # hits whose context is read at a time while the query is embedded
BRIDGE_GUESSES = 5  # best keyword hits whose mentions are read then (most of the bridges' seeds)

# What a question asks for, by its wh-word or the noun after "which"/"what": the labels of the
# entities an answer names. The first pattern that matches wins ("when" questions are temporal's).
ANSWER_TYPES: tuple[tuple[re.Pattern[str], frozenset[str]], ...] = (
    (re.compile(r"\b(who|whom|whose)\b", re.I), frozenset({"PERSON"})),
    (
        re.compile(r"\b(which|what) (city|town|village|country|state|county|region|island|place)\b", re.I),
        frozenset({"LOC"}),
    ),
    (re.compile(r"\bwhere\b", re.I), frozenset({"LOC", "ORG"})),  # a place, or a place named for who runs it
    (
        re.compile(
            r"\b(which|what) (company|organi[sz]ation|firm|business|band|team|club|school|university|agency"
            r"|newspaper|magazine|airline|label)\b",
            re.I,
        ),
        frozenset({"ORG"}),
    ),
    (re.compile(r"\bhow much\b", re.I), frozenset({"MONEY", "PERCENT"})),
)


@dataclass(frozen=True)
class SearchConfig:
    """How :meth:`MemoryManager.search` weighs and bounds its signals."""

    oversample: int = 4  # candidates per signal: k * oversample (at least min_candidates)
    min_candidates: int = 20
    # RRF's constant. The customary 60 suits lists a thousand deep; ours are about 20, where 60
    # leaves rank 1 worth barely more than rank 20 and fusion counts signals rather than ranks.
    rrf_k: int = 10
    weights: dict[str, float] = field(
        default_factory=lambda: {"vector": 1.0, "keyword": 1.0, "entity": 0.8, "graph": 1.0}
    )
    hops: int = 1  # 1: bridges from the best hits; 2: also the relation neighbours of linked entities
    fanout: int = 8  # relations followed per linked entity
    bridge_hits: int = 3  # first-stage hits whose entities seed the bridges
    bridge_entities: int = 12  # entities followed to the chunks about them
    fuzzy: bool = True
    when_boost: float = 1.0  # for "when" questions: chunks with dates gain this many rank-1 shares
    type_boost: float = 0.5  # for "who", "where", "which city"…: chunks naming such an entity gain this many
    # Conversations: the turns that follow the best hits (an answer follows its question).
    turn_seeds: int = 5  # best hits whose following turns gain
    turn_span: int = 2  # turns followed from each
    turn_gap: timedelta = TURN_GAP  # a later turn further away is another conversation
    turn_weight: float = 0.5  # share of the hit's rank a following turn gains
    reply_weight: float = 1.0  # share the reply gains when the hit ends with a question: all of it
    # States (memory_graph.facts): the statements of the value a question asks for go first, each
    # this many rank-1 shares above the best other hit (0 turns it off).
    state_boost: float = 1.0


DEFAULT_SEARCH = SearchConfig()


def answer_labels(query: str) -> frozenset[str]:
    """The entity labels an answer to ``query`` names (:data:`ANSWER_TYPES`); empty if it asks
    for no kind of entity. "When" questions are :func:`~memory_graph.temporal.is_when_question`'s."""
    return next((labels for pattern, labels in ANSWER_TYPES if pattern.search(query)), frozenset())
