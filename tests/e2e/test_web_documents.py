"""The web page's collections and documents in real headless Chromium, against the real service
(`python -m app` in a subprocess) with two collections (RAG_COLLECTIONS_FILE) and scoped keys
(RAG_KEYS_FILE): pick a collection, upload a file by the file input and by a drop, see it
listed with its passages, ask and get it cited, open the original from the citation, replace
it, delete it, and it is cited no more; a read key sees no upload or delete control."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Iterator, NamedTuple

import httpx
import pytest

from tests.helpers import ROOT, write
from tests.service_process import running_service
from tests.web_page import ask_in_page, open_page, screenshot, turn

pytestmark = pytest.mark.slow

SCREENSHOT = ROOT / "test-artifacts" / "web-documents.png"
WRITE_KEY = "web-docs-writer-5b1e"
READ_KEY = "web-docs-reader-93ad"
PDF = "kestrelbook/administrator-guide.pdf"  # of the starter corpus: eng holds a copy
PDF_QUESTION = "What is the rate limit of the API?"
HANDBOOK = ("handbook/leave.md", "# Leave\n\nEvery employee has 27 days of paid leave a year. "
                                 "Unused leave days expire at the end of March.\n")
PARKING = "parking.md"  # uploaded by the file input; only it knows the answer below
PARKING_TEXT = ("# Parking\n\nThe staff car park on Quay Street opens at 6:40 in the morning. "
                "Each employee gets one parking permit, renewed every October.\n")
PARKING_V2 = PARKING_TEXT + "\nVisitors park on level 2 with a day ticket from reception.\n"
PARKING_QUESTION = "When does the staff car park on Quay Street open?"
CANTEEN = ("notes/canteen.md", "# Canteen\n\nThe canteen serves saffron risotto on "
                               "Wednesdays, and the salad bar closes at 14:15.\n")  # dropped


class Site(NamedTuple):
    url: str
    docs: dict[str, Path]  # collection -> its corpus folder


@pytest.fixture(scope="module")
def site(tmp_path_factory, starter_index) -> Iterator[Site]:
    """The service with two collections, each ingested over HTTP once it is up: hr (a
    handbook page) and eng (a copy of the starter corpus' PDF). Keys: a writer of every
    collection and a reader of hr only."""
    base = tmp_path_factory.mktemp("web-docs")
    write(base / "hr", *HANDBOOK)
    (base / "eng" / PDF).parent.mkdir(parents=True)
    settings, _ = starter_index
    shutil.copy(settings.corpus_dir / PDF, base / "eng" / PDF)
    (base / "collections.toml").write_text(
        '[collections.hr]\ncorpus = "hr"\nindex = "index/hr"\n\n'
        '[collections.eng]\ncorpus = "eng"\nindex = "index/eng"\n', encoding="utf-8")
    (base / "keys.toml").write_text(
        _key("writer", WRITE_KEY, '["*"]', "write") + _key("reader", READ_KEY, '["hr"]', "read"),
        encoding="utf-8")
    with running_service(base / "index", base / "hr",
                         RAG_COLLECTIONS_FILE=str(base / "collections.toml"),
                         RAG_KEYS_FILE=str(base / "keys.toml")) as url:
        for name in ("hr", "eng"):
            r = httpx.post(f"{url}/ingest", json={"collection": name}, auth=("w", WRITE_KEY),
                           timeout=120)
            assert r.status_code == 200, r.text
        yield Site(url, {"hr": base / "hr", "eng": base / "eng"})


def _key(name: str, key: str, collections: str, role: str) -> str:
    digest = hashlib.sha256(key.encode()).hexdigest()
    return (f'[[keys]]\nname = "{name}"\nsha256 = "{digest}"\ncollections = {collections}\n'
            f'role = "{role}"\n\n')


def api(site: Site, method: str, path: str, key: str = WRITE_KEY, **kwargs) -> httpx.Response:
    return httpx.request(method, f"{site.url}{path}", auth=("me", key), timeout=60, **kwargs)


def listed(site: Site, collection: str, key: str = WRITE_KEY) -> dict[str, dict]:
    """GET /documents of the collection: path -> its entry."""
    r = api(site, "GET", f"/documents?collection={collection}", key)
    assert r.status_code == 200, r.text
    return {d["path"]: d for d in r.json()["documents"]}


def cited(site: Site, collection: str, question: str) -> list[dict]:
    r = api(site, "POST", "/ask", json={"question": question, "collection": collection})
    assert r.status_code == 200, r.text
    return r.json()["citations"]


def sent_asks(page) -> list[dict]:
    """The JSON bodies of the POST /ask requests the page sends from now on."""
    bodies: list[dict] = []
    page.on("request", lambda r: bodies.append(r.post_data_json)
            if r.method == "POST" and r.url.endswith("/ask") else None)
    return bodies


def drop_file(page, name: str, text: str) -> None:
    """A drop on the page of one file, as a user's drag from the desktop makes it: a drop
    event whose DataTransfer holds a File (playwright cannot drag from outside the page)."""
    page.evaluate("""([name, text]) => {
        const transfer = new DataTransfer();
        transfer.items.add(new File([text], name, {type: "text/markdown"}));
        for (const type of ["dragenter", "dragover", "drop"]) {
            document.querySelector("#thread").dispatchEvent(new DragEvent(type,
                {dataTransfer: transfer, bubbles: true, cancelable: true}));
        }
    }""", [name, text])


def row(path: str) -> str:
    return f'#document-list tr:has(th.path a:text-is("{path}"))'


def outcome(page, path: str) -> str:
    """The upload's outcome shown for `path` (its li's class: upload-added, ...)."""
    item = page.locator("#upload-results li", has=page.locator(f'code:text-is("{path}")'))
    item.wait_for()
    return item.get_attribute("class")


def test_pick_upload_ask_cite_open_replace_delete(browser, site):
    with open_page(browser, site.url,
                   http_credentials={"username": "me", "password": WRITE_KEY}) as page:
        asked = sent_asks(page)
        # Two collections: the picker shows them; the page starts on the file's first, hr.
        picker = page.get_by_label("Collection")
        picker.wait_for(timeout=30_000)  # shown once the page has read /collections
        assert picker.is_visible()
        assert picker.locator("option").all_inner_texts() == ["hr", "eng"]
        assert picker.input_value() == "hr"
        assert page.locator("#documents").get_attribute("open") is None  # the chat comes first

        # eng: a PDF, its citation opens the original at the cited page.
        picker.select_option("eng")
        assert ask_in_page(page, PDF_QUESTION) == "done"
        first = page.locator(f"{turn(1)} .source-list button").first
        assert first.inner_text() == PDF
        first.click()
        page_no = page.locator(f"{turn(1)} .passage-page").inner_text().removeprefix("page ")
        link = page.locator(f"{turn(1)} .passage-open")
        assert link.is_visible() and link.inner_text().startswith("Open the original")
        assert link.get_attribute("href") == f"/collections/eng/documents/{PDF}#page={page_no}"
        assert link.get_attribute("target") == "_blank" and link.get_attribute("rel") == "noopener"
        original = api(site, "GET", f"/collections/eng/documents/{PDF}")
        assert original.status_code == 200
        assert original.content == (site.docs["eng"] / PDF).read_bytes()

        # hr: another collection is a new chat.
        picker.select_option("hr")
        assert page.locator("#thread > .turn").count() == 0
        assert page.evaluate("sessionStorage.getItem('ragfirst.collection.v1')") == "hr"

        # Its documents, listed when the panel is opened.
        page.locator("#documents > summary").click()
        page.locator(row(HANDBOOK[0])).wait_for()
        assert page.locator("#document-list tr").count() == 1
        assert page.locator("#upload-button").is_visible()

        # An upload by the file input: added, listed with its passages.
        page.set_input_files("#upload-input", files=[
            {"name": PARKING, "mimeType": "text/markdown", "buffer": PARKING_TEXT.encode()}])
        assert outcome(page, PARKING) == "upload-added"
        page.locator(row(PARKING)).wait_for()
        indexed = listed(site, "hr")[PARKING]
        assert indexed["chunks"] >= 1
        cells = page.locator(row(PARKING)).locator("td").all_inner_texts()
        assert cells[:3] == [indexed["kind"], f"{len(PARKING_TEXT)} bytes", str(indexed["chunks"])]
        assert "“hr”: 1 added." == page.locator("#upload-status").inner_text()

        # An upload by a drop on the page, its sub-folder kept.
        drop_file(page, *CANTEEN)
        assert outcome(page, CANTEEN[0]) == "upload-added"
        page.locator(row(CANTEEN[0])).wait_for()
        assert (site.docs["hr"] / CANTEEN[0]).read_text() == CANTEEN[1]
        assert listed(site, "hr")[CANTEEN[0]]["chunks"] >= 1

        # The same name again: already there, until Replace sends it with overwrite=true.
        page.set_input_files("#upload-input", files=[
            {"name": PARKING, "mimeType": "text/markdown", "buffer": PARKING_V2.encode()}])
        assert outcome(page, PARKING) == "upload-exists"
        assert (site.docs["hr"] / PARKING).read_text() == PARKING_TEXT
        page.get_by_role("button", name=f"Replace {PARKING}").click()
        page.locator("#upload-results li.upload-replaced").wait_for()
        assert (site.docs["hr"] / PARKING).read_text() == PARKING_V2
        # the Replace button went with its result: the keyboard goes on from Add files…
        assert page.evaluate("document.activeElement.id") == "upload-button"

        # Asked in the page, the answer cites the uploaded file; its passage opens the
        # original, which is the file as replaced.
        expected = [c for c in cited(site, "hr", PARKING_QUESTION) if c["path"] == PARKING]
        assert expected, "the premise: the service answers the question from the upload"
        assert ask_in_page(page, PARKING_QUESTION) == "done"
        source = page.locator(f'{turn(1)} .source-list button:text-is("{PARKING}")')
        assert source.count() == 1
        source.click()
        assert "6:40" in page.locator(f"{turn(1)} .passage-text").inner_text()
        href = page.locator(f"{turn(1)} .passage-open").get_attribute("href")
        assert href == f"/collections/hr/documents/{PARKING}"  # no page: not a PDF
        assert api(site, "GET", href).text == PARKING_V2
        assert [b.get("collection") for b in asked] == ["eng", "hr"]

        screenshot(page, SCREENSHOT)

        # Delete: asked first (declined: it stays), then done; gone from the list and the index.
        messages: list[str] = []
        page.once("dialog", lambda d: (messages.append(d.message), d.dismiss()))
        page.get_by_role("button", name=f"Delete {PARKING}").click()
        page.evaluate("1")  # answered once the dialog is closed: the handler has run
        assert PARKING in messages[0] and "hr" in messages[0]
        assert PARKING in listed(site, "hr")
        page.once("dialog", lambda d: d.accept())
        page.get_by_role("button", name=f"Delete {PARKING}").click()
        page.locator(row(PARKING)).wait_for(state="detached")
        assert page.locator("#documents-status").inner_text() == f"Deleted {PARKING}."
        assert page.evaluate("document.activeElement.matches('#documents > summary')")
        assert PARKING not in listed(site, "hr") and not (site.docs["hr"] / PARKING).exists()

        # Asked again: the deleted file is cited no more.
        state = ask_in_page(page, PARKING_QUESTION)
        cited_now = page.locator(f"{turn(2)} .source-list button").all_inner_texts()
        assert PARKING not in cited_now, (state, cited_now)
        assert all(c["path"] != PARKING for c in cited(site, "hr", PARKING_QUESTION))
        assert asked[-1]["collection"] == "hr"

    png = SCREENSHOT.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000


def test_a_read_key_sees_no_upload_or_delete_control(browser, site):
    with open_page(browser, site.url,
                   http_credentials={"username": "me", "password": READ_KEY}) as page:
        posts: list[str] = []
        page.on("request", lambda r: posts.append(r.url) if r.method != "GET" else None)
        # hr only: no picker to pick from; its documents listed, nothing to change them with.
        page.locator("#documents > summary").click()
        page.locator(row(HANDBOOK[0])).wait_for()
        assert page.locator("#collection-picker").is_hidden()
        assert page.locator("#upload").is_hidden()
        assert page.locator("#upload-input").count() == 1  # there, inside the hidden part
        assert page.get_by_role("button", name="Add files…").count() == 0
        assert page.locator("#document-list button").count() == 0
        assert page.locator("#document-actions-head").is_hidden()
        assert set(listed(site, "hr", READ_KEY)) == {
            page.locator("#document-list th.path").nth(i).inner_text()
            for i in range(page.locator("#document-list tr").count())}

        # A drop is taken (the browser does not leave the page for the file) and refused.
        drop_file(page, "notes/intruder.md", "# No\n")
        status = page.locator("#documents-status")
        assert "may read “hr” but not add files" in status.inner_text()
        assert page.url == f"{site.url}/"
        assert posts == []
        assert not (site.docs["hr"] / "notes" / "intruder.md").exists()

        # Asking works, and the original is linked as for a writer.
        assert ask_in_page(page, "How many days of paid leave does an employee have?") == "done"
        page.locator(f'{turn(1)} .source-list button:text-is("{HANDBOOK[0]}")').click()
        href = page.locator(f"{turn(1)} .passage-open").get_attribute("href")
        assert href == f"/collections/hr/documents/{HANDBOOK[0]}"
        assert api(site, "GET", href, READ_KEY).text == HANDBOOK[1]
        assert posts == [f"{site.url}/ask"]
