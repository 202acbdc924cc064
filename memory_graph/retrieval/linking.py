"""Entity linking of a query: which of the namespace's entities it names, without parsing it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from memory_graph.extraction import Extractor
from memory_graph.retrieval.config import MAX_NAME_WORDS
from memory_graph.retrieval.reads import SearchReads
from memory_graph.store.rows import EntityRow
from memory_graph.temporal import normalize_date
from memory_graph.vocabulary import DATE, normalize_key

if TYPE_CHECKING:
    from spacy.tokens import Doc, Span


def link_query_entities(
    query: str,
    *,
    namespace: str,
    reads: SearchReads,
    extractor: Extractor,
    fuzzy: bool = True,
    now: datetime | None = None,
    doc: Doc | None = None,
) -> list[EntityRow]:
    """Entities of ``namespace`` the query refers to, canonical, in the order the query names them.

    The namespace's entity keys and aliases are the dictionary: every word n-gram of the query
    (keyed as at ingest, the last word also as a noun lemma: "coffee shops" → "coffee shop") is
    looked up in one query, and the longest matches win ("New York City" over "York"). Dates
    come from the pipeline's rule entities, resolved against ``now`` ("last May" → 2025-05) and
    widened to the days or month around them; capitalised names with no exact match are matched
    fuzzily on canonical names. No statistical component runs: a search costs lookups, not a parse.
    ``doc``: the query as :meth:`Extractor.tokenize` gives it, when the caller has it already.
    """
    doc = doc if doc is not None else extractor.tokenize(query)
    runs = capitalised_runs(doc)
    # Part of a longer name is not the name: "Scott" alone is some other Scott than "Scott Derrickson".
    # (Only n-grams that are looked up: a long run of capitalised words is not quadratic.)
    part_of_name = {
        (a, b)
        for run in runs
        for a in range(run.start, run.end)
        for b in range(a + 1, min(run.end, a + MAX_NAME_WORDS) + 1)
    }
    part_of_name -= {(run.start, run.end) for run in runs}
    # Token attributes are read once into lists: slicing the Doc for each n-gram costs time in
    # proportion to the Doc's length, which made linking quadratic in the query's words.
    text = doc.text
    starts = [token.idx for token in doc]
    ends = [token.idx + len(token) for token in doc]
    lower = [token.lower_ for token in doc]
    stop = [token.is_stop for token in doc]
    breaks = [token.is_punct or token.is_space for token in doc]
    noun_lemmas: dict[str, str] = {}  # one lemma per distinct word, not per occurrence
    for token in doc:
        if token.lower_ not in noun_lemmas:
            noun_lemmas[token.lower_] = extractor.noun_lemma(token)
    lemmas = [noun_lemmas[word] for word in lower]
    spans: dict[tuple[int, int], set[str]] = {}
    for start in range(len(doc)):
        for end in range(start + 1, min(len(doc), start + MAX_NAME_WORDS) + 1):
            if breaks[end - 1]:
                break
            if stop[start] or stop[end - 1] or (start, end) in part_of_name:
                continue
            keys = {normalize_key(text[starts[start] : ends[end - 1]])}
            lemma = lemmas[end - 1]
            if lemma != lower[end - 1]:
                keys.add(normalize_key(" ".join([*lower[start : end - 1], lemma])))
            spans[(start, end)] = keys
    found = reads.match_keys(namespace, [key for keys in spans.values() for key in keys])
    linked: dict[int, EntityRow] = {}
    covered: set[int] = set()
    named: list[tuple[int, EntityRow]] = []
    for (start, end), keys in sorted(spans.items(), key=lambda item: (item[0][0] - item[0][1], item[0][0])):
        entities = [entity for key in sorted(keys) for entity in found.get(key, [])]
        if entities and covered.isdisjoint(range(start, end)):
            covered.update(range(start, end))
            named += [(start, entity) for entity in entities]
    for _, entity in sorted(named, key=lambda pair: pair[0]):
        linked.setdefault(entity.id, entity)
    # A month links the days inside it and a day the month around it ("March 2025" ~ 2025-03-13).
    when = now or datetime.now(UTC)
    dates = [value.key for ent in doc.ents if ent.label_ == DATE and (value := normalize_date(ent.text, when))]
    for entity in reads.find_dates(namespace, dates) if dates else []:
        linked.setdefault(entity.id, entity)
    if fuzzy:
        # Only names of two or more capitalised words: a single word ("Nixon") matches too many
        # longer names; unambiguous ones were merged into their full name at ingest already.
        names = [run.text for run in runs if len(run) > 1 and covered.isdisjoint(range(run.start, run.end))]
        for entity in reads.find_entities_fuzzy(namespace, names, limit=10) if names else []:
            linked.setdefault(entity.id, entity)
    return list(linked.values())


def capitalised_runs(doc: Doc) -> list[Span]:
    """Maximal runs of capitalised words ("Acme Corp", "Bob Smith")."""
    runs, start = [], None
    for token in [*doc, None]:
        if token is not None and token.is_title and not token.is_stop:
            start = token.i if start is None else start
        elif start is not None:
            runs.append(doc[start : token.i if token is not None else len(doc)])
            start = None
    return runs
