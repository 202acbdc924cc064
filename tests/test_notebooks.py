"""The analyst notebooks: committed without outputs, public API only, executed top to bottom.

Each notebook runs in a real Jupyter kernel (nbclient + ipykernel) started from this interpreter,
against a data dir prepared once with the example memories (``MEMORY_GRAPH_DATA_DIR``); the
overview notebook also runs as on a fresh clone, with no data dir, ingesting the examples itself.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

import memory_graph
from memory_graph import MemoryManager, Settings, VectorStore
from memory_graph.files import read_memory_files
from memory_graph.vector_store import make_chroma_client

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ["01_overview", "02_entity_neighbourhood", "03_why_retrieved", "04_quality"]
KERNEL = "memory-graph-test"
# A remote reference: an attribute, a stylesheet or a CSS import that would make the browser fetch.
REMOTE_REFERENCE = re.compile(
    r"""(?:\b(?:src|href|srcset|data)\s*=\s*["']?\s*(?:https?:)?//)|<link\b|<script\b[^>]*\bsrc\s*=|@import|url\(\s*["']?\s*(?:https?:)?//""",
    re.IGNORECASE,
)


def _notebook(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def test_notebooks_all_present() -> None:
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_committed_without_outputs(name: str) -> None:
    nb = _notebook(name)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name}: a cell has outputs; clear them before committing"
            assert cell.execution_count is None, f"{name}: a cell has an execution count; clear outputs"


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_use_only_the_public_api(name: str) -> None:
    source = "\n".join(cell.source for cell in _notebook(name).cells if cell.cell_type == "code")
    assert "import memory_graph as mg" in source
    assert not re.search(r"(?:from|import)\s+memory_graph\.", source), f"{name} imports a private module"
    for used in set(re.findall(r"\bmg\.(\w+)", source)):
        assert used in memory_graph.__all__, f"{name} uses mg.{used}, which is not public"
    assert not re.search(r"\bmm\.(?:graph|vectors|_\w+)\b", source), f"{name} reaches into the manager's stores"


# -- execution ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """A kernelspec that runs ipykernel on this very interpreter (not whatever `python` is on PATH)."""
    kernels = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(kernels / KERNEL)
    spec = json.loads((kernels / KERNEL / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable
    return KernelSpecManager(kernel_dirs=[str(kernels)])


@pytest.fixture(scope="module")
def examples_data_dir(tmp_path_factory: pytest.TempPathFactory, extractor, embedder) -> Path:
    """A data dir holding the example memories in namespace "demo", shared by the notebooks."""
    data_dir = tmp_path_factory.mktemp("notebook-data")
    settings = Settings(data_dir=data_dir)
    vectors = VectorStore(make_chroma_client(path=settings.chroma_dir), settings.collection, embedder=embedder)
    with MemoryManager(settings, vectors=vectors, extractor=extractor) as mm:
        mm.add_many(read_memory_files([ROOT / "examples"]), namespace="demo")
        assert mm.stats("demo").documents >= 20
    return data_dir


def _execute(name: str, kernel_specs: KernelSpecManager) -> nbformat.NotebookNode:
    nb = _notebook(name)
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=kernel_specs)
    client = NotebookClient(nb, km=km, timeout=600, resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    return nb


def _outputs(nb: nbformat.NotebookNode) -> Iterator[nbformat.NotebookNode]:
    for cell in nb.cells:
        if cell.cell_type == "code":
            yield from cell.outputs


def _check_executed(name: str, nb: nbformat.NotebookNode) -> None:
    outputs = list(_outputs(nb))
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, f"{name}: {errors[0].ename}: {errors[0].evalue}"
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, f"{name} shows no picture"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.execution_count is not None, f"{name}: a cell did not run"


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebooks_execute(
    name: str, kernel_specs: KernelSpecManager, examples_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMORY_GRAPH_DATA_DIR", str(examples_data_dir))
    nb = _execute(name, kernel_specs)
    _check_executed(name, nb)
    if name == "02_entity_neighbourhood":
        pages = [
            o.data["text/html"]
            for o in _outputs(nb)
            if "text/html" in o.get("data", {}) and "vis.Network" in o.data["text/html"]
        ]
        assert len(pages) == 1, "02 shows no interactive picture"
        assert not REMOTE_REFERENCE.search(pages[0]), REMOTE_REFERENCE.search(pages[0])
        assert "maya" in pages[0].lower()
    if name == "03_why_retrieved":
        text = "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in _outputs(nb))
        assert "entities linked from the query: Maya" in text


@pytest.mark.slow
def test_notebooks_execute_on_a_fresh_clone(kernel_specs: KernelSpecManager) -> None:
    """No data dir given: the notebook ingests the examples into a temporary one by itself."""
    nb = _execute("01_overview", kernel_specs)
    _check_executed("01_overview", nb)
    printed = "".join(o.get("text", "") for o in _outputs(nb) if o.output_type == "stream")
    assert "memory-graph-" in printed  # the temporary data dir's SQLite URL
