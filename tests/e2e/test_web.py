"""The web page at / in real headless Chromium (playwright driving /usr/bin/chromium), against
the real service (`python -m app` in a subprocess) on the starter corpus: ask and watch the
answer stream in, open a citation's passage, an abstention, an unsupported sentence, the API
key as the browser sends it, and the conversation: a follow-up in its own turn with its own
passages, the history the page sends, the thread kept over a reload, "New chat"."""
from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Iterator

import httpx
import pytest

from tests.helpers import ROOT
from tests.service_process import running_service
from tests.web_page import FINISHED, ask_in_page, open_page, screenshot, turn

pytestmark = pytest.mark.slow

SCREENSHOT = ROOT / "test-artifacts" / "web-answer.png"
CONVERSATION_SCREENSHOT = ROOT / "test-artifacts" / "web-conversation.png"
KEY = "web-test-key-3f9c2a"
T1 = "#thread > .turn:nth-child(1)"  # the thread's first turn
PDF_QUESTION = "What are the API rate limits?"
BUSINESS_QUESTION = "What does the Business plan cost?"
OFF_TOPIC_QUESTION = "Who won the 1998 football world cup?"
REFUND_QUESTION = "How long do I have to get a full refund on an annual plan?"
FOLLOW_UP = "And for monthly plans?"
MODULES = ["app.js", "thread.js", "turn.js", "answer.js", "sse.js", "http.js",
           "collections.js", "documents.js", "upload.js"]  # the page's scripts, in app/web/
MARKER = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")


@pytest.fixture(scope="module")
def services(starter_index, fake_llm) -> Iterator[dict[str, str]]:
    """The service in each configuration these tests need, by name -> base URL. Started at
    the same time (each takes seconds to load its model), all on the shared starter index:
    - plain: the default, extractive answers, no API key;
    - llm: an LLM (the fake one) that streams word by word a true cited sentence, then an
      unsupported one;
    - keyed: the default with RAG_API_KEY set."""
    settings, _ = starter_index
    configs = {"plain": {},
               "llm": {"RAG_GENERATOR": "openai", "RAG_OPENAI_MODEL": "fake-halftrue",
                       "RAG_OPENAI_BASE_URL": fake_llm.base_url("halftrue")},
               "keyed": {"RAG_API_KEY": KEY}}
    contexts = {name: running_service(settings.index_dir, settings.corpus_dir, **env)
                for name, env in configs.items()}
    with ExitStack() as stack, ThreadPoolExecutor(len(contexts)) as pool:
        started = {name: pool.submit(cm.__enter__) for name, cm in contexts.items()}
        for name, future in started.items():  # stop the ones that started, whatever fails
            if future.exception() is None:
                stack.push(contexts[name].__exit__)
        yield {name: future.result() for name, future in started.items()}


@pytest.fixture(scope="module")
def service(services) -> str:
    return services["plain"]


@pytest.fixture(scope="module")
def llm_service(services) -> str:
    return services["llm"]


@pytest.fixture(scope="module")
def keyed_service(services) -> str:
    return services["keyed"]


def ask_http(url: str, question: str, history: list[dict] | None = None) -> dict:
    """The same question over plain HTTP, without the browser: what the page must show."""
    body = {"question": question, **({"history": history} if history else {})}
    r = httpx.post(f"{url}/ask", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def sent_bodies(page) -> list[dict]:
    """The JSON bodies of the POST /ask requests the page sends from now on, as they go."""
    bodies: list[dict] = []
    page.on("request", lambda r: bodies.append(json.loads(r.post_data))
            if r.method == "POST" and r.url.endswith("/ask") else None)
    return bodies


def plain(text: str) -> str:
    """Text without [n] markers, whitespace collapsed (as the server lists sentences)."""
    return " ".join(MARKER.sub("", text).split())


def shown_text(page, selector: str) -> str:
    """An element's text as `plain` gives it: citation chips (back to "[n]" markers, then
    removed) and the flags the page adds left out."""
    raw = page.eval_on_selector(selector, """node => {
        const copy = node.cloneNode(true);
        copy.querySelectorAll(".flag").forEach((n) => n.remove());
        copy.querySelectorAll(".cites").forEach((n) => n.replaceWith("[0]"));
        return copy.textContent; }""")
    return plain(raw)


def test_answer_cites_a_passage_that_opens_with_path_and_page(browser, service):
    expected = ask_http(service, PDF_QUESTION)
    # the question's premise: its first source is a PDF page, another one is not a PDF
    first = expected["citations"][0]
    other = next((c for c in expected["citations"] if c["page"] is None), None)
    assert first["path"].endswith(".pdf") and first["page"] and other, expected["citations"]

    with open_page(browser, service) as page:
        assert ask_in_page(page, PDF_QUESTION) == "done"
        # The final answer is the server's checked one, its markers turned into buttons.
        assert shown_text(page, f"{T1} .answer .answer-text") == plain(expected["answer"])
        markers = page.locator(f"{T1} .answer button.cite")
        cited = [int(n) for m in re.findall(r"\[([\d, ]+)\]", expected["answer"])
                 for n in m.split(",")]
        assert markers.count() == len(cited) >= 1
        assert [int(markers.nth(i).get_attribute("data-n"))
                for i in range(markers.count())] == cited
        assert page.locator(f"{T1} .passage").is_hidden()

        marker = page.locator(f'{T1} .answer button.cite[data-n="{first["n"]}"]').first
        marker.click()
        assert page.locator(f"{T1} .passage").is_visible()
        assert marker.get_attribute("aria-expanded") == "true"
        assert page.locator(f"{T1} .passage-path").inner_text() == first["path"]
        assert page.locator(f"{T1} .passage-page").inner_text() == f"page {first['page']}"
        # the passage's text (a PDF's line breaks are joined for reading: only whitespace)
        assert page.locator(f"{T1} .passage-text").text_content().split() == first["text"].split()
        # the sentence that cites it, found word for word, is highlighted
        claim = page.locator(f"{T1} .passage-text mark")
        assert claim.count() == 1 and len(claim.text_content()) > 20
        assert " ".join(claim.text_content().split()) in plain(expected["answer"])
        assert page.locator(f"{T1} .meta").inner_text().startswith("extractive · ")

        screenshot(page, SCREENSHOT)

        # The keyboard: Escape closes the passage and gives the focus back to the marker;
        # Enter on the marker opens it again.
        page.keyboard.press("Escape")
        assert page.locator(f"{T1} .passage").is_hidden()
        assert page.evaluate("document.activeElement.dataset.n") == str(first["n"])
        page.keyboard.press("Enter")
        assert page.locator(f"{T1} .passage").is_visible()

        # A citation without a page (not a PDF) shows none; opened from the source list.
        listed = page.locator(f'{T1} .source-list button[data-n="{other["n"]}"]')
        listed.click()
        assert page.locator(f"{T1} .passage-path").inner_text() == other["path"]
        assert page.locator(f"{T1} .passage-page").count() == 0
        assert page.locator(f"{T1} .passage-text").text_content() == other["text"]
        assert listed.get_attribute("aria-expanded") == "true"
        assert marker.get_attribute("aria-expanded") == "false"

    png = SCREENSHOT.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000


def test_the_answer_streams_in_before_it_is_done(browser, llm_service):
    with open_page(browser, llm_service) as page:
        # Record what the newest turn's answer shows at every change, with a timestamp.
        page.evaluate("""() => {
            const thread = document.getElementById("thread");
            window.seen = [];
            new MutationObserver(() => {
                const answer = thread.querySelector(".turn:last-child .answer");
                if (answer) window.seen.push(
                    [answer.dataset.state, answer.textContent.length, performance.now(),
                     answer.getAttribute("aria-busy")]);
            }).observe(thread, {subtree: true, childList: true, characterData: true,
                                attributes: true});
        }""")
        assert ask_in_page(page, BUSINESS_QUESTION) == "done"
        seen = page.evaluate("window.seen")
        deltas = int(page.get_attribute(f"{T1} .answer", "data-deltas"))
        # a live region that screen readers read once the whole answer is in
        assert page.get_attribute(f"{T1} .answer", "aria-live") == "polite"
        assert page.get_attribute(f"{T1} .answer", "aria-busy") == "false"
    assert {busy for state, _, _, busy in seen if state == "streaming"} == {"true"}
    streaming = [(n, t) for state, n, t, _ in seen if state == "streaming"]
    lengths = sorted({n for n, _ in streaming})
    # the fake LLM sends the answer word by word, 0.1 s apart: one delta per word, each shown
    assert deltas >= 20 and len(lengths) >= 20, (deltas, lengths)
    assert 0 < lengths[0] < lengths[-1] / 4, lengths
    assert streaming[-1][1] - streaming[0][1] > 1000  # ms: the text grew over time
    done_at = next(t for state, _, t, _ in seen if state == "done")
    assert done_at >= streaming[-1][1]


def test_unsupported_sentence_is_marked_and_the_supported_one_is_not(browser, llm_service):
    expected = ask_http(llm_service, BUSINESS_QUESTION)
    assert expected["unsupported"] == ["The moon is made of green cheese."], expected
    supported = plain(expected["answer"]).replace(" The moon is made of green cheese.", "")
    assert supported and expected["citations"]

    with open_page(browser, llm_service) as page:
        assert ask_in_page(page, BUSINESS_QUESTION) == "done"
        flagged = page.locator(f"{T1} .answer .unsupported")
        assert flagged.count() == 1
        assert shown_text(page, f"{T1} .answer .unsupported") == "The moon is made of green cheese."
        style = flagged.evaluate("n => getComputedStyle(n).textDecorationStyle")
        assert style == "dashed"
        flag = page.locator(f"{T1} .answer .flag")
        assert flag.is_visible() and "unsupported" in flag.inner_text()
        assert flag.get_attribute("title") == "Not supported by the cited sources"
        assert "not supported by the cited sources" in flag.text_content()  # screen readers
        # the true sentence is shown, outside any flagged span
        whole = shown_text(page, f"{T1} .answer .answer-text")
        assert whole.startswith(supported) and supported not in shown_text(
            page, f"{T1} .answer .unsupported")
        assert page.locator(f"{T1} .notes").is_visible()
        assert "unsupported" in page.locator(f"{T1} .notes").inner_text()
        assert page.locator(f"{T1} .meta").inner_text().startswith("openai (fake-halftrue) · ")


def test_abstention_is_a_notice_without_citations(browser, service):
    expected = ask_http(service, OFF_TOPIC_QUESTION)
    assert expected["abstained"] and expected["citations"] == []

    with open_page(browser, service) as page:
        assert ask_in_page(page, OFF_TOPIC_QUESTION) == "abstained"
        notice = page.locator(f"{T1} .answer .abstention")
        assert notice.is_visible()
        assert "No answer in your documents" in notice.inner_text()
        assert expected["answer"] in notice.inner_text()
        assert page.locator(f"{T1} .answer .answer-text").count() == 0
        assert page.locator(f"{T1} button.cite").count() == 0
        assert page.locator(f"{T1} .sources").is_hidden()


def test_api_key_is_asked_by_the_browser_and_sent_with_each_call(browser, keyed_service):
    # Without the key, or with a wrong one, the page is refused with a Basic challenge (a
    # real browser then asks for user and password; headless Chromium gives up at once).
    from playwright.sync_api import Error as PlaywrightError

    for credentials in ({}, {"http_credentials": {"username": "me", "password": "not-it"}}):
        context = browser.new_context(**credentials)
        try:
            page = context.new_page()
            with page.expect_response(f"{keyed_service}/") as answered:
                try:
                    page.goto(f"{keyed_service}/")
                except PlaywrightError as exc:
                    assert "ERR_INVALID_AUTH_CREDENTIALS" in str(exc)
            assert answered.value.status == 401
            assert 'Basic realm="ragfirst"' in answered.value.header_value("www-authenticate")
            assert page.locator("#question").count() == 0
        finally:
            context.close()
    for module in MODULES:
        assert httpx.get(f"{keyed_service}/static/{module}").status_code == 401

    # With it (the browser's user/password prompt; any user name): the page works.
    requests: list[str] = []
    with open_page(browser, keyed_service,
                   http_credentials={"username": "me", "password": KEY}) as page:
        page.on("request", lambda r: requests.append(r.url))
        assert ask_in_page(page, BUSINESS_QUESTION) == "done"
        assert page.locator(f"{T1} .answer button.cite").count() >= 1
        assert KEY not in page.url
    assert f"{keyed_service}/ask" in requests and not any(KEY in u for u in requests)


def test_the_page_scripts_are_served_as_javascript(service):
    # app.js is an ES module importing the others: a browser runs a module only when it is
    # served with a JavaScript content type
    for module in MODULES:
        r = httpx.get(f"{service}/static/{module}")
        assert r.status_code == 200, module
        assert r.headers["content-type"].split(";")[0] == "text/javascript", r.headers


def test_a_follow_up_is_its_own_turn_with_its_own_passages(browser, service):
    first = ask_http(service, REFUND_QUESTION)
    history = [{"role": "user", "content": REFUND_QUESTION},
               {"role": "assistant", "content": first["answer"]}]
    second = ask_http(service, FOLLOW_UP, history)
    # the premise: the follow-up is searched in a standalone form and answered from the
    # refund policy, with a source numbered like none of the first turn's
    assert first["retrieval_query"] == REFUND_QUESTION
    assert second["retrieval_query"] != FOLLOW_UP and "7 days" in second["answer"]
    cited = second["citations"][0]
    assert cited["path"] == "kestrelbook/refund-policy.md", second["citations"]
    assert cited["n"] not in {c["n"] for c in first["citations"]}

    with open_page(browser, service) as page:
        sent = sent_bodies(page)
        assert ask_in_page(page, REFUND_QUESTION) == "done"
        assert ask_in_page(page, FOLLOW_UP) == "done"

        # What the page sent: the first question alone, then the follow-up with the first
        # turn (its question, its checked answer) as history.
        assert [b["question"] for b in sent] == [REFUND_QUESTION, FOLLOW_UP]
        assert "history" not in sent[0]
        assert sent[1]["history"] == history

        # Both turns are on the page, each with its question and its own checked answer.
        assert page.locator("#thread > .turn").count() == 2
        assert page.locator(f"{turn(1)} .question").inner_text() == REFUND_QUESTION
        assert page.locator(f"{turn(2)} .question").inner_text() == FOLLOW_UP
        assert shown_text(page, f"{turn(1)} .answer-text") == plain(first["answer"])
        assert shown_text(page, f"{turn(2)} .answer-text") == plain(second["answer"])
        assert "7 days" in page.locator(f"{turn(2)} .answer").inner_text()
        assert page.locator(f"{turn(1)} .answer").is_visible()
        # what the follow-up was searched for, shown because it is not the question
        assert page.locator(f"{turn(1)} .searched").is_hidden()
        searched = page.locator(f"{turn(2)} .searched")
        assert searched.is_visible() and second["retrieval_query"] in searched.inner_text()

        # The follow-up's citation opens the follow-up's passage, in its own turn.
        marker = page.locator(f'{turn(2)} .answer button.cite[data-n="{cited["n"]}"]').first
        marker.click()
        passage = f"{turn(2)} .passage"
        assert page.locator(passage).is_visible()
        assert marker.get_attribute("aria-controls") == page.get_attribute(passage, "id")
        assert page.locator(f"{passage} .passage-path").inner_text() == cited["path"]
        assert page.locator(f"{passage} .passage-text").text_content() == cited["text"]
        assert "7 days" in page.locator(f"{passage} .passage-text mark").inner_text()
        assert page.locator(f"{turn(1)} .passage").is_hidden()
        # ...and the first turn's [1] its own source 1, not the follow-up's
        page.locator(f'{turn(1)} .answer button.cite[data-n="1"]').first.click()
        assert page.locator(f"{turn(1)} .passage-text").text_content() == \
            first["citations"][0]["text"]
        assert page.locator(passage).is_visible()  # each turn has its own passage view
        assert page.get_attribute(f"{turn(1)} .passage", "id") != page.get_attribute(passage, "id")

        screenshot(page, CONVERSATION_SCREENSHOT)

        # The keyboard: back from the question box (Shift+Tab), the follow-up's buttons come
        # first; Enter on its citation opens its passage.
        page.locator(f"{turn(1)} .passage-close").click()
        page.locator(f"{turn(2)} .passage-close").click()
        page.get_by_label("Question").focus()
        for _ in range(10):
            page.keyboard.press("Shift+Tab")
            if page.evaluate("document.activeElement.matches('.turn:nth-child(2) button.cite')"):
                break
        else:
            pytest.fail("no citation of the follow-up reachable by Shift+Tab from the question")
        page.keyboard.press("Enter")
        assert page.locator(passage).is_visible()
        assert page.locator(f"{turn(1)} .passage").is_hidden()
    png = CONVERSATION_SCREENSHOT.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000


def test_the_thread_survives_a_reload_and_new_chat_starts_over(browser, service):
    with open_page(browser, service) as page:
        sent = sent_bodies(page)
        assert ask_in_page(page, REFUND_QUESTION) == "done"
        assert ask_in_page(page, FOLLOW_UP) == "done"
        answers = [shown_text(page, f"{turn(n)} .answer-text") for n in (1, 2)]
        assert page.locator("#new-chat").is_enabled()

        # A reload of the tab keeps the thread (sessionStorage): both turns, their citations
        # working, and the next question is sent with them as history.
        page.reload()
        page.wait_for_selector(f"{turn(2)} .answer{FINISHED}")
        assert page.locator("#thread > .turn").count() == 2
        assert [shown_text(page, f"{turn(n)} .answer-text") for n in (1, 2)] == answers
        assert page.locator(f"{turn(2)} .searched").is_visible()
        page.locator(f"{turn(2)} .answer button.cite").first.click()
        assert page.locator(f"{turn(2)} .passage-path").inner_text() == \
            "kestrelbook/refund-policy.md"
        assert ask_in_page(page, BUSINESS_QUESTION) == "done"
        assert [t["content"] for t in sent[-1]["history"]][::2] == [REFUND_QUESTION, FOLLOW_UP]
        assert len(sent[-1]["history"]) == 4

        # A new tab starts with no thread (sessionStorage is the tab's).
        other = page.context.new_page()
        other.goto(page.url)
        other.wait_for_selector("#ask-form")
        assert other.locator("#thread > .turn").count() == 0
        assert other.locator("#new-chat").is_disabled()
        other.close()

        # "New chat": the thread goes, from the page and the tab's storage; the next question
        # is sent without history.
        page.locator("#new-chat").click()
        assert page.locator("#thread > .turn").count() == 0
        assert page.locator("#new-chat").is_disabled()
        assert page.evaluate("document.activeElement.id") == "question"
        assert page.evaluate("sessionStorage.getItem('ragfirst.thread.v1')") is None
        assert ask_in_page(page, REFUND_QUESTION) == "done"
        assert "history" not in sent[-1]
        page.reload()
        page.wait_for_selector(f"{turn(1)} .answer{FINISHED}")
        assert page.locator("#thread > .turn").count() == 1


def test_abstained_failed_and_stopped_turns_in_the_history(browser, llm_service):
    with open_page(browser, llm_service) as page:
        sent = sent_bodies(page)
        # An abstention: its question is sent on, not the fixed "no answer" sentence.
        assert ask_in_page(page, OFF_TOPIC_QUESTION) == "abstained"
        # A failed request: shown in its turn, with the service's reason; not sent on.
        page.route("**/ask", lambda route: route.fulfill(
            status=503, content_type="application/json",
            body=json.dumps({"detail": "the index is being rebuilt"})))
        page.get_by_label("Question").fill(BUSINESS_QUESTION)
        page.get_by_label("Question").press("Enter")
        page.wait_for_selector(f'{turn(2)} .answer[data-state="error"]', state="attached")
        error = page.locator(f"{turn(2)} .turn-error")
        assert "The index is not ready" in error.inner_text()
        assert "the index is being rebuilt" in error.inner_text()
        page.unroute("**/ask")
        # A stopped answer: what arrived stays, marked; not sent on.
        page.get_by_label("Question").fill(BUSINESS_QUESTION)
        page.get_by_label("Question").press("Enter")
        page.wait_for_selector(f'{turn(3)} .answer[data-state="streaming"]')
        page.locator("#stop").click()
        page.wait_for_selector(f'{turn(3)} .answer[data-state="stopped"]')
        assert page.locator(f"{turn(3)} .answer-text.incomplete").inner_text()
        assert "Stopped" in page.locator(f"{turn(3)} .notes").inner_text()

        assert ask_in_page(page, BUSINESS_QUESTION) == "done"
        assert sent[-1]["history"] == [{"role": "user", "content": OFF_TOPIC_QUESTION}]
        # all four turns shown, and kept as they ended over a reload
        page.reload()
        page.wait_for_selector(f"{turn(4)} .answer{FINISHED}")
        states = [page.get_attribute(f"{turn(n)} .answer", "data-state") for n in range(1, 5)]
        assert states == ["abstained", "error", "stopped", "done"]
        assert "the index is being rebuilt" in page.locator(f"{turn(2)} .turn-error").inner_text()


def test_history_keeps_to_the_server_limits(browser, service):
    # thread.js on its own, in the browser, with an in-memory storage: 30 answered turns of
    # long answers make 60 messages, of which the latest 50 go, each cut to 8,000 characters
    # as the server counts them (an emoji straddling the cut is not split in half); a turn
    # that was being answered when the page went away comes back stopped.
    with open_page(browser, service) as page:
        result = page.evaluate("""async () => {
            const {Thread} = await import("/static/thread.js");
            const memory = new Map();
            const storage = {getItem: (k) => memory.get(k) ?? null,
                             setItem: (k, v) => memory.set(k, v),
                             removeItem: (k) => memory.delete(k)};
            const thread = new Thread(storage);
            const answer = "x".repeat(7999) + "\\u{1F600}" + " and more [1].";
            for (let i = 0; i < 30; i++) {
                const turn = thread.add(`Question ${i}?`);
                thread.finish(turn, {status: "done", body: {answer, citations: []}});
            }
            thread.add("Left pending");
            return {history: thread.history(),
                    restored: new Thread(storage).turns.map((t) => t.status)};
        }""")
    history = result["history"]
    assert len(history) == 50
    assert history[0] == {"role": "user", "content": "Question 5?"}
    assert history[-1]["role"] == "assistant"
    assert history[-1]["content"] == "x" * 7999 + "\U0001F600"  # 8,000 code points
    assert result["restored"] == ["done"] * 30 + ["stopped"]
    # ...and the service takes that history
    r = httpx.post(f"{service}/ask", json={"question": FOLLOW_UP, "history": history},
                   timeout=60)
    assert r.status_code == 200, r.text
