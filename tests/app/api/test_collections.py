"""Two collections in one service, in-process on each store: each answers from its own index
only, /collections, /documents, /ingest and /v1 name them, and the keys file decides who
reaches which (401 / 403 / 404 as app/access/grant.py decides). The cross-collection attacks
over a real server are tests/e2e/test_isolation.py's."""
from __future__ import annotations

import hashlib
from typing import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.settings import Settings
from ingest.collections import collection_configs, settings_for
from ingest.embedders import HashingEmbedder
from ingest.sync import run_ingest
from tests.helpers import serving, write
from tests.postgres import drop_schema, new_schema

ALPHA = "The alpha vault opens with the code 4417 on Tuesdays."
BRAVO = "The bravo launch word is periwinkle, said twice."
KEYS = {"alpha-read": ("k-alpha-read", ["alpha"], "read"),
        "alpha-write": ("k-alpha-write", ["alpha"], "write"),
        "all-read": ("k-all-read", ["*"], "read")}
ADMIN = "k-admin-root"


def _keys_file(path) -> None:
    path.write_text("".join(
        f'[[keys]]\nname = "{name}"\nsha256 = "{hashlib.sha256(key.encode()).hexdigest()}"\n'
        f'collections = ["{cols[0]}"]\nrole = "{role}"\n' for name, (key, cols, role)
        in KEYS.items()), encoding="utf-8")


@pytest.fixture
def two(small_index, tmp_path) -> Iterator[Settings]:
    """Settings of a service with collections `alpha` and `bravo` (each ingested), on the
    small index's store."""
    write(tmp_path / "alpha", "vault.md", f"# Vault\n\n{ALPHA}\n")
    write(tmp_path / "bravo", "launch.md", f"# Launch\n\n{BRAVO}\n")
    (tmp_path / "collections.toml").write_text(
        '[collections.alpha]\ncorpus = "alpha"\n[collections.bravo]\ncorpus = "bravo"\n')
    _keys_file(tmp_path / "keys.toml")
    settings = small_index.model_copy(update={
        "collections_file": tmp_path / "collections.toml", "index_dir": tmp_path / "index",
        "database_schema": new_schema(), "keys_file": tmp_path / "keys.toml"})
    configs = collection_configs(settings)
    for config in configs:
        run_ingest(settings_for(settings, config), HashingEmbedder())
    yield settings
    if settings.store == "postgres":
        for config in configs:
            drop_schema(settings.database_url, config.database_schema)


@pytest.fixture
def client(two) -> Iterator[TestClient]:
    with serving(two.model_copy(update={"api_key": SecretStr(ADMIN)})) as c:
        yield c


def as_key(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_each_collection_answers_from_its_own_documents_only(client):
    admin = as_key(ADMIN)
    questions = {"alpha": ("Which code opens the alpha vault?", "4417"),
                 "bravo": ("What is the bravo launch word?", "periwinkle")}
    for name, other in (("alpha", "bravo"), ("bravo", "alpha")):
        own = client.post("/ask", headers=admin, json={"question": questions[name][0],
                                                       "collection": name})
        assert own.status_code == 200, own.text
        assert questions[name][1] in " ".join(c["text"] for c in own.json()["citations"])
        for mode in ("hybrid", "dense", "lexical"):  # the other's fact, asked here: not found
            r = client.post("/ask", headers=admin, json={
                "question": questions[other][0], "collection": name, "mode": mode})
            assert r.status_code == 200 and questions[other][1] not in r.text
        docs = client.get(f"/documents?collection={name}", headers=admin).json()
        assert docs["collection"] == name and len(docs["documents"]) == 1
    listed = client.get("/collections", headers=admin).json()["collections"]
    assert [(c["name"], c["documents"], c["access"]) for c in listed] == [
        ("alpha", 1, "admin"), ("bravo", 1, "admin")]


def test_without_a_default_collection_a_request_must_name_one(client):
    r = client.post("/ask", headers=as_key(ADMIN), json={"question": "vault code?"})
    assert r.status_code == 404 and "no collection named 'default'" in r.json()["detail"]
    assert client.post("/ask", headers=as_key(ADMIN),
                       json={"question": "x", "collection": "Alpha"}).status_code == 422


def test_keys_reach_only_their_collections_and_roles(client):
    read, write = as_key("k-alpha-read"), as_key("k-alpha-write")
    listed = client.get("/collections", headers=read).json()["collections"]
    assert [(c["name"], c["access"]) for c in listed] == [("alpha", "read")]
    unknown = client.get("/documents?collection=nope", headers=read)
    hidden = client.get("/documents?collection=bravo", headers=read)
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["detail"].replace("bravo", "nope") == unknown.json()["detail"]
    assert client.post("/ingest", headers=read, json={"collection": "alpha"}).status_code == 403
    assert client.post("/ingest", headers=write, json={"collection": "alpha"}).status_code == 200
    assert client.post("/ingest", headers=write, json={"collection": "bravo"}).status_code == 404
    assert client.get("/metrics", headers=write).status_code == 403
    metrics = client.get("/metrics", headers=as_key(ADMIN))
    assert metrics.status_code == 200
    for name in ("alpha", "bravo"):
        assert f'ragfirst_collection_documents{{collection="{name}"}} 1.0' in metrics.text
        assert f'ragfirst_collection_ready{{collection="{name}"}} 1.0' in metrics.text
    assert client.get("/collections", headers=as_key("k-wrong")).status_code == 401
    everything = client.get("/collections", headers=as_key("k-all-read")).json()
    assert [c["name"] for c in everything["collections"]] == ["alpha", "bravo"]


def test_v1_models_are_the_readable_collections(client):
    read = as_key("k-alpha-read")
    ids = [m["id"] for m in client.get("/v1/models", headers=read).json()["data"]]
    assert ids == ["ragfirst/alpha"]
    assert client.get("/v1/models/ragfirst/alpha", headers=read).status_code == 200
    for model in ("ragfirst/bravo", "ragfirst", "ragfirst/nope", "alpha"):
        r = client.post("/v1/chat/completions", headers=read, json={
            "model": model, "messages": [{"role": "user", "content": "launch word?"}]})
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found", model
        assert client.get(f"/v1/models/{model}", headers=read).status_code == 404
    r = client.post("/v1/chat/completions", headers=read, json={
        "model": "ragfirst/alpha", "messages": [{"role": "user", "content": "vault code?"}]})
    assert r.status_code == 200 and r.json()["model"] == "ragfirst/alpha"
    assert BRAVO not in r.text


def test_readyz_names_no_collection(client):
    body = client.get("/readyz").json()
    assert body["ready"] and body["collections"] == 2 and body["ready_collections"] == 2
    assert "alpha" not in str(body) and "bravo" not in str(body)
