"""MemoryGraphRetriever inside LangChain runnables, sync and async, on real stores."""

from __future__ import annotations

import asyncio

import pytest

langchain_core = pytest.importorskip("langchain_core", reason="the langchain extra is not installed")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.runnables import RunnableLambda, RunnablePassthrough  # noqa: E402

from memory_graph import MemoryManager  # noqa: E402
from memory_graph.integrations.langchain import MemoryGraphRetriever  # noqa: E402


@pytest.fixture
def retriever(manager: MemoryManager) -> MemoryGraphRetriever:
    manager.add_many(
        [
            {
                "text": "Quincy moved to Oslo to work for Equinor.",
                "external_id": "q1",
                "metadata": {"speaker": "Quincy"},
            },
            {"text": "Rosa bakes sourdough bread every Sunday.", "external_id": "r1"},
        ],
        namespace="lc",
    )
    return MemoryGraphRetriever(manager=manager, namespace="lc", k=2)


def test_langchain_retriever_returns_documents_with_graph_context(retriever: MemoryGraphRetriever) -> None:
    docs = retriever.invoke("Where does Quincy work?")
    assert docs and all(isinstance(d, Document) for d in docs)
    top = docs[0]
    assert top.metadata["external_id"] == "q1" and "Quincy" in top.page_content
    assert any(e["name"] == "Quincy" for e in top.metadata["entities"])
    assert any(r["target"]["name"] == "Equinor" for r in top.metadata["relations"])


def test_langchain_retriever_in_a_runnable_chain(retriever: MemoryGraphRetriever) -> None:
    def to_prompt(inputs: dict) -> str:
        facts = [
            f"{r['source']['name']} {r['predicate']} {r['target']['name']}"
            for d in inputs["docs"]
            for r in d.metadata["relations"]
        ]
        return f"Question: {inputs['question']}\nFacts: {'; '.join(facts)}"

    chain = {"docs": retriever, "question": RunnablePassthrough()} | RunnableLambda(to_prompt)
    prompt = chain.invoke("Where does Quincy work?")
    assert prompt.startswith("Question: Where does Quincy work?") and "Equinor" in prompt
    docs = asyncio.run(retriever.ainvoke("Who bakes bread?"))
    assert docs[0].metadata["external_id"] == "r1"
    batch = asyncio.run(chain.abatch(["Where does Quincy work?", "Who bakes bread?"]))
    assert len(batch) == 2 and "Equinor" in batch[0]


# -- LangChain's own standard suite, in-process and over the HTTP client ------------------------

from langchain_tests.integration_tests import RetrieversIntegrationTests  # noqa: E402

STANDARD_MEMORIES = [
    {"text": "Hana lives in Oslo and teaches piano.", "external_id": "s1"},
    {"text": "Ivar moved to Oslo last spring.", "external_id": "s2"},
    {"text": "The Oslo opera house is by the fjord.", "external_id": "s3"},
    {"text": "Jonas visits Oslo every winter.", "external_id": "s4"},
]


@pytest.mark.anyio
class TestMemoryGraphRetrieverStandard(RetrieversIntegrationTests):
    """``RetrieversIntegrationTests`` against a MemoryManager on real stores."""

    @pytest.fixture(autouse=True)
    def memory(self, manager: MemoryManager) -> None:
        manager.add_many(STANDARD_MEMORIES, namespace="lc-standard")
        self.searchable = manager

    @property
    def retriever_constructor(self) -> type[MemoryGraphRetriever]:
        return MemoryGraphRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"manager": self.searchable, "namespace": "lc-standard", "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "Who lives in Oslo?"


@pytest.mark.anyio
class TestMemoryGraphRetrieverRemoteStandard(TestMemoryGraphRetrieverStandard):
    """The same suite with the retriever over :class:`MemoryGraphClient` and the real server."""

    @pytest.fixture(autouse=True)
    def memory(self, server) -> None:  # type: ignore[override]
        from memory_graph.client import MemoryGraphClient

        self.searchable = MemoryGraphClient(server.url, api_key="test-admin-key")
        self.searchable.add_many(STANDARD_MEMORIES, namespace="lc-standard")


def test_langchain_retriever_invoke_k_overrides(retriever: MemoryGraphRetriever) -> None:
    assert len(retriever.invoke("Where does Quincy work?", k=1)) == 1
    assert len(retriever.invoke("Where does Quincy work?")) == 2
