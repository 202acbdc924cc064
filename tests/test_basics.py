"""Settings, the error tree, the public surface, chunking."""

from __future__ import annotations

import inspect
import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import memory_graph
from memory_graph import errors
from memory_graph.chunking import chunk_text
from memory_graph.config import Settings


def test_config_defaults_are_embedded() -> None:
    s = Settings()
    assert s.data_dir == Path(".memory_graph")
    assert s.sqlalchemy_url == "sqlite:///.memory_graph/memory.db"
    assert s.chroma_dir == Path(".memory_graph/chroma")
    assert s.is_embedded and s.spacy_model == "en_memory_graph"


def test_config_reads_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MEMORY_GRAPH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MEMORY_GRAPH_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("MEMORY_GRAPH_CHROMA_HOST", "chroma.internal")
    monkeypatch.setenv("MEMORY_GRAPH_CHUNK_SIZE", "400")
    s = Settings()
    assert s.data_dir == tmp_path and s.sqlalchemy_url == "postgresql+psycopg://u@h/db"
    assert s.chroma_host == "chroma.internal" and s.chunk_size == 400 and not s.is_embedded
    assert Settings(chunk_size=1000).chunk_size == 1000  # code overrides the environment


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError):
        Settings(chunk_size=3)
    with pytest.raises(ValueError):
        Settings(unknown_field=1)


def test_data_dir_opened_by_many_at_once(tmp_path: Path) -> None:
    """Re-ingest workers open one data dir at the same moment: the writability probe of one must
    not be deleted by another (it was one shared file name, and a worker failed with "not writable")."""
    from concurrent.futures import ThreadPoolExecutor

    from memory_graph.manager import prepare_data_dir

    def open_often() -> None:
        for _ in range(200):
            prepare_data_dir(Settings(data_dir=tmp_path / "data"))

    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(open_often) for _ in range(4)]:
            future.result()
    assert list((tmp_path / "data").iterdir()) == []


def test_errors_form_one_tree() -> None:
    public = [obj for _, obj in inspect.getmembers(errors, inspect.isclass) if obj.__module__ == errors.__name__]
    assert len(public) >= 10
    for cls in public:
        assert issubclass(cls, errors.MemoryGraphWarning if issubclass(cls, Warning) else errors.MemoryGraphError), cls
        assert cls.__name__ in errors.__doc__, f"{cls.__name__} missing from the drawn tree"
    assert issubclass(errors.ConfigError, ValueError) and issubclass(errors.NotFoundError, LookupError)
    assert errors.EntityNotFoundError("Ann", "ns").key == "Ann"


def test_exported_members() -> None:
    public = {n for n in dir(memory_graph) if not n.startswith("_") and not inspect.ismodule(getattr(memory_graph, n))}
    assert public == set(memory_graph.__all__) - {"__version__"}


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab. \n?!é"), min_size=1, max_size=3000), st.integers(64, 900))
def test_chunking_offsets_cover_text(text: str, size: int) -> None:
    chunks = chunk_text(text, max_chars=size)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert text[c.start : c.end] == c.text and 0 < len(c.text) <= size
    assert "".join(text[c.start : c.end] for c in chunks).replace(" ", "").replace("\n", "") == text.replace(
        " ", ""
    ).replace("\n", "")
    assert all(a.end <= b.start for a, b in itertools.pairwise(chunks))


def test_chunking_prefers_sentence_boundaries() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(60))
    for chunk in chunk_text(text, max_chars=200):
        assert chunk.text.endswith(".")
