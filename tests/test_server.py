"""The HTTP server, started for real in a subprocess on a loopback port (tests/conftest.py), used
through real HTTP: the client and raw httpx requests."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import checks as st_checks

from memory_graph import (
    ConsistencyReport,
    DocumentNotFoundError,
    EntityNotFoundError,
    EntityView,
    HitExplanation,
    InputError,
    MemoryHit,
    MemoryRecord,
    Settings,
    Stats,
)
from memory_graph.client import AsyncMemoryGraphClient, MemoryGraphClient
from memory_graph.errors import AccessDeniedError

RunningServer = Any  # tests/conftest.py: the server's url, log and process
SERVER_KEYS = {"test-admin-key": ["*"], "test-key-a": ["ns-a"]}

ADMIN = "test-admin-key"
KEY_A = "test-key-a"
KEY_B = "test-key-b"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def client(server: RunningServer, key: str = ADMIN, namespace: str = "default") -> MemoryGraphClient:
    return MemoryGraphClient(server.url, api_key=key, namespace=namespace)


def count(server: RunningServer, namespace: str) -> int:
    r = httpx.get(f"{server.url}/v1/namespaces/{namespace}/stats", headers=auth(ADMIN))
    assert r.status_code == 200
    return int(r.json()["documents"])


def test_server_add_get_delete(server: RunningServer) -> None:
    with client(server) as mm:
        record = mm.add("Quincy moved to Oslo to work for Equinor.", namespace="s-crud", external_id="q1")
        assert isinstance(record, MemoryRecord) and record.created and record.external_id == "q1"
        assert {e.name for e in record.entities} >= {"Quincy", "Oslo", "Equinor"}
        again = mm.add("Quincy moved to Oslo to work for Equinor.", namespace="s-crud", external_id="q1")
        assert not again.created and again.document_id == record.document_id
        got = mm.get(record.document_id)
        assert got.namespace == "s-crud" and got.chunk_ids == record.chunk_ids
        raw = httpx.get(f"{server.url}/v1/memories/{record.document_id}", headers=auth(ADMIN))
        assert raw.status_code == 200 and raw.json()["document_id"] == record.document_id
        by_ext = f"{server.url}/v1/namespaces/s-crud/memories/by-external-id"
        raw = httpx.get(f"{by_ext}/q1", headers=auth(ADMIN))
        assert raw.status_code == 200 and raw.json()["document_id"] == record.document_id
        assert httpx.get(f"{by_ext}/q1", headers=auth(KEY_A)).status_code == 403
        assert (
            httpx.get(f"{server.url}/v1/namespaces/ns-a/memories/by-external-id/q1", headers=auth(KEY_A)).status_code
            == 404
        )
        other = mm.add("Wanda flies gliders.", namespace="s-crud", external_id="w1")
        assert httpx.delete(f"{by_ext}/w1", headers=auth(ADMIN)).status_code == 204
        assert httpx.delete(f"{by_ext}/w1", headers=auth(ADMIN)).status_code == 404
        with pytest.raises(DocumentNotFoundError):
            mm.get(other.document_id)
        mm.delete(record.document_id)
        with pytest.raises(DocumentNotFoundError):
            mm.get(record.document_id)
        with pytest.raises(DocumentNotFoundError):
            mm.delete(record.document_id)
        assert httpx.delete(f"{server.url}/v1/memories/{record.document_id}", headers=auth(ADMIN)).status_code == 404
        assert mm.stats("s-crud").documents == 0


def test_server_search_explain_context_entity_stats_verify(server: RunningServer) -> None:
    ns = "s-read"
    with client(server, namespace=ns) as mm:
        records = mm.add_many(
            [
                {"text": "Rosa bakes sourdough bread every Sunday.", "observed_at": "2024-01-05"},
                {"text": "Marek works for Siemens in Munich.", "observed_at": "2024-03-01"},
                {"text": "Rosa adopted a cat named Pixel.", "observed_at": "2024-06-10"},
            ]
        )
        assert len(records) == 3 and all(r.namespace == ns for r in records)
        hits = mm.search("Who bakes bread?", k=2)
        assert 1 <= len(hits) <= 2 and all(isinstance(h, MemoryHit) for h in hits)
        assert "sourdough" in hits[0].text and hits[0].observed_at is not None
        assert [h.text for h in mm.search("Rosa", k=5, since="2024-06-01")] == ["Rosa adopted a cat named Pixel."]
        assert all("Pixel" not in h.text for h in mm.search("Rosa", k=5, until="2024-06-01"))
        explained = mm.explain("Where does Marek work?", k=1)
        assert isinstance(explained[0], HitExplanation) and "Siemens" in explained[0].hit.text
        assert explained[0].ranks and any(e.name == "Marek" for e in explained[0].linked_entities)
        text = mm.context("Where does Marek work?", max_tokens=200)
        assert "Siemens" in text
        view = mm.entity("Marek")
        assert isinstance(view, EntityView) and view.entity.name == "Marek" and view.mentions
        with pytest.raises(EntityNotFoundError):
            mm.entity("Nobody Atall")
        stats = mm.stats(ns)
        assert isinstance(stats, Stats) and stats.documents == 3 and stats.vectors >= 3
        assert mm.stats().documents >= 3  # all namespaces (admin)
        report = mm.verify()
        assert isinstance(report, ConsistencyReport) and report.ok


def test_server_async_client(server: RunningServer) -> None:
    async def run() -> tuple[MemoryRecord, list[MemoryHit], str]:
        async with AsyncMemoryGraphClient(server.url, api_key=ADMIN, namespace="s-async") as mm:
            record = await mm.add("Ines plays the cello in Lisbon.", metadata={"speaker": "Ines"})
            hits, text = await asyncio.gather(mm.search("Who plays the cello?"), mm.context("cello"))
            return record, hits, text

    record, hits, text = asyncio.run(run())
    assert record.namespace == "s-async" and hits[0].document_id == record.document_id and "cello" in text


def test_server_client_from_settings(server: RunningServer) -> None:
    settings = Settings(url=server.url, api_key=KEY_A, namespace="ns-a")
    with MemoryGraphClient(settings=settings) as mm:
        assert mm.add("Amara paints murals.").namespace == "ns-a"  # the settings' namespace
        with pytest.raises(AccessDeniedError):
            mm.stats()  # all namespaces: admin only


def test_server_key_rules(server: RunningServer) -> None:
    url = server.url
    body = {"query": "anything"}
    no_key = httpx.post(f"{url}/v1/namespaces/ns-a/search", json=body)
    assert no_key.status_code == 401 and no_key.headers["www-authenticate"] == "Bearer"
    assert httpx.post(f"{url}/v1/namespaces/ns-a/search", json=body, headers=auth("wrong")).status_code == 401
    with client(server, KEY_B, "ns-b") as b:
        b_record = b.add("Bianca keeps bees in Turin.")
    before_a, before_b = count(server, "ns-a"), count(server, "ns-b")
    # Key A on namespace B: 403 for every route, and nothing stored, read or deleted.
    forbidden = [
        ("POST", "/v1/namespaces/ns-b/memories", {"text": "Intruder text."}),
        ("POST", "/v1/namespaces/ns-b/memories/batch", {"memories": [{"text": "Intruder text."}]}),
        ("POST", "/v1/namespaces/ns-b/search", body),
        ("POST", "/v1/namespaces/ns-b/explain", body),
        ("POST", "/v1/namespaces/ns-b/context", body),
        ("GET", "/v1/namespaces/ns-b/entities/Bianca", None),
        ("GET", "/v1/namespaces/ns-b/stats", None),
    ]
    for method, path, payload in forbidden:
        r = httpx.request(method, url + path, json=payload, headers=auth(KEY_A))
        assert r.status_code == 403, (path, r.text)
        assert "ns-b" in r.json()["detail"]
    # B's memory by id: not found for key A, and still there.
    assert httpx.get(f"{url}/v1/memories/{b_record.document_id}", headers=auth(KEY_A)).status_code == 404
    assert httpx.delete(f"{url}/v1/memories/{b_record.document_id}", headers=auth(KEY_A)).status_code == 404
    with client(server, KEY_A, "ns-a") as a:
        with pytest.raises(DocumentNotFoundError):
            a.get(b_record.document_id)
        with pytest.raises(AccessDeniedError):
            a.search("bees", namespace="ns-b")
        a.add("Arturo collects stamps.")
        assert all(h.namespace == "ns-a" for h in a.search("Who keeps bees in Turin?", k=5))
    assert count(server, "ns-b") == before_b and count(server, "ns-a") == before_a + 1
    # Admin routes need an admin key.
    for method, path in (("GET", "/v1/stats"), ("POST", "/v1/verify"), ("GET", "/v1/keys"), ("POST", "/v1/keys")):
        assert httpx.request(method, url + path, headers=auth("test-key-ab"), json={}).status_code == 403
    # A key for both sees both.
    with client(server, "test-key-ab") as ab:
        assert ab.get(b_record.document_id).namespace == "ns-b"


def test_server_admin_manages_keys(server: RunningServer) -> None:
    url = server.url
    r = httpx.post(f"{url}/v1/keys", json={"name": "bot", "namespaces": ["ns-c"]}, headers=auth(ADMIN))
    assert r.status_code == 201
    created = r.json()
    token = created["key"]
    assert created["namespaces"] == ["ns-c"] and not created["admin"] and created["source"] == "file"
    with client(server, token, "ns-c") as c:
        c.add("Celia sails on Lake Geneva.")
        with pytest.raises(AccessDeniedError):
            c.search("x", namespace="ns-a")
    listed = httpx.get(f"{url}/v1/keys", headers=auth(ADMIN)).json()
    assert created["id"] in {k["id"] for k in listed} and all("key" not in k and "hash" not in k for k in listed)
    key_file = (server.log.parent / "data" / "api_keys.json").read_text()
    assert token not in key_file and hashlib.sha256(token.encode()).hexdigest() in key_file
    assert httpx.delete(f"{url}/v1/keys/{created['id']}", headers=auth(ADMIN)).status_code == 204
    assert httpx.get(f"{url}/v1/namespaces/ns-c/stats", headers=auth(token)).status_code == 401
    assert httpx.delete(f"{url}/v1/keys/{created['id']}", headers=auth(ADMIN)).status_code == 404
    bad = httpx.post(f"{url}/v1/keys", json={"name": "none", "namespaces": []}, headers=auth(ADMIN))
    assert bad.status_code == 422 and "namespace" in bad.json()["detail"]


@pytest.mark.parametrize(
    ("path", "payload", "reason"),
    [
        ("memories", {"metadata": {}}, "body.text: Field required"),
        ("memories", {"text": "Fine text.", "colour": "red"}, "body.colour: Extra inputs are not permitted"),
        ("memories", {"text": "   "}, "empty"),
        ("memories", {"text": "Fine text.", "observed_at": "not a date"}, "observed_at"),
        ("memories/batch", {"memories": [{"text": "Good row."}, {"text": ""}]}, "row 1"),
        ("search", {"query": "x", "k": 0}, "body.k"),
        ("search", {"query": ""}, "query is empty"),
        ("context", {"query": "x", "max_tokens": "many"}, "body.max_tokens"),
        ("search", "{not json", "body"),
    ],
)
def test_server_validation_errors_are_422_one_line_nothing_stored(
    server: RunningServer, path: str, payload: object, reason: str
) -> None:
    ns = "s-invalid"
    before = count(server, ns)
    url = f"{server.url}/v1/namespaces/{ns}/{path}"
    if isinstance(payload, str):
        r = httpx.post(url, content=payload, headers={**auth(ADMIN), "content-type": "application/json"})
    else:
        r = httpx.post(url, json=payload, headers=auth(ADMIN))
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and reason in detail
    assert count(server, ns) == before
    client_rejects = {
        "memories": lambda mm: mm.add(**payload),
        "memories/batch": lambda mm: mm.add_many(payload["memories"]),
    }  # type: ignore[index]
    if isinstance(payload, dict) and (
        path == "memories/batch" or (set(payload) <= {"text", "observed_at"} and "text" in payload)
    ):
        with client(server, namespace=ns) as mm, pytest.raises(InputError, match=re.escape(reason)):
            client_rejects[path](mm)
        assert count(server, ns) == before


def test_server_health_ready_metrics_and_one_log_line(server: RunningServer) -> None:
    url = server.url
    assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
    ready = httpx.get(f"{url}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"graph": "ok", "vectors": "ok"}
    with client(server, namespace="s-metrics") as mm:
        mm.add("Tomas restores old clocks in Prague.")
    secret = "Tomas restores clocks"
    r = httpx.post(
        f"{url}/v1/namespaces/s-metrics/search",
        json={"query": secret},
        headers={**auth(ADMIN), "X-Request-ID": "req-metrics-1"},
    )
    assert r.status_code == 200 and r.headers["x-request-id"] == "req-metrics-1"
    metrics = httpx.get(f"{url}/metrics").text
    ok = re.search(r'memory_graph_operations_total\{operation="search",outcome="ok"\} (\d+)', metrics)
    assert ok and int(float(ok.group(1))) >= 1
    for name in ("search", "extraction", "embedding"):
        found = re.search(rf"memory_graph_{name}_seconds_count (\S+)", metrics)
        assert found and float(found.group(1)) >= 1, name
    docs = re.search(r'memory_graph_store_rows\{kind="documents"\} (\S+)', metrics)
    assert docs and float(docs.group(1)) >= 1
    lines = [line for line in server.log_lines() if "req-metrics-1" in line]
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["namespace"] == "s-metrics" and entry["status"] == 200 and entry["duration_ms"] > 0
    assert entry["route"] == "/v1/namespaces/{namespace}/search" and entry["key_id"].startswith("settings-")
    assert secret not in lines[0] and "Tomas" not in lines[0]
    assert any("Uvicorn running on http://127.0.0.1:" in line for line in server.log_lines())  # loopback


def test_server_first_start_creates_an_admin_key_printed_once(tmp_path, server_process) -> None:
    fresh = server_process(tmp_path / "data")
    printed = re.findall(r"^\s+(mg_[A-Za-z0-9_-]+)$", fresh.log.read_text(), re.M)
    assert len(printed) == 1
    token = printed[0]
    stored = (tmp_path / "data" / "api_keys.json").read_text()
    assert token not in stored and hashlib.sha256(token.encode()).hexdigest() in stored
    assert httpx.get(f"{fresh.url}/v1/stats").status_code == 401
    assert httpx.get(f"{fresh.url}/v1/stats", headers=auth(token)).status_code == 200
    assert json.loads(stored)["keys"][0]["admin"] is True


def test_server_openapi_schema(server: RunningServer) -> None:
    schema = httpx.get(f"{server.url}/openapi.json").json()
    assert schema["info"]["title"] == "memory-graph"
    assert all(p.startswith(("/v1/", "/healthz", "/readyz")) for p in schema["paths"])
    hit = schema["components"]["schemas"]["MemoryHit"]["properties"]
    assert set(hit) == set(MemoryHit.__dataclass_fields__)


def test_server_openapi_property_no_5xx_and_responses_match_schema(server: RunningServer) -> None:
    """Requests generated from the OpenAPI schema, valid and invalid ones for every operation
    (admin key, so that they reach the routes' logic): no 5xx, and every response conforms to
    the schema."""
    api = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 14
    requests_before = len(server.log_lines())
    strategies = [
        (mode, operation.as_strategy(generation_mode=mode))
        for operation in operations
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    ]
    no_invalid_request = 0
    for mode, strategy in strategies:

        @given(case=strategy)
        @settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            case.call_and_validate(
                base_url=server.url,
                headers=auth(ADMIN),
                checks=[
                    st_checks.not_a_server_error,
                    st_checks.status_code_conformance,
                    st_checks.content_type_conformance,
                    st_checks.response_schema_conformance,
                ],
            )

        try:
            check()
        except Unsatisfiable:  # an operation with nothing to get wrong (no parameters, no body)
            assert mode == schemathesis.GenerationMode.NEGATIVE
            no_invalid_request += 1
    assert no_invalid_request <= 5
    assert len(server.log_lines()) - requests_before > 100  # the requests did reach the server


def test_server_keys_are_in_settings() -> None:
    assert Settings().server_host == "127.0.0.1"
    assert Settings(api_keys=SERVER_KEYS).api_keys["test-key-a"] == ["ns-a"]


def test_cli_data_commands_use_the_server_with_url(server: RunningServer, tmp_path, monkeypatch) -> None:
    from click.testing import CliRunner

    from memory_graph.cli import cli

    monkeypatch.setenv("MEMORY_GRAPH_API_KEY", ADMIN)
    source = tmp_path / "memories.jsonl"
    rows = [{"text": "Yusuf repairs bicycles in Izmir.", "id": "y1"}, {"text": "Zora sings in a choir.", "id": "z1"}]
    source.write_text("\n".join(json.dumps(r) for r in rows))
    runner = CliRunner()
    base = ["--url", server.url, "--data-dir", str(tmp_path / "unused")]
    ingested = runner.invoke(cli, [*base, "ingest", str(source), "--namespace", "s-cli", "--json"])
    assert ingested.exit_code == 0, ingested.output
    assert json.loads(ingested.output)["stored"] == 2
    found = runner.invoke(cli, [*base, "query", "Who repairs bicycles?", "--namespace", "s-cli", "-k", "1", "--json"])
    assert found.exit_code == 0 and json.loads(found.output)[0]["external_id"] == "y1"
    shown = runner.invoke(cli, [*base, "entity", "Yusuf", "--namespace", "s-cli"])
    assert shown.exit_code == 0 and shown.output.startswith("Yusuf (PERSON)")
    counted = runner.invoke(cli, [*base, "stats", "--namespace", "s-cli", "--json"])
    assert json.loads(counted.output)["documents"] == 2
    assert runner.invoke(cli, [*base, "verify"]).exit_code == 0
    assert not (tmp_path / "unused").exists()  # nothing local was opened
    monkeypatch.setenv("MEMORY_GRAPH_API_KEY", "test-key-a")
    denied = runner.invoke(cli, [*base, "query", "bicycles", "--namespace", "s-cli"])
    assert denied.exit_code == 1 and "may not touch namespace 's-cli'" in denied.output
    monkeypatch.setenv("MEMORY_GRAPH_URL", server.url)  # the setting instead of the option
    mine = runner.invoke(cli, ["query", "Who sings?", "--namespace", "ns-a", "--json"])
    assert mine.exit_code == 0 and all(h["namespace"] == "ns-a" for h in json.loads(mine.output))


def test_server_forget_external_ids_and_where(server: RunningServer) -> None:
    url = server.url
    made = httpx.post(f"{url}/v1/keys", json={"name": "fg", "namespaces": ["s-fg"]}, headers=auth(ADMIN)).json()
    token = made["key"]
    with client(server, ADMIN, "s-fg-other") as admin:
        kept = admin.add("Ulla keeps bees in Uppsala.", external_id="m2", metadata={"kind": "episodic"})
    with client(server, token, "s-fg") as mm:
        mm.add("Viktor repairs clocks in Vilnius.", external_id="m1", metadata={"kind": "episodic"})
        second = mm.add("Viktor's sister Greta builds clocks too.", external_id="m2", metadata={"kind": "semantic"})
        # The caller's own ids: in the client's namespace, or in the one named; document ids too.
        assert mm.get("m2").document_id == second.document_id
        assert mm.get("m2", namespace="s-fg").document_id == second.document_id
        assert mm.get(second.document_id, namespace="s-fg").external_id == "m2"
        raw = httpx.get(f"{url}/v1/namespaces/s-fg/memories/m2", headers=auth(token))
        assert raw.status_code == 200 and raw.json()["document_id"] == second.document_id
        # Another namespace's memory is not found, by either id; the namespace itself is a 403.
        with pytest.raises(DocumentNotFoundError):
            mm.get(kept.document_id)
        with pytest.raises(AccessDeniedError):
            mm.get("m2", namespace="s-fg-other")
        assert httpx.get(f"{url}/v1/memories/m2?namespace=s-fg-other", headers=auth(token)).status_code == 404
        # where= on search, explain and context, pushed to the server; a bad one is an InputError.
        assert {h.metadata["kind"] for h in mm.search("clocks", k=5)} == {"episodic", "semantic"}
        assert [h.metadata["kind"] for h in mm.search("clocks", k=5, where={"kind": "semantic"})] == ["semantic"]
        assert mm.search("clocks", k=5, where={"kind": {"$in": ["procedural"]}}) == []
        assert [e.hit.external_id for e in mm.explain("clocks", where={"kind": "episodic"})] == ["m1"]
        assert "Greta" not in mm.context("clocks", where={"kind": "episodic"})
        with pytest.raises(InputError, match=re.escape("unknown operator '$gt'")):
            mm.search("clocks", where={"kind": {"$gt": 1}})
        r = httpx.post(f"{url}/v1/namespaces/s-fg/search", json={"query": "x", "where": {"a": {"$regex": "."}}},
                       headers=auth(token))  # fmt: skip
        assert r.status_code == 422 and "unknown operator '$regex'" in r.json()["detail"]
        # Delete by external id: a newcomer's first try; then it is gone, and a second try is a 404.
        mm.delete("m2")
        with pytest.raises(DocumentNotFoundError):
            mm.get("m2")
        with pytest.raises(DocumentNotFoundError):
            mm.delete("m2", namespace="s-fg")
        assert httpx.delete(f"{url}/v1/namespaces/s-fg/memories/m2", headers=auth(token)).status_code == 404
        # Forget: only a key allowed the namespace; nothing of the other changes.
        other_before = admin_stats(server, "s-fg-other")
        with pytest.raises(AccessDeniedError):
            mm.forget("s-fg-other")
        assert httpx.delete(f"{url}/v1/namespaces/s-fg", headers=auth(KEY_A)).status_code == 403
        assert admin_stats(server, "s-fg-other") == other_before
        assert mm.stats("s-fg").documents == 1
        gone = mm.forget("s-fg")
        assert (gone.namespace, gone.documents, gone.chunks, gone.vectors) == ("s-fg", 2, 1, 1)  # m2's tombstone
        assert mm.stats("s-fg").documents == 0 and mm.search("clocks", k=5) == []
        assert mm.forget("s-fg").documents == 0  # nothing left: all zero
    assert admin_stats(server, "s-fg-other") == other_before
    with client(server) as admin:
        assert admin.get("m2", namespace="s-fg-other").document_id == kept.document_id
        assert admin.verify().ok


def admin_stats(server: RunningServer, namespace: str) -> dict:
    r = httpx.get(f"{server.url}/v1/namespaces/{namespace}/stats", headers=auth(ADMIN))
    assert r.status_code == 200
    return r.json()
