"""Query time: vector, keyword, entity and graph signals, fused into ranked hits.

- :mod:`~memory_graph.retrieval.searcher`: :class:`Searcher`, which runs a search end to end;
- :mod:`~memory_graph.retrieval.reads`: the reads only search makes (keyword search, entity
  lookups, the chunks and relations around entities, a conversation's next turns);
- :mod:`~memory_graph.retrieval.linking`: which entities a query names (n-gram lookups among the
  namespace's names and aliases, dates, fuzzy names: no parse);
- :mod:`~memory_graph.retrieval.expansion`: the graph signal (relation evidence among the linked
  entities, bridges from the best hits to the chunks about the entities they name);
- :mod:`~memory_graph.retrieval.fusion`: weighted reciprocal rank fusion, with the entity and
  graph signals counted as one kind of evidence, and the answer-type gain;
- :mod:`~memory_graph.retrieval.turns`: the turns after the best hits of a conversation;
- :mod:`~memory_graph.retrieval.hits`: hits with their entities and relations, and explanations;
- :mod:`~memory_graph.retrieval.config`: :class:`SearchConfig` and what a question asks for.
"""

from memory_graph.retrieval.config import DEFAULT_SEARCH, SearchConfig, answer_labels
from memory_graph.retrieval.fusion import signal_shares
from memory_graph.retrieval.hits import HitExplanation
from memory_graph.retrieval.searcher import Searcher

__all__ = ["DEFAULT_SEARCH", "HitExplanation", "SearchConfig", "Searcher", "answer_labels", "signal_shares"]
