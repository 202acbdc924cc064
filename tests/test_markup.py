"""Text structure: markdown blocks are parsed apart, front matter is metadata, a note's own date
is its ``observed_at``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from memory_graph.extraction import Extractor
from memory_graph.files import front_matter, read_memory_files
from memory_graph.markup import blocks

NOTE = "# Omar\nOmar Haddad is a designer at Nordbyg in Aarhus.\n\n## Work\n- He joined Vestas in 2021.\n- He lives in Aarhus.\n"


def test_blocks_cut_at_headings_list_items_and_blank_lines() -> None:
    assert blocks(NOTE) == [
        "# Omar\n",
        "Omar Haddad is a designer at Nordbyg in Aarhus.\n\n",
        "## Work\n",
        "- He joined Vestas in 2021.\n",
        "- He lives in Aarhus.\n",
    ]


def test_blocks_keep_wrapped_lines_together() -> None:
    text = "Alice works at Acme and lives\nin Paris with Bob.\n- a list item that\n  wraps onto a second line\n"
    assert blocks(text) == ["Alice works at Acme and lives\nin Paris with Bob.\n", text.split("\n", 2)[2]]


@given(st.text(alphabet=st.sampled_from(list("ab #-*1.>|\n\t "))))
def test_blocks_concatenate_to_the_text(text: str) -> None:
    pieces = blocks(text)
    assert "".join(pieces) == text
    assert all(pieces) or pieces == [""]


def test_a_heading_is_not_glued_to_the_first_sentence(extractor: Extractor) -> None:
    doc = extractor.parse(NOTE)
    assert doc.text == NOTE
    assert all("#" not in sent.text or sent.text.strip().startswith("#") for sent in doc.sents)
    x = extractor.extract(NOTE)
    names = {e.name for e in x.entities if e.label == "PERSON"}
    assert "Omar Haddad" in names and not any("#" in n for n in names)
    found = {(x.entities[r.source].name, r.predicate, x.entities[r.target].name) for r in x.relations}
    assert not any(source == target for source, _, target in found)
    # The list items under the heading still find their subject two blocks up.
    assert ("Omar Haddad", "lives in", "Aarhus") in found


def test_front_matter_is_metadata_and_its_date_is_observed_at(tmp_path: Path) -> None:
    note = tmp_path / "trip.md"
    note.write_text("---\ntitle: Kyoto trip\ndate: 2025-03-14\ntags: [travel]\n---\nWe arrived in Kyoto.\n")
    (row,) = read_memory_files([note])
    assert row["text"] == "We arrived in Kyoto.\n"
    assert row["observed_at"] == datetime(2025, 3, 14, tzinfo=UTC)
    assert row["metadata"] == {"title": "Kyoto trip", "date": "2025-03-14", "tags": ["travel"], "path": note.as_posix()}


def test_a_first_line_date_is_observed_at_else_the_files_time(tmp_path: Path) -> None:
    dated = tmp_path / "day.md"
    dated.write_text("# 14 March 2025\nOmar moved to Copenhagen.\n")
    undated = tmp_path / "other.md"
    undated.write_text("Omar moved to Copenhagen on 2025-03-14.\n")
    rows = {Path(r["external_id"]).name: r for r in read_memory_files([dated, undated])}
    assert rows["day.md"]["observed_at"] == datetime(2025, 3, 14, tzinfo=UTC)
    assert rows["other.md"]["observed_at"] == datetime.fromtimestamp(undated.stat().st_mtime, UTC)


def test_text_that_only_looks_like_front_matter_is_kept_whole() -> None:
    text = "---\nJust a rule, then prose.\n---\nMore prose.\n"
    assert front_matter(text) == ({}, text)
