"""A collection's files over HTTP against the real service (`python -m app` under uvicorn):
uploads that are indexed and cited, refused with their reasons, atomic when the client goes away
and single-winner when two race; deletes that stop the citing; downloads that hand back the
original bytes and never let a name, an encoding or a link reach outside the folder.

One collection (`default`) and no keys: the isolation between collections and keys is
tests/e2e/test_isolation.py's."""
from __future__ import annotations

import http.client
import secrets
import shutil
import socket
import threading
import time
import unicodedata
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest

from tests.helpers import SMALL_CORPUS, STARTER_CORPUS, write
from tests.service_process import running_service, service_log

pytestmark = pytest.mark.slow

DOCS = "/collections/default/documents"
MAX_FILE, MAX_UPLOAD, MAX_REQUEST = 200_000, 1_000_000, 65_536
PDF = STARTER_CORPUS / "kestrelbook" / "administrator-guide.pdf"


class Service(NamedTuple):
    url: str
    corpus: Path
    index: Path


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    base = tmp_path_factory.mktemp("collection-documents")
    corpus, outside = base / "corpus", base / "outside"
    for name, text in SMALL_CORPUS.items():
        write(corpus, name, text)
    write(outside, "secret.md", "The vault code is 9041.\n")
    (corpus / "out").symlink_to(outside)              # a folder link out
    (corpus / "leak.md").symlink_to(outside / "secret.md")  # a file link out
    write(corpus, ".hidden.md", "hidden, never indexed\n")
    write(corpus, "manuals/admin.pdf", PDF.read_bytes())
    with running_service(base / "index", corpus, RAG_EMBEDDER="hashing",
                         RAG_MAX_FILE_BYTES=str(MAX_FILE), RAG_MAX_UPLOAD_BYTES=str(MAX_UPLOAD),
                         RAG_MAX_REQUEST_BYTES=str(MAX_REQUEST)) as url:
        assert httpx.post(f"{url}/ingest", timeout=120).status_code == 200
        yield Service(url, corpus, base / "index")


def multipart(files: list[tuple[str, bytes]], **fields: str) -> tuple[bytes, dict]:
    """A multipart body with exactly these file names (no client escaping), and its header."""
    boundary = "b-" + secrets.token_hex(16)
    body = b""
    for name, value in fields.items():
        body += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                 f"{value}\r\n").encode()
    for filename, data in files:
        body += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                 f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                 ).encode() + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


def upload(svc: Service, files: list[tuple[str, bytes]], **fields: str) -> httpx.Response:
    body, headers = multipart(files, **fields)
    return httpx.post(svc.url + DOCS, content=body, headers=headers, timeout=120)


def by_path(r: httpx.Response) -> dict[str, dict]:
    return {f["path"]: f for f in r.json()["files"]}


def cited(svc: Service, question: str) -> set[str]:
    r = httpx.post(f"{svc.url}/ask", json={"question": question}, timeout=60)
    assert r.status_code == 200, r.text
    return {c["path"] for c in r.json()["citations"]}


def on_disk(folder: Path) -> list[str]:
    """Every name under the folder, hidden and temporary ones included (links not followed)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def generation(svc: Service) -> int:
    return httpx.get(f"{svc.url}/documents", timeout=30).json()["index_generation"]


QUILL = b"# Quillfeather\n\nThe Quillfeather subscription costs 417 euros per seat each year.\n"
QUILL_Q = "How much does the Quillfeather subscription cost per seat?"


def test_upload_one_and_several_files_then_ask_cites_them(service):
    r = httpx.post(service.url + DOCS, files=[("file", ("notes/new.md", QUILL))], timeout=120)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["collection"] == "default" and body["generation"] == generation(service)
    assert body["files"] == [{"path": "notes/new.md", "status": "added",
                              "chunks": body["files"][0]["chunks"]}]
    assert body["files"][0]["chunks"] >= 1
    assert body["ingest"]["files"]["added"] == ["notes/new.md"]
    assert "notes/new.md" in cited(service, QUILL_Q)
    assert (service.corpus / "notes" / "new.md").read_bytes() == QUILL

    long_text = ("Heronbridge keeps every ledger for eleven years. " * 2500).encode()  # > 64 KB
    r = upload(service, [("batch/a.md", b"# A\n\nThe Marlowe gateway listens on port 7311.\n"),
                         ("batch/b.txt", long_text), ("batch/deep/c.html",
                          b"<h1>C</h1><p>The Ostrava office opens at 07:45.</p>")])
    assert r.status_code == 201, r.text  # over RAG_MAX_REQUEST_BYTES: uploads have their own
    files = by_path(r)
    assert {p: f["status"] for p, f in files.items()} == {
        "batch/a.md": "added", "batch/b.txt": "added", "batch/deep/c.html": "added"}
    assert files["batch/b.txt"]["chunks"] > 1
    assert "batch/a.md" in cited(service, "Which port does the Marlowe gateway listen on?")
    assert "batch/deep/c.html" in cited(service, "When does the Ostrava office open?")
    assert not [n for n in on_disk(service.corpus) if ".upload-" in n]


def test_an_existing_name_is_409_and_overwrite_replaces_it(service):
    first = b"# Tern\n\nThe Tern courier leaves at 06:10 every morning.\n"
    assert upload(service, [("tern.md", first)]).status_code == 201
    r = upload(service, [("tern.md", b"# Tern\n\nThe Tern courier now leaves at 09:20.\n")])
    assert r.status_code == 409
    assert r.json()["files"] == [{"path": "tern.md", "status": "exists",
                                  "reason": "tern.md exists: send overwrite=true to replace it"}]
    assert r.json()["ingest"] is None
    assert (service.corpus / "tern.md").read_bytes() == first

    second = b"# Tern\n\nThe Tern courier now leaves at 09:20 every morning.\n"
    r = upload(service, [("tern.md", second)], overwrite="true")
    assert r.status_code == 201 and by_path(r)["tern.md"]["status"] == "replaced"
    assert r.json()["ingest"]["files"]["changed"] == ["tern.md"]
    answer = httpx.post(f"{service.url}/ask", timeout=60,
                        json={"question": "When does the Tern courier leave?"}).json()
    assert "09:20" in answer["answer"] and "06:10" not in answer["answer"]

    r = upload(service, [("tern.md", second)], overwrite="true")  # the same bytes again
    assert r.status_code == 200 and by_path(r)["tern.md"]["status"] == "unchanged"
    r = upload(service, [("tern.md", second), ("tern-new.md", first)], overwrite="false")
    assert r.status_code == 201
    assert [f["status"] for f in r.json()["files"]] == ["exists", "added"]


def test_a_file_the_ingest_refuses_is_reported_with_its_reason(service):
    r = upload(service, [("refused/fake.pdf", b"this is not a pdf"), ("refused/empty.md", b"")])
    assert r.status_code == 422, r.text
    files = by_path(r)
    assert files["refused/fake.pdf"]["status"] == "refused"
    assert "pdf" in files["refused/fake.pdf"]["reason"].lower()
    assert files["refused/empty.md"] == {"path": "refused/empty.md", "status": "refused",
                                         "reason": "empty file"}
    assert set(files) <= {f["path"] for f in r.json()["ingest"]["files"]["failed"]}
    listed = httpx.get(f"{service.url}/documents", timeout=30).json()
    assert {"refused/fake.pdf", "refused/empty.md"} <= {f["path"] for f in listed["refused"]}

    r = upload(service, [("refused/good.md", b"# Good\n\nThe Wrenfield pass opens in May.\n"),
                         ("refused/bad.pdf", b"%PDF-1.4 truncated")])
    assert r.status_code == 201  # something was indexed; the refused one says why
    assert [f["status"] for f in r.json()["files"]] == ["added", "refused"]


def test_an_unsupported_type_is_refused_before_it_touches_the_disk(service):
    before = on_disk(service.corpus)
    r = upload(service, [("slides.key", b"PK\x03\x04 not for us")])
    assert r.status_code == 422
    reason = by_path(r)["slides.key"]["reason"]
    assert reason.startswith("unsupported file type '.key' (supported: csv, docx, epub, htm,")
    assert r.json()["ingest"] is None and on_disk(service.corpus) == before


@pytest.mark.parametrize("name, reason", [
    ("../x.md", "'..'"), ("notes/../../x.md", "'..'"), ("/etc/x.md", "absolute"),
    ("C:x.md", "absolute"), ("a\\b.md", "backslash"), ("..%2Fx.md", "percent"),
    ("%252e%252e/x.md", "percent"), (unicodedata.normalize("NFD", "café.md"), "NFC"),
    (".hidden-upload.md", "hidden"), ("notes/.git/x.md", "hidden"), ("a//b.md", "empty"),
    ("x.md~", "temporary"), ("out/escape.md", "symbolic link"), ("leak.md", "symbolic link"),
    ("", "empty"),
])
def test_names_that_escape_or_mean_another_file_are_refused(service, name, reason):
    before, outside = on_disk(service.corpus), on_disk(service.corpus.parent / "outside")
    r = upload(service, [(name, b"# Escape\n\nThis must not be written anywhere.\n")])
    assert r.status_code == 422, r.text
    [result] = r.json()["files"]
    assert result["status"] == "refused" and reason in result["reason"], result
    assert on_disk(service.corpus) == before
    assert on_disk(service.corpus.parent / "outside") == outside == ["secret.md"]
    assert not (service.corpus.parent / "x.md").exists()


def test_a_symbolic_link_cannot_be_overwritten_either(service):
    r = upload(service, [("leak.md", b"# Overwritten\n")], overwrite="true")
    assert r.status_code == 422 and "symbolic link" in by_path(r)["leak.md"]["reason"]
    assert (service.corpus.parent / "outside" / "secret.md").read_text().startswith("The vault")


def test_a_file_over_the_file_limit_is_refused_and_not_written(service):
    r = upload(service, [("big.txt", b"x" * (MAX_FILE + 1))])
    assert r.status_code == 422
    assert by_path(r)["big.txt"]["reason"] == (
        f"the file is over the {MAX_FILE:,}-byte limit (RAG_MAX_FILE_BYTES)")
    assert not (service.corpus / "big.txt").exists()
    assert upload(service, [("big-ok.txt", b"y " * (MAX_FILE // 2))]).status_code == 201


def test_an_upload_over_the_upload_limit_is_413_and_writes_nothing(service):
    files = [(f"huge/{i}.txt", b"z" * 190_000) for i in range(6)]  # 1.14 MB against 1 MB
    body, headers = multipart(files)
    r = httpx.post(service.url + DOCS, content=body, headers=headers, timeout=60)
    assert r.status_code == 413 and "RAG_MAX_UPLOAD_BYTES" in r.json()["detail"]

    def chunked():  # no Content-Length: refused once past the limit
        for i in range(0, len(body), 65_536):
            yield body[i:i + 65_536]
    try:
        r = httpx.post(service.url + DOCS, content=chunked(), headers=headers, timeout=60)
        assert r.status_code == 413
    except httpx.HTTPError:
        pass  # closed while we were still sending: refused all the same
    assert not (service.corpus / "huge").exists()


@pytest.mark.parametrize("body, content_type, detail", [
    (b'{"file": "x.md"}', "application/json", "multipart/form-data"),
    (b"file=x.md", "application/x-www-form-urlencoded", "must be a file"),
])
def test_a_request_that_is_not_an_upload_is_400(service, body, content_type, detail):
    r = httpx.post(service.url + DOCS, content=body, headers={"content-type": content_type},
                   timeout=30)
    assert r.status_code == 400 and detail in r.json()["detail"]


def test_bad_form_fields_are_400(service):
    body, headers = multipart([], overwrite="true")
    r = httpx.post(service.url + DOCS, content=body, headers=headers, timeout=30)
    assert r.status_code == 400 and "`file` part" in r.json()["detail"]
    r = upload(service, [("flag.md", b"# Flag\n")], overwrite="yes")
    assert r.status_code == 400 and "overwrite must be true or false" in r.json()["detail"]
    assert not (service.corpus / "flag.md").exists()


def wait_for(predicate, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not seen within {timeout} s: {what}"
        time.sleep(0.05)


def test_a_client_gone_mid_upload_leaves_nothing_written_or_indexed(service):
    before, gen = on_disk(service.corpus), generation(service)
    body, headers = multipart([("gone/half.md", b"# Half\n\n" + b"half a document. " * 20_000)])
    host, port = service.url.removeprefix("http://").split(":")
    log = service_log(service.index, service.url)
    seen = log.read_text().count("client gone mid-body")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(f"POST {DOCS} HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: {headers['content-type']}"
                     f"\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body[:len(body) // 2])
    wait_for(lambda: log.read_text().count("client gone mid-body") > seen,
             "the service noticing the client went away")
    assert on_disk(service.corpus) == before  # no file, no temporary
    assert generation(service) == gen


def test_two_uploads_of_one_new_name_at_once_one_wins(service):
    start, statuses = threading.Barrier(2), []

    def post(i: int) -> None:
        body, headers = multipart([("race/same.md", b"# Race\n\nRunner %d won.\n" % i)])
        start.wait()
        statuses.append(httpx.post(service.url + DOCS, content=body, headers=headers,
                                   timeout=120).status_code)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [201, 409]
    assert on_disk(service.corpus / "race") == ["same.md"]


def test_delete_then_it_is_no_longer_cited_and_a_second_delete_is_404(service):
    text = b"# Osprey\n\nThe Osprey archive is kept in vault 12 under Lindqvist's name.\n"
    assert upload(service, [("del/osprey.md", text)]).status_code == 201
    question = "Where is the Osprey archive kept?"
    assert "del/osprey.md" in cited(service, question)
    r = httpx.delete(f"{service.url}{DOCS}/del/osprey.md", timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body == {"collection": "default", "path": "del/osprey.md", "deleted": True,
                    "generation": generation(service), "chunks_removed": 1}
    assert "del/osprey.md" not in cited(service, question)
    assert not (service.corpus / "del" / "osprey.md").exists()
    r = httpx.delete(f"{service.url}{DOCS}/del/osprey.md", timeout=60)
    assert r.status_code == 404 and r.json() == {"detail": "no such document in this collection"}


def raw(svc: Service, method: str, path: str, headers: dict | None = None):
    """A request whose path is sent byte for byte (httpx would normalise `..`)."""
    host, port = svc.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


SAFE = {"X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'"}


def test_download_gives_the_original_bytes_with_safe_headers(service):
    for rel, content_type in (("kb/refunds.md", "text/plain; charset=utf-8"),
                              ("kb/uptime.txt", "text/plain; charset=utf-8"),
                              ("manuals/admin.pdf", "application/pdf")):
        r = httpx.get(f"{service.url}{DOCS}/{rel}", timeout=30)
        assert r.status_code == 200 and r.content == (service.corpus / rel).read_bytes()
        assert r.headers["content-type"] == content_type
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        if content_type.startswith("text/"):  # a PDF viewer refuses a sandboxed document
            assert {k: r.headers[k] for k in SAFE} == SAFE
        else:
            assert "Content-Security-Policy" not in r.headers
        name = rel.rsplit("/", 1)[1]
        assert r.headers["content-disposition"] == f'inline; filename="{name}"'

    r = httpx.get(f"{service.url}{DOCS}/manuals/admin.pdf", headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and r.content == PDF.read_bytes()[:100]  # PDF viewers do this


def test_html_is_never_served_as_html(service):
    page = b"<html><body><script>alert(document.cookie)</script><p>Hi</p></body></html>"
    assert upload(service, [("web/page.html", page)]).status_code == 201
    for rel in ("web/page.html", "guides/cafe.md"):
        r = httpx.get(f"{service.url}{DOCS}/{rel}", timeout=30)
        assert r.status_code == 200 and "html" not in r.headers["content-type"]
        assert {k: r.headers[k] for k in SAFE} == SAFE
    assert httpx.get(f"{service.url}{DOCS}/web/page.html").content == page


def test_a_non_ascii_name_is_downloaded_by_its_name(service):
    assert upload(service, [("dl/café notes.md", b"# Caf\xc3\xa9\n\nOpen late.\n")]).status_code == 201
    r = httpx.get(f"{service.url}{DOCS}/dl/café notes.md", timeout=30)
    assert r.status_code == 200 and r.content == b"# Caf\xc3\xa9\n\nOpen late.\n"
    assert r.headers["content-disposition"] == (
        "inline; filename=\"caf_ notes.md\"; filename*=UTF-8''caf%C3%A9%20notes.md")


@pytest.mark.parametrize("path", [
    "..%2Foutside%2Fsecret.md", "%2E%2E/outside/secret.md", "../outside/secret.md",
    "%252E%252E/outside/secret.md", "%252e%252e%252foutside%252fsecret.md",
    "out/secret.md", "leak.md", "/etc/hosts.txt", ".hidden.md", "kb", "kb/", "nothing.md",
    "kb/refunds.md%00.txt", "kb%5Crefunds.md", "caf%C3%A9.md",
])
def test_names_that_escape_links_and_absent_files_are_all_the_same_404(service, path):
    for method in ("GET", "DELETE"):
        status, _, body = raw(service, method, f"{DOCS}/{path}")
        assert status == 404 and body == b'{"detail":"no such document in this collection"}'
    assert (service.corpus.parent / "outside" / "secret.md").exists()
    assert (service.corpus / ".hidden.md").exists() and (service.corpus / "leak.md").is_symlink()


def test_the_folder_holds_no_temporaries_after_all_of_it(service):
    assert not [n for n in on_disk(service.corpus) if ".upload-" in n or n.endswith(".part")]
    assert httpx.get(f"{service.url}/healthz").status_code == 200


def test_a_wrong_method_names_every_method_of_the_path(service):
    status, headers, _ = raw(service, "PUT", f"{DOCS}/kb/refunds.md")
    assert status == 405 and {"DELETE", "GET"} <= set(headers["allow"].split(", "))
    status, headers, _ = raw(service, "GET", DOCS)
    assert status == 405 and headers["allow"] == "POST"


def test_a_collection_with_no_index_yet_takes_its_first_files(tmp_path):
    (tmp_path / "corpus").mkdir()
    with running_service(tmp_path / "index", tmp_path / "corpus", RAG_EMBEDDER="hashing") as url:
        svc = Service(url, tmp_path / "corpus", tmp_path / "index")
        r = upload(svc, [("../x.md", b"# X\n")])  # nothing written, nothing to ingest
        assert r.status_code == 422 and r.json()["generation"] == 0
        assert httpx.get(f"{url}/documents", timeout=30).status_code == 503  # still no index
        r = upload(svc, [("first.md", QUILL)])
        assert r.status_code == 201 and r.json()["generation"] == 1
        assert "first.md" in cited(svc, QUILL_Q)


def test_files_copied_in_by_hand_with_names_no_upload_could_have_open_and_go(service):
    """A decomposed accent (as macOS names files), a `%` sequence: refused as upload names,
    but once indexed they are cited, so the download and the delete must reach them."""
    from urllib.parse import quote

    names = ["hand/cafe\u0301.md", "hand/a%20b.md"]
    for name in names:
        (service.corpus / name).parent.mkdir(exist_ok=True)
        (service.corpus / name).write_bytes(b"# By hand\n\nCopied in by hand.\n")
    assert httpx.post(f"{service.url}/ingest", json={}, timeout=120).status_code == 200
    for name in names:
        url = f"{service.url}{DOCS}/{quote(name)}"
        r = httpx.get(url, timeout=30)
        assert r.status_code == 200 and r.content == b"# By hand\n\nCopied in by hand.\n", name
        assert httpx.delete(url, timeout=120).status_code == 200
        assert not (service.corpus / name).exists()
    assert httpx.get(f"{service.url}{DOCS}/{quote('hand/caf%C3%A9.md')}").status_code == 404


OFFICE = {"docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
          "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation"}


def test_office_files_upload_are_cited_and_download_as_attachments(service):
    """A Word file and a slide deck over the same path a browser uploads by: both indexed,
    both cited, both handed back as files to save (never shown in the page's origin); a
    macro-enabled file is refused by name and written nowhere."""
    files = [("office/handbook.docx",
              (STARTER_CORPUS / "kestrelbook" / "onboarding-handbook.docx").read_bytes()),
             ("office/roadmap.pptx",
              (STARTER_CORPUS / "kestrelbook" / "q3-roadmap-review.pptx").read_bytes()),
             ("office/tool.docm", b"PK\x03\x04 anything")]
    r = upload(service, files)
    assert r.status_code == 201, r.text
    status = {p: f["status"] for p, f in by_path(r).items()}
    assert status == {"office/handbook.docx": "added", "office/roadmap.pptx": "added",
                      "office/tool.docm": "refused"}, r.text
    assert "macro-enabled" in by_path(r)["office/tool.docm"]["reason"]
    assert not (service.corpus / "office" / "tool.docm").exists()
    assert "office/handbook.docx" in cited(
        service, "For how many working days is a new support engineer paired with a buddy?")
    assert "office/roadmap.pptx" in cited(service, "When does the Starling beta open?")
    for ext, rel in (("docx", "office/handbook.docx"), ("pptx", "office/roadmap.pptx")):
        got = httpx.get(f"{service.url}{DOCS}/{rel}", timeout=30)
        assert got.status_code == 200 and got.content == (service.corpus / rel).read_bytes()
        assert got.headers["content-type"] == OFFICE[ext]
        name = rel.rsplit("/", 1)[1]
        assert got.headers["content-disposition"] == f'attachment; filename="{name}"'
    kinds = {d["path"]: d["kind"] for d in
             httpx.get(f"{service.url}/documents", timeout=30).json()["documents"]}
    assert kinds["office/handbook.docx"] == "docx" and kinds["office/roadmap.pptx"] == "pptx"
