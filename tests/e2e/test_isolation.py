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

import httpx
import pytest

from tests.isolation_attacks import (V1_MODEL_TARGETS, V1_MODELS, bad_credentials, basic,
                                     escaping_names, escaping_targets, filter_cases,
                                     keyed_paths, multipart)
from tests.isolation_helpers import (ALPHA, ALPHA_DOCS, ALPHA_KEYS, ALPHA_QUESTION, BRAVO,
                                     BRAVO_DOCS, BRAVO_QUESTION, NOWHERE, ROLES,
                                     alpha_files, assert_same_refusal, call, cited_paths,
                                     make_world, pg_schemas, raw,
                                     write_keys)
from tests.postgres import drop_schema, new_schema, pg_env
from tests.service_process import running_service

pytestmark = pytest.mark.slow

ANSWER_EVERYTHING = {"RAG_ABSTAIN_THRESHOLD": "-1", "RAG_MIN_TERM_COVERAGE": "0"}
MAX_FILE_BYTES = 100_000  # RAG_MAX_FILE_BYTES: a "huge" upload is cheap to send
MODES = ["hybrid", "dense", "lexical"]


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
    with running_service(root / "index", w.alpha_dir, **env, **ANSWER_EVERYTHING,
                         RAG_MAX_FILE_BYTES=str(MAX_FILE_BYTES)) as url:
        w.url = url
        for name in (BRAVO, ALPHA):
            r = call(w, "POST", "/ingest", "api", json={"collection": name}, timeout=300)
            assert r.status_code == 200 and not r.json()["files"]["failed"], r.text
        w.bravo_listing = documents(w, BRAVO)["documents"]
        assert {d["path"] for d in w.bravo_listing} == set(BRAVO_DOCS)
        if schema:  # each collection in a schema of its own
            assert pg_schemas(env["RAG_DATABASE_URL"], schema) == {
                f"{schema}_{name.replace('-', '_')}" for name in (ALPHA, BRAVO)}
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
    for target in V1_MODEL_TARGETS:
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

@pytest.mark.parametrize("path", ["/", "/static/app.js", "/docs", "/openapi.json"])
def test_the_page_needs_a_key(world, path):
    assert call(world, "GET", path).status_code == 401
    assert call(world, "GET", path, "alpha-read").status_code == 200
    as_browser = call(world, "GET", path, headers=basic("anyone", world.keys["alpha-read"]))
    assert as_browser.status_code == 200


# -- keys ----------------------------------------------------------------------------------

def test_a_bad_key_is_401_on_every_path(world):
    wrong = []
    for label, headers in bad_credentials(world.keys).items():
        for method, path, body in keyed_paths():
            status, _ = raw(world, method, path, headers=headers, body=body)
            if status != 401:
                wrong.append((label, method, path, status))
    assert not wrong
    assert world.alpha_dir.joinpath("vault.md").exists()  # the DELETE above was refused


@pytest.mark.parametrize("in_place", [False, True], ids=["renamed", "in-place"])
def test_a_changed_keys_file_holds_from_the_next_request(world, in_place):
    new_key = "iso-new-reader-" + "5" * 24
    ok = lambda key: call(world, "GET", "/collections",  # noqa: E731
                          headers={"Authorization": f"Bearer {key}"}).status_code
    assert ok(new_key) == 401 and ok(world.keys["alpha-write"]) == 200
    try:
        write_keys(world.keys_file, world.entries(**{"new-reader": (new_key, [ALPHA], "read")}),
                   in_place)
        assert ok(new_key) == 200
        listed = call(world, "GET", "/collections", headers={"X-API-Key": new_key})
        assert [c["name"] for c in listed.json()["collections"]] == [ALPHA]
        write_keys(world.keys_file, world.entries(**{"alpha-write": None}), in_place)
        assert ok(world.keys["alpha-write"]) == 401 and ok(new_key) == 401
        assert ok(world.keys["alpha-read"]) == 200
        assert call(world, "GET", "/collections", "api").status_code == 200
    finally:
        write_keys(world.keys_file, world.entries())
    assert ok(world.keys["alpha-write"]) == 200


def test_an_entry_for_the_empty_key_makes_no_empty_credential_a_key(world):
    """`printf %s "$KEY" | sha256sum` with KEY unset hashes the empty string: a keys file
    holding that hash must not let in an empty Bearer or X-API-Key, nor a Basic header with
    no password (a key sent as the user name)."""
    try:
        write_keys(world.keys_file, world.entries(unset=("", [ALPHA], "read")))
        for headers in ({"X-API-Key": ""}, {"Authorization": "Bearer "}, basic("anyone", ""),
                        basic(world.keys["alpha-read"], "")):
            assert raw(world, "GET", "/collections", headers=headers)[0] == 401, headers
        assert call(world, "GET", "/collections", "alpha-read").status_code == 200
    finally:
        write_keys(world.keys_file, world.entries())


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


# -- uploads, deletes, downloads -------------------------------------------------------------

PLANTED = b"# Planted\n\nThe planted note says the alpha kettle is blue.\n"


def upload(world, key: str, name: str, files: list[tuple[str, bytes]],
           overwrite: bool | None = None) -> httpx.Response:
    body, content_type = multipart(files, overwrite)
    return call(world, "POST", f"/collections/{name}/documents", key, content=body,
                headers={"Content-Type": content_type})


@pytest.mark.parametrize("key", ALPHA_KEYS)
def test_upload_into_bravo_is_the_refusal_of_a_name_defined_nowhere(world, key):
    for files, overwrite in [([("planted.md", PLANTED)], None),
                             ([("launch-orders.md", PLANTED)], True),
                             ([("deep/night-rota.txt", PLANTED)], True),
                             ([("tool.exe", b"MZ\x90\x00")], None),
                             ([("huge.md", b"x" * (2 * MAX_FILE_BYTES))], None)]:
        got = upload(world, key, BRAVO, files, overwrite)
        control = upload(world, key, NOWHERE, files, overwrite)
        assert got.status_code == 404, (files[0][0], got.text)
        assert_same_refusal(got, control, BRAVO, NOWHERE)


def test_a_read_key_cannot_upload_or_delete_in_its_own_collection(world):
    before = alpha_files(world)
    assert upload(world, "alpha-read", ALPHA, [("planted.md", PLANTED)]).status_code == 403
    r = call(world, "DELETE", f"/collections/{ALPHA}/documents/vault.md", "alpha-read")
    assert r.status_code == 403, r.text
    assert alpha_files(world) == before
    assert {d["path"] for d in documents(world, ALPHA)["documents"]} == set(ALPHA_DOCS)


def test_controls_each_key_uploads_downloads_and_deletes_in_its_own_collection(world):
    r = upload(world, "alpha-write", ALPHA, [("notes/planted.md", PLANTED)])
    assert r.status_code == 201 and r.json()["files"][0]["status"] == "added", r.text
    got = call(world, "GET", f"/collections/{ALPHA}/documents/notes/planted.md", "alpha-read")
    assert got.status_code == 200 and got.content == PLANTED
    r = call(world, "DELETE", f"/collections/{ALPHA}/documents/notes/planted.md", "alpha-write")
    assert r.status_code == 200 and r.json()["deleted"], r.text
    assert not (world.alpha_dir / "notes" / "planted.md").exists()
    own = call(world, "GET", f"/collections/{BRAVO}/documents/launch-orders.md", "bravo-read")
    assert own.status_code == 200 and own.content == world.bravo_files["launch-orders.md"]


def test_downloads_and_deletes_never_reach_bravos_files(world):
    """Every target is 404 (or 400), never bravo's bytes (raw() checks each body); the
    autouse check then finds bravo's files all there. A read key deleting under alpha's
    documents is 403 (its role), never under a name that is bravo in disguise."""
    got = []
    for target in escaping_targets(world):
        for method, key in (("GET", "alpha-read"), ("GET", "alpha-write"),
                            ("DELETE", "alpha-write"), ("DELETE", "alpha-read")):
            status, _ = raw(world, method, target, key)
            expected = {400, 404} | ({403} if (method, key) == ("DELETE", "alpha-read") and
                                     target.startswith(f"/collections/{ALPHA}/documents/")
                                     else set())
            if status not in expected:
                got.append((method, key, target, status))
    assert not got
    assert (world.alpha_dir / "orders-link.md").is_symlink()
    for method in ("GET", "DELETE"):  # bravo's file by bravo's name: alpha's key is told
        path = "documents/launch-orders.md"  # what a name defined nowhere is told
        assert_same_refusal(call(world, method, f"/collections/{BRAVO}/{path}", "alpha-write"),
                            call(world, method, f"/collections/{NOWHERE}/{path}", "alpha-write"),
                            BRAVO, NOWHERE)


def test_upload_names_that_escape_alpha_are_refused(world):
    before = alpha_files(world)
    for name in [*escaping_names(world), "tool.exe", ".hidden.md"]:
        r = upload(world, "alpha-write", ALPHA, [(name, PLANTED)], overwrite=True)
        assert r.status_code == 422, (name, r.text)
        assert [(f["status"], bool(f["reason"])) for f in r.json()["files"]] == [
            ("refused", True)], (name, r.text)
    r = upload(world, "alpha-write", ALPHA, [("huge.md", b"x" * (2 * MAX_FILE_BYTES))])
    assert r.status_code in (413, 422), r.text
    assert alpha_files(world) == before
    assert not [p for p in world.root.rglob("*planted*")] and not list(world.root.rglob("huge*"))
