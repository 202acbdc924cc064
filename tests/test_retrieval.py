"""Retrieval on a small multi-session conversation: two-turn answers, dates, aliases, time windows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import event

from memory_graph import MemoryManager
from memory_graph.retrieval import DEFAULT_SEARCH, SearchConfig, answer_labels, signal_shares
from memory_graph.retrieval.expansion import Expansion
from memory_graph.retrieval.fusion import Candidate
from memory_graph.retrieval.hits import HitContext, build_hits
from memory_graph.retrieval.linking import link_query_entities
from memory_graph.temporal import is_when_question, normalize_date
from memory_graph.vocabulary import CONCEPT, NAMED_LABELS

DATA = Path(__file__).parent / "data" / "conversations.jsonl"


@pytest.fixture
def chat(manager: MemoryManager) -> MemoryManager:
    rows = []
    for line in DATA.read_text().splitlines():
        record = json.loads(line)
        rows.append(
            {
                "text": record["text"],
                "external_id": record["id"],
                "metadata": record["metadata"],
                "observed_at": record["observed_at"],
            }
        )
    manager.add_many(rows, namespace="nina")
    return manager


def ids(hits) -> list[str]:
    return [h.external_id for h in hits]


def test_retrieval_two_turn_answer(chat: MemoryManager) -> None:
    """Nina's brother -> Omar works at Vantage Robotics (s1-1) -> based in Pittsburgh (s2-1)."""
    hits = chat.search("In which city is the company where Nina's brother works?", namespace="nina", k=5)
    assert {"s1-1", "s2-1"} <= set(ids(hits))


def test_retrieval_question_naming_the_speaker_finds_a_first_person_turn(chat: MemoryManager) -> None:
    """ "I moved to Denver" (s4-2, said by Nina) is embedded as "Nina: I moved to Denver…": the
    vector signal ranks it first for a question that names Nina (third without the speaker)."""
    explained = {e.hit.external_id: e for e in chat.explain("Where did Nina move?", namespace="nina", k=5)}
    assert explained["s4-2"].ranks.get("vector") == 1


def test_retrieval_graph_signal_reaches_the_second_turn(chat: MemoryManager) -> None:
    explained = {e.hit.external_id: e for e in chat.explain("Where is Vantage Robotics?", namespace="nina", k=5)}
    assert "s2-1" in explained
    assert any(e.name == "Vantage Robotics" for e in explained["s2-1"].linked_entities)
    assert "entity" in explained["s2-1"].hit.reasons


def test_retrieval_relative_dates_resolve_to_absolute_dates(chat: MemoryManager) -> None:
    view = chat.entity("2025-03-13", namespace="nina")  # "yesterday", said on 2025-03-14
    assert view.entity.label == "DATE" and "yesterday" in view.aliases
    assert view.attributes == {"date": "2025-03-13", "granularity": "day"}
    march = chat.entity("2025-03", namespace="nina")  # "last month", said on 2025-04-22
    assert "last month" in march.aliases


def test_retrieval_when_questions_favour_dated_chunks(chat: MemoryManager) -> None:
    hits = chat.search("When did Nina adopt Pixel?", namespace="nina", k=3)
    assert hits[0].external_id == "s3-1"
    assert any(e.label == "DATE" and e.name == "2025-03-13" for e in hits[0].entities)


def test_retrieval_answer_labels_follow_the_wh_word() -> None:
    assert answer_labels("Who did Nina meet?") == {"PERSON"} == answer_labels("Whose idea was it?")
    assert answer_labels("In which city is Vantage Robotics based?") == {"LOC"}
    assert answer_labels("Where does Omar work?") == {"LOC", "ORG"}
    assert answer_labels("What company hired Omar?") == {"ORG"}
    assert answer_labels("How much did the trip cost?") == {"MONEY", "PERCENT"}
    assert answer_labels("What did Nina adopt?") == frozenset()


def test_retrieval_who_questions_favour_chunks_naming_another_person(chat: MemoryManager) -> None:
    """ "Who works at Vantage Robotics?": s1-1 names Omar, a person the question does not name,
    and gains half a rank-1 share; s2-1 names the company and a city but no person, and gains
    nothing. Neither ranks by the type alone: the signals put both in the top 3 either way."""
    question = "Who works at Vantage Robotics?"
    boosted = {e.hit.external_id: e.hit.score for e in chat.explain(question, namespace="nina", k=3)}
    chat.search_config = replace(DEFAULT_SEARCH, type_boost=0.0)
    plain = {e.hit.external_id: e.hit.score for e in chat.explain(question, namespace="nina", k=3)}
    assert {"s1-1", "s2-1"} <= boosted.keys() & plain.keys()
    bonus = DEFAULT_SEARCH.type_boost / (DEFAULT_SEARCH.rrf_k + 1)
    assert boosted["s1-1"] == pytest.approx(plain["s1-1"] + bonus, abs=1e-5)
    assert boosted["s2-1"] == pytest.approx(plain["s2-1"], abs=1e-5)


def test_retrieval_date_in_query_links_to_dated_memories(chat: MemoryManager) -> None:
    """ "March 2025" links the day inside it that s3-1 mentions ("yesterday", said on 14 March):
    the entity signal's first chunk. The question names nothing else, so the vector and graph
    signals rank the turns by chance, and where s3-1 lands overall is not the point."""
    explained = {e.hit.external_id: e for e in chat.explain("What happened in March 2025?", namespace="nina", k=10)}
    assert explained["s3-1"].ranks.get("entity") == 1


def linked(chat: MemoryManager, query: str, *, fuzzy: bool = True) -> set[str]:
    entities = link_query_entities(
        query, namespace="nina", reads=chat.searcher.reads, extractor=chat.extractor, fuzzy=fuzzy
    )
    return {e.name for e in entities}


def test_retrieval_query_linking_finds_names_aliases_and_plural_concepts(chat: MemoryManager) -> None:
    assert "Vantage Robotics" in linked(chat, "where is vantage robotics?")  # lowercase, no parse
    assert "Omar Haddad" in linked(chat, "Did Omar call?")  # "Omar" is an alias of Omar Haddad
    assert {"Nina", "hiking trails"} <= linked(chat, "Which hiking trails does Nina love?")  # key: hiking trail
    assert "Pittsburgh" in linked(chat, "Is the Pittsburgh expo over?")


def test_retrieval_query_linking_does_not_take_part_of_a_longer_name(chat: MemoryManager) -> None:
    """Nobody here is called Omar Smith: its first word alone must not link Omar Haddad."""
    assert linked(chat, "Did Omar Smith call?", fuzzy=False) == set()
    assert linked(chat, "Did Omar Smith call?") == set()  # nor fuzzily: Smith is not Haddad
    assert [e.name for e in chat.searcher.reads.find_entities_fuzzy("nina", ["Vantage Robot"])][:1] == [
        "Vantage Robotics"
    ]


def test_retrieval_fuzzy_names_take_near_spellings_only(chat: MemoryManager) -> None:
    def fuzzy(name: str) -> list[str]:
        return [e.name for e in chat.searcher.reads.find_entities_fuzzy("nina", [name])]

    assert fuzzy("Vantage Robtics")[:1] == ["Vantage Robotics"]  # a letter dropped: difflib ratio 0.97
    assert "Vantage Robotics" not in fuzzy("Vantage Rocketry")  # same first word, another name: 0.69


def test_retrieval_fusion_counts_entity_and_graph_evidence_once() -> None:
    """Both signals come from the entities a chunk mentions: of the two, only the larger share counts."""
    config = SearchConfig(rrf_k=10, weights={"vector": 1.0, "keyword": 1.0, "entity": 0.8, "graph": 1.0})
    shares = signal_shares({"vector": 2, "entity": 1, "graph": 6}, config)
    assert shares == pytest.approx({"vector": 1 / 12, "entity": 0.8 / 11, "graph": 0.0})
    shares = signal_shares({"keyword": 1, "entity": 4, "graph": 1}, config)
    assert shares == pytest.approx({"keyword": 1 / 11, "entity": 0.0, "graph": 1 / 11})
    assert signal_shares({"entity": 3}, config) == pytest.approx({"entity": 0.8 / 13})


def test_retrieval_entity_weight_stays_positive_when_mentions_outnumber_chunks(manager: MemoryManager) -> None:
    """A speaker's "I" and "my" make more mentions of her than there are chunks. Her IDF, from the
    stored mention count capped at the chunk count, is the smallest of the namespace's but above zero."""
    said = ["I told my brother that I would call my mother after I finish my run.",
            "I think I left my keys at my office in Boulder.",
            "My sister and I walked my dog before I went to work."]  # fmt: skip
    manager.add_many([{"text": t, "metadata": {"speaker": "Lena"}} for t in said], namespace="lena")
    lena, boulder = manager.entity("Lena", namespace="lena"), manager.entity("Boulder", namespace="lena")
    assert lena.mention_count > len(said)
    expansion = Expansion(
        "lena", len(said), reads=manager.searcher.reads, config=DEFAULT_SEARCH, limit=20, since=None, until=None
    )
    _, idf = expansion.weigh([lena.entity.id, boulder.entity.id])
    assert 0 < idf[lena.entity.id] < idf[boulder.entity.id]


def test_retrieval_time_window(chat: MemoryManager) -> None:
    hits = chat.search("Pixel", namespace="nina", k=5, since=date(2025, 3, 1), until=date(2025, 4, 1))
    assert set(ids(hits)) <= {"s3-1", "s3-2"} and "s3-1" in ids(hits)


def test_retrieval_alias_merge_is_recorded_and_undoable(chat: MemoryManager) -> None:
    omar = chat.entity("Omar", namespace="nina")
    assert omar.entity.name == "Omar Haddad"
    assert {"Omar", "Omar Haddad"} <= set(omar.aliases)
    merges = chat.merges("nina")
    merge = next(m for m in merges if m.entity_name == "Omar" and m.into_name == "Omar Haddad")
    hit = chat.search("What does Omar Haddad do?", namespace="nina", k=5)
    assert "s1-1" in ids(hit)  # "Omar" in s1-1 is the same person
    chat.undo_merge(merge.id)
    assert chat.entity("Omar", namespace="nina").entity.name == "Omar"
    assert chat.entity("Omar Haddad", namespace="nina").aliases == ["Omar Haddad"]


def test_retrieval_entity_view_counts_the_merged_aliases(chat: MemoryManager) -> None:
    """Omar was merged into Omar Haddad: the view counts the mentions of both rows."""
    view = chat.entity("Omar", namespace="nina")
    assert view.entity.name == "Omar Haddad" and "Omar" in view.aliases
    assert view.mention_count == len(view.mentions) >= 2
    assert view.first_seen == min(m.observed_at for m in view.mentions)
    assert view.last_seen == max(m.observed_at for m in view.mentions)


def test_retrieval_speaker_facts(chat: MemoryManager) -> None:
    hits = chat.search("Where does Nina live now?", namespace="nina", k=3)
    assert "s4-2" in ids(hits)
    top = next(h for h in hits if h.external_id == "s4-2")
    assert any(r.source.name == "Nina" and r.target.name == "Denver" for r in top.relations)


SHOW = [
    ("Priya", "2025-09-01T10:00:00", "The pottery studio is putting on a student show in its gallery next month."),
    ("Daniel", "2025-09-01T10:01:00", "No way, that's amazing! Which piece are you showing?"),
    ("Priya", "2025-09-01T10:02:00", "A set of four stacking bowls in a green celadon glaze."),
    ("Daniel", "2025-09-01T10:03:00", "They sound lovely. Sam wants to get a second dog, by the way."),
    ("Priya", "2025-09-01T10:04:00", "Pepper would love a sister!"),
    ("Daniel", "2025-09-03T18:00:00", "I finally fixed the wobbly bookshelf in the hallway."),
    ("Priya", "2025-09-03T18:01:00", "I glazed a mug and a plate at the studio last week."),
    ("Daniel", "2025-09-03T18:02:00", "My students painted the chemistry lab blue over the summer."),
]


@pytest.mark.parametrize("session_time", [False, True], ids=["turn-times", "one-time-per-session"])
def test_retrieval_the_turn_after_a_question_answers_it(manager: MemoryManager, session_time: bool) -> None:
    """The answer ("A set of four stacking bowls…") shares no word with the question; the turn
    before it does. The following-turn credit lifts the answer, as a graph reason (the gap that
    ends a conversation is tested in test_graph_store_turns_after). A session stamped with one
    time, as imported transcripts often are, is followed in the order its turns were given."""
    first = {at[:10]: at for _, at, _ in reversed(SHOW)}  # each day's first time
    manager.add_many(
        [{"text": text, "external_id": f"t{i}", "metadata": {"speaker": who},
          "observed_at": first[at[:10]] if session_time else at}
         for i, (who, at, text) in enumerate(SHOW)],
        namespace="friends",
    )  # fmt: skip
    question = "Which piece did Priya choose for the student show?"
    explained = {e.hit.external_id: e for e in manager.explain(question, namespace="friends", k=8)}
    manager.search_config = replace(DEFAULT_SEARCH, turn_weight=0.0)
    without = [e.hit.external_id for e in manager.explain(question, namespace="friends", k=8)]
    with_credit = list(explained)
    assert with_credit.index("t2") < without.index("t2")
    assert "graph" in explained["t2"].hit.reasons and explained["t2"].ranks["turn"] <= 3
    t2 = explained["t2"]  # the explanation accounts for the whole score: the shares and the turn's gain
    assert t2.gains["turn"] > 0
    assert t2.hit.score == pytest.approx(
        sum(signal_shares(t2.ranks, DEFAULT_SEARCH).values()) + sum(t2.gains.values()), abs=2e-6
    )
    # Its question ends with "?": the answer is its reply and gains the whole of the question's
    # share, not half, which lifts it past a chunk it trailed.
    manager.search_config = replace(DEFAULT_SEARCH, reply_weight=DEFAULT_SEARCH.turn_weight)
    halved = {e.hit.external_id: e.hit.score for e in manager.explain(question, namespace="friends", k=8)}
    assert explained["t2"].hit.score > halved["t2"]
    assert with_credit.index("t2") < list(halved).index("t2")


@pytest.mark.parametrize(
    ("text", "said", "key"),
    [
        ("yesterday", date(2025, 6, 1), "2025-05-31"),
        ("last May", date(2025, 6, 1), "2025-05"),
        ("last May", date(2025, 3, 1), "2024-05"),
        ("next Tuesday", date(2025, 6, 1), "2025-06-03"),
        ("3 days ago", date(2025, 6, 1), "2025-05-29"),
        ("June 3, 2025", date(2025, 1, 1), "2025-06-03"),
        ("October 2024", date(2025, 1, 1), "2024-10"),
        ("last year", date(2025, 6, 1), "2024"),
        ("last week", date(2025, 6, 4), "2025-W22"),
    ],
)
def test_temporal_normalize_date(text: str, said: date, key: str) -> None:
    assert normalize_date(text, said).key == key


def test_temporal_when_questions() -> None:
    assert is_when_question("When did Nina move?") and is_when_question("What year was it founded?")
    assert not is_when_question("Where does Nina live?")


def test_retrieval_context_fits_budget(chat: MemoryManager) -> None:
    from memory_graph.context import approx_tokens

    for budget in (60, 200, 800):
        text = chat.context("Tell me about Omar", namespace="nina", max_tokens=budget)
        assert approx_tokens(text) <= budget
    assert "## Relations" in chat.context("Tell me about Omar", namespace="nina", max_tokens=800)
    assert datetime(2025, 1, 10, tzinfo=UTC).date().isoformat() in chat.context(
        "Omar job", namespace="nina", max_tokens=800
    )


def test_retrieval_hit_context_read_early_is_reused_and_the_same(chat: MemoryManager) -> None:
    """The context of likely hits is read while the query is still being embedded; the hits built
    from it are those a fresh read gives, and nothing read early is read again."""
    graph = chat.graph
    chunk_ids = [h.chunk_id for h in chat.search("Omar and Vantage Robotics in Pittsburgh", namespace="nina", k=6)]
    best = [(cid, Candidate(score=1.0 / rank)) for rank, cid in enumerate(chunk_ids, 1)]
    fresh = build_hits(best, graph, namespace="nina")
    early = HitContext(graph)
    early.read(chunk_ids[:3])
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    event.listen(graph.engine, "before_cursor_execute", count)
    try:
        reused = build_hits(best, graph, namespace="nina", context=early)
        early.read(chunk_ids)  # everything read: no statement
    finally:
        event.remove(graph.engine, "before_cursor_execute", count)
    assert reused == fresh
    assert any(h.relations for h in fresh) and any(h.entities for h in fresh)
    assert len(statements) == 3  # rows, entities and relations of the three chunks not read early


def test_retrieval_bridge_mentions_read_early_are_reused(chat: MemoryManager) -> None:
    """The mentions of the best keyword hits are read while the query is embedded; the bridges
    from them read only the chunks not read then, and find the same entities."""
    chunk_ids = [h.chunk_id for h in chat.search("Omar and Vantage Robotics in Pittsburgh", namespace="nina", k=4)]
    expansion = Expansion(
        "nina", 20, reads=chat.searcher.reads, config=DEFAULT_SEARCH, limit=20, since=None, until=None
    )
    early = expansion.read_mentions(chunk_ids[:2])
    later = expansion.read_mentions(chunk_ids)
    fresh = chat.searcher.reads.chunk_mentions(chunk_ids, labels=NAMED_LABELS | {CONCEPT})
    assert later == {cid: fresh.get(cid, []) for cid in chunk_ids}
    assert all(later[cid] is early[cid] for cid in chunk_ids[:2])  # not read again
    assert any(later.values())


def test_retrieval_search_takes_a_torch_thread_from_its_worker_only(tmp_path: Path) -> None:
    """The search's worker embeds with one torch thread fewer than the default; threads whose
    torch starts after a search (a notebook's first ``add_many``) keep the default. Torch's
    thread counts are process state, so this runs in a fresh interpreter."""
    script = textwrap.dedent(
        f"""
        import threading, torch
        from pathlib import Path
        from memory_graph import MemoryManager, Settings
        from memory_graph.retrieval.searcher import embedding_pool

        def count_in_new_thread():
            found = []
            thread = threading.Thread(target=lambda: found.append(torch.get_num_threads()))
            thread.start(); thread.join()
            return found[0]

        default = count_in_new_thread()
        with MemoryManager(Settings(data_dir=Path({str(tmp_path)!r}))) as mm:
            mm.search("Who wrote the first program?", namespace="n")
            worker = embedding_pool().submit(torch.get_num_threads).result()
            print(default, worker, torch.get_num_threads(), count_in_new_thread())
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    default, worker, main, later = map(int, out.stdout.split())
    assert worker == max(1, default - 1)
    assert main == later == default
