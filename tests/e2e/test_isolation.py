"""Isolation over HTTP: the real service (`python -m app` under uvicorn) with two collections,
alpha and bravo, each holding secrets of its own, and keys for each. A key for alpha never
sees bravo's text, paths or counts, on any path: /ask (every mode, streamed or not, filters
that try to climb out or match everything), /v1 (model names that spell bravo in other ways),
/collections, /documents, /ingest, /metrics, the page, and the upload, delete and download
routes; a refusal about bravo is byte for byte the refusal about a name defined nowhere.
Keys that are wrong, empty, nearly right or in the wrong place of a Basic header are 401
everywhere; a changed keys file holds from the next request. Every case runs against both
stores: SQLite (each collection its own index folder) and PostgreSQL (its own schema).

The service runs the real default embedder (all-MiniLM-L6-v2), not the hashing one: it is
loaded once per store (one service serves the whole module, ~15 s to start), after which a
question costs tens of milliseconds, so every /ask here goes through real dense and hybrid
retrieval for the price of two model loads. Abstention is off (RAG_ABSTAIN_THRESHOLD=-1,
RAG_MIN_TERM_COVERAGE=0): every answer cites whatever retrieval found, so a bravo chunk
reaching alpha's candidates would show in the response instead of hiding behind "the
documents do not contain an answer". The positive controls (bravo's key finds bravo's secret
with the same question; alpha's key finds alpha's fact) show the attacks could succeed if
isolation failed. After every test bravo's files are checked on disk and bravo's listing
against the one taken before the attacks."""
from __future__ import annotations

import base64
import hashlib

import httpx
import pytest

from tests.isolation_helpers import (ALPHA, ALPHA_DOCS, ALPHA_KEYS, ALPHA_QUESTION, BRAVO,
                                     BRAVO_DOCS, BRAVO_QUESTION, BRAVO_SECRETS, NOWHERE, ROLES,
                                     assert_same_refusal, call, cited_paths, file_routes_exist,
                                     make_world, raw, write_keys)
from tests.postgres import drop_schema, new_schema, pg_env
from tests.service_process import running_service

pytestmark = pytest.mark.slow

ANSWER_EVERYTHING = {"RAG_ABSTAIN_THRESHOLD": "-1", "RAG_MIN_TERM_COVERAGE": "0"}
MODES = ["hybrid", "dense", "lexical"]
FILE_ROUTES = file_routes_exist()
needs_file_routes = pytest.mark.skipif(not FILE_ROUTES, reason="the upload, delete and "
                                       "download routes are not on this branch yet")


def documents(world, name: str, key: str = "api") -> dict:
    r = call(world, "GET", "/documents", key, params={"collection": name})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(request, tmp_path_factory):
    """The service on one store, both collections ingested (by POST /ingest, as RAG_API_KEY)."""
    root = tmp_path_factory.mktemp(f"isolation-{request.param}")
    w, env = make_world(root)
    schema = None
    if request.param == "postgres":
        schema = new_schema()
        env.update(pg_env(request.getfixturevalue("pg_url"), schema))
    with running_service(root / "index", w.alpha_dir, **env, **ANSWER_EVERYTHING) as url:
        w.url = url
        for name in (BRAVO, ALPHA):
            r = call(w, "POST", "/ingest", "api", json={"collection": name}, timeout=300)
            assert r.status_code == 200 and not r.json()["files"]["failed"], r.text
        w.bravo_listing = documents(w, BRAVO)["documents"]
        assert {d["path"] for d in w.bravo_listing} == set(BRAVO_DOCS)
        yield w
    if schema:
        for name in (ALPHA, BRAVO):
            drop_schema(env["RAG_DATABASE_URL"], f"{schema}_{name.replace('-', '_')}")


@pytest.fixture(autouse=True)
def bravo_untouched(world):
    """After each test: bravo's files are on disk as written, nothing was added to its folder,
    and its index lists what it listed before the attacks."""
    yield
    on_disk = {p.relative_to(world.bravo_dir).as_posix(): p.read_bytes()
               for p in world.bravo_dir.rglob("*") if p.is_file()}
    assert on_disk == world.bravo_files
    assert documents(world, BRAVO)["documents"] == world.bravo_listing


# -- the controls: what the attacks below would find if isolation failed -------------------

@pytest.mark.parametrize("mode", MODES)
def test_controls_each_key_finds_its_own_collections_secret(world, mode):
    bravo = call(world, "POST", "/ask", "bravo-read", json={
        "question": BRAVO_QUESTION, "collection": BRAVO, "mode": mode})
    assert bravo.status_code == 200 and "PERIWINKLE" in bravo.json()["answer"], bravo.text
    alpha = call(world, "POST", "/ask", "alpha-read", json={
        "question": ALPHA_QUESTION, "collection": ALPHA, "mode": mode})
    assert alpha.status_code == 200 and "4417" in alpha.json()["answer"], alpha.text
    assert cited_paths(alpha) <= set(ALPHA_DOCS)


def test_links_out_of_alphas_folder_are_not_followed(world):
    listed = documents(world, ALPHA, "alpha-read")
    assert {d["path"] for d in listed["documents"]} == set(ALPHA_DOCS)
    assert listed["refused"] == []


# -- /ask ------------------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("key", ALPHA_KEYS)
def test_ask_of_bravo_is_the_refusal_of_a_name_defined_nowhere(world, key, mode, stream):
    body = {"question": BRAVO_QUESTION, "mode": mode, "stream": stream}
    got = call(world, "POST", "/ask", key, json={**body, "collection": BRAVO})
    control = call(world, "POST", "/ask", key, json={**body, "collection": NOWHERE})
    assert got.status_code == 404
    assert_same_refusal(got, control, BRAVO, NOWHERE)


@pytest.mark.parametrize("collection", ["BRAVO-TEAM", "../bravo-team", "bravo-team/",
                                        "alpha-team/../bravo-team", "*", ""])
def test_ask_with_bravo_spelt_otherwise_is_refused(world, collection):
    r = call(world, "POST", "/ask", "alpha-read", json={"question": BRAVO_QUESTION,
                                                        "collection": collection})
    assert r.status_code in (404, 422), r.text


def test_ask_without_a_collection_is_not_bravo(world):
    """No collection named: `default`, which the file does not define (bravo is the primary
    collection, the one a fallback would reach)."""
    r = call(world, "POST", "/ask", "alpha-read", json={"question": BRAVO_QUESTION})
    assert r.status_code == 404, r.text


def filter_cases(world) -> list[dict]:
    bravo_abs = str(world.bravo_dir)
    paths = ["../", "../bravo-corpus/", "../bravo-corpus/launch-orders.md", "..\\bravo-corpus\\",
             "*", "**/*", "**", "*/*", "?*", "[a-z]*", "bravo-link/", "bravo-link/*",
             "orders-link.md", "deep/", "launch-orders.md", "signals.html", bravo_abs,
             bravo_abs + "/", bravo_abs + "/*", "/", "C:\\", "%2e%2e/", "./../"]
    return [{"path": p} for p in paths] + [{"type": t} for t in (
        "html", "md", "txt", "pdf", ["html", "md", "txt", "pdf"])] + [
        {"path": "**/*", "type": "html"}, {"path": "deep/*", "type": "txt"}]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_ask_filters_in_alpha_never_reach_bravo(world, mode, stream):
    """Filters that climb out, match everything, or name bravo's folder, paths and types: the
    answer is refused (422) or cites alpha's files only, and never holds bravo's words."""
    seen = set()
    for filters in filter_cases(world):
        r = call(world, "POST", "/ask", "alpha-read", json={
            "question": BRAVO_QUESTION, "collection": ALPHA, "mode": mode, "top_k": 10,
            "stream": stream, "filters": filters})
        assert r.status_code in (200, 422), (filters, r.text)
        if r.status_code == 200:
            seen |= cited_paths(r)
            assert cited_paths(r) <= set(ALPHA_DOCS), filters
    assert seen == set(ALPHA_DOCS)  # the filters that match everything matched alpha's files


# -- /v1 -------------------------------------------------------------------------------------

V1_MODELS = [f"ragfirst/{BRAVO}", "ragfirst", "ragfirst/", "ragfirst/BRAVO-TEAM",
             f"ragfirst/../{BRAVO}", f"ragfirst/{ALPHA}/../{BRAVO}", f"ragfirst/{BRAVO}/",
             f"ragfirst//{BRAVO}", BRAVO, "ragfirst/*", "gpt-4o-mini", f"RAGFIRST/{BRAVO}",
             f"ragfirst/{BRAVO} ", f"ragfirst%2F{BRAVO}"]


def chat(world, key: str, model: str, stream: bool, question: str = BRAVO_QUESTION):
    return call(world, "POST", "/v1/chat/completions", key, json={
        "model": model, "stream": stream, "messages": [{"role": "user", "content": question}]})


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("key", ALPHA_KEYS)
def test_chat_with_bravos_model_is_an_unknown_model(world, key, stream):
    got = chat(world, key, f"ragfirst/{BRAVO}", stream)
    control = chat(world, key, f"ragfirst/{NOWHERE}", stream)
    assert got.status_code == 404 and got.json()["error"]["code"] == "model_not_found"
    assert_same_refusal(got, control, BRAVO, NOWHERE)
    for model in V1_MODELS:
        r = chat(world, key, model, stream)
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found", model


@pytest.mark.parametrize("stream", [False, True])
def test_chat_with_alphas_model_answers_from_alpha_only(world, stream):
    r = chat(world, "alpha-read", f"ragfirst/{ALPHA}", stream)
    assert r.status_code == 200 and cited_paths(r) and cited_paths(r) <= set(ALPHA_DOCS)
    control = chat(world, "bravo-read", f"ragfirst/{BRAVO}", stream)
    assert control.status_code == 200 and "PERIWINKLE" in control.text


@pytest.mark.parametrize("key", ALPHA_KEYS)
def test_models_lists_and_shows_alpha_only(world, key):
    listed = call(world, "GET", "/v1/models", key)
    assert [m["id"] for m in listed.json()["data"]] == [f"ragfirst/{ALPHA}"]
    assert call(world, "GET", f"/v1/models/ragfirst/{ALPHA}", key).status_code == 200
    got = call(world, "GET", f"/v1/models/ragfirst/{BRAVO}", key)
    control = call(world, "GET", f"/v1/models/ragfirst/{NOWHERE}", key)
    assert got.status_code == 404
    assert_same_refusal(got, control, BRAVO, NOWHERE)
    for target in (f"/v1/models/ragfirst%2F{BRAVO}", f"/v1/models/ragfirst/..%2F{BRAVO}",
                   f"/v1/models/ragfirst/{ALPHA}/../{BRAVO}", f"/v1/models/ragfirst/%62ravo-team",
                   f"/v1/models/ragfirst/../ragfirst/{BRAVO}", f"/v1/models/{BRAVO}"):
        status, _ = raw(world, "GET", target, key)
        assert status == 404, target
    admin = call(world, "GET", "/v1/models", "admin").json()
    assert {m["id"] for m in admin["data"]} == {f"ragfirst/{ALPHA}", f"ragfirst/{BRAVO}"}


# -- /collections, /documents, /ingest, /metrics ----------------------------------------------

@pytest.mark.parametrize("key", ALPHA_KEYS)
def test_collections_lists_alpha_only_with_the_keys_role(world, key):
    listed = call(world, "GET", "/collections", key).json()["collections"]
    assert [(c["name"], c["access"], c["documents"]) for c in listed] == [
        (ALPHA, ROLES[key][1], len(ALPHA_DOCS))]
    admin = call(world, "GET", "/collections", "admin").json()["collections"]
    assert [c["name"] for c in admin] == [BRAVO, ALPHA]


@pytest.mark.parametrize("key", ALPHA_KEYS)
def test_documents_and_ingest_of_bravo_are_refusals_of_a_name_defined_nowhere(world, key):
    for method, path, kwargs in [
            ("GET", "/documents", lambda n: {"params": {"collection": n}}),
            ("POST", "/ingest", lambda n: {"json": {"collection": n}}),
            ("POST", "/ingest", lambda n: {"json": {"collection": n, "rebuild": True}})]:
        got = call(world, method, path, key, **kwargs(BRAVO))
        control = call(world, method, path, key, **kwargs(NOWHERE))
        assert got.status_code == 404, (path, got.text)
        assert_same_refusal(got, control, BRAVO, NOWHERE)
    r = call(world, "GET", "/documents", key, params={"collection": "BRAVO-TEAM"})
    assert r.status_code == 422


def test_a_read_key_cannot_ingest_its_own_collection_and_a_write_key_can(world):
    r = call(world, "POST", "/ingest", "alpha-read", json={"collection": ALPHA})
    assert r.status_code == 403, r.text
    r = call(world, "POST", "/ingest", "alpha-write", json={"collection": ALPHA})
    assert r.status_code == 200 and sorted(r.json()["files"]["unchanged"]) == sorted(ALPHA_DOCS)


def test_metrics_needs_the_admin_role(world):
    for key in (*ALPHA_KEYS, "bravo-read"):
        r = call(world, "GET", "/metrics", key)
        assert r.status_code == 403, (key, r.text)
    for key in ("admin", "api"):
        assert call(world, "GET", "/metrics", key).status_code == 200


# -- the page ------------------------------------------------------------------------------

def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize("path", ["/", "/static/app.js"])
def test_the_page_needs_a_key(world, path):
    assert call(world, "GET", path).status_code == 401
    assert call(world, "GET", path, "alpha-read").status_code == 200
    as_browser = call(world, "GET", path, headers=basic("anyone", world.keys["alpha-read"]))
    assert as_browser.status_code == 200


# -- keys ----------------------------------------------------------------------------------

def keyed_paths():
    """Every path that needs a key: (method, path, JSON body)."""
    ask = {"question": ALPHA_QUESTION, "collection": ALPHA}
    chat_body = {"model": f"ragfirst/{ALPHA}", "messages": [{"role": "user",
                                                              "content": ALPHA_QUESTION}]}
    paths = [("POST", "/ask", ask), ("POST", "/ask", {**ask, "stream": True}),
             ("POST", "/v1/chat/completions", chat_body),
             ("POST", "/v1/chat/completions", {**chat_body, "stream": True}),
             ("GET", "/v1/models", None), ("GET", f"/v1/models/ragfirst/{ALPHA}", None),
             ("GET", "/collections", None), ("GET", f"/documents?collection={ALPHA}", None),
             ("POST", "/ingest", {"collection": ALPHA}), ("GET", "/metrics", None),
             ("GET", "/", None), ("GET", "/static/app.js", None), ("GET", "/docs", None),
             ("GET", "/openapi.json", None)]
    if FILE_ROUTES:
        paths += [("GET", f"/collections/{ALPHA}/documents/vault.md", None),
                  ("DELETE", f"/collections/{ALPHA}/documents/vault.md", None)]
    return paths


def bad_credentials(keys: dict[str, str]) -> dict[str, dict]:
    a = keys["alpha-write"]
    return {"none": {}, "wrong": {"Authorization": "Bearer not-a-key"},
            "empty bearer": {"Authorization": "Bearer "}, "empty x-api-key": {"X-API-Key": ""},
            "prefix": {"Authorization": f"Bearer {a[:-1]}"},
            "longer": {"Authorization": f"Bearer {a}0"}, "upper": {"X-API-Key": a.upper()},
            "basic user": basic(a, ""), "basic user only": {
                "Authorization": "Basic " + base64.b64encode(a.encode()).decode()},
            "basic user, wrong password": basic(a, "x"),
            "the hash": {"Authorization": f"Bearer {hashlib.sha256(a.encode()).hexdigest()}"},
            "bare key": {"Authorization": a}}


def test_a_bad_key_is_401_on_every_path(world):
    wrong = []
    for label, headers in bad_credentials(world.keys).items():
        for method, path, body in keyed_paths():
            status, _ = raw(world, method, path, headers=headers, body=body)
            if status != 401:
                wrong.append((label, method, path, status))
    assert not wrong
    assert world.alpha_dir.joinpath("vault.md").exists()  # the DELETE above was refused


def all_keys(world, **changes) -> dict:
    entries = {name: (world.keys[name], *ROLES[name]) for name in ROLES}
    entries.update(changes)
    return {k: v for k, v in entries.items() if v is not None}


@pytest.mark.parametrize("in_place", [False, True], ids=["renamed", "in-place"])
def test_a_changed_keys_file_holds_from_the_next_request(world, in_place):
    new_key = "iso-new-reader-" + "5" * 24
    ok = lambda key: httpx.get(f"{world.url}/collections", timeout=30,  # noqa: E731
                               headers={"Authorization": f"Bearer {key}"}).status_code
    assert ok(new_key) == 401 and ok(world.keys["alpha-write"]) == 200
    try:
        write_keys(world.keys_file, all_keys(world, **{"new-reader": (new_key, [ALPHA], "read")}),
                   in_place)
        assert ok(new_key) == 200
        listed = call(world, "GET", "/collections", headers={"X-API-Key": new_key})
        assert [c["name"] for c in listed.json()["collections"]] == [ALPHA]
        write_keys(world.keys_file, all_keys(world, **{"alpha-write": None}), in_place)
        assert ok(world.keys["alpha-write"]) == 401 and ok(new_key) == 401
        assert ok(world.keys["alpha-read"]) == 200 and ok(world.keys["api"]) == 200
    finally:
        write_keys(world.keys_file, all_keys(world))
    assert ok(world.keys["alpha-write"]) == 200


# -- the probes ------------------------------------------------------------------------------

def test_probes_name_no_collection_and_count_no_single_one(world):
    for key in (None, "alpha-read"):
        assert call(world, "GET", "/healthz", key).json() == {"status": "ok"}
        r = call(world, "GET", "/readyz", key)
        body = r.json()
        assert r.status_code == 200 and set(body) == {"ready", "collections",
                                                      "ready_collections", "ingest"}, body
        assert body["collections"] == body["ready_collections"] == 2 and body["ready"] is True
        assert set(body["ingest"]) == {"watching", "running", "runs", "failures", "retrying"}
        assert ALPHA not in r.text and "alpha" not in r.text.lower()
        assert "documents" not in r.text and "chunks" not in r.text
