// The ragfirst web page: a conversation with the documents. Each question is POSTed to /ask
// with "stream": true and the thread's earlier turns as `history`; its answer is shown as its
// deltas arrive, then re-rendered from the `done` event's checked answer (turn.js, answer.js).
// The thread is kept in sessionStorage (thread.js): a reload of the tab keeps it, "New chat"
// starts over. The server keeps nothing between questions. A thread belongs to one collection
// (collections.js): picking another starts a new chat. The documents panel (documents.js)
// lists, adds and deletes the collection's files.
import {Collections} from "./collections.js";
import {DocumentsPanel} from "./documents.js";
import {detailText, readJson} from "./http.js";
import {sseEvents} from "./sse.js";
import {Thread} from "./thread.js";
import {TurnView} from "./turn.js";

const $ = (id) => document.getElementById(id);
const thread = new Thread();
const collections = new Collections($("collection"), $("collection-picker"));
const documents = new DocumentsPanel(collections);
let controller = null;  // AbortController of the request in flight, null when idle
const started = start();
keepComposerClear();

// The collections listed, then the thread as it was before a reload (if it is this one's).
async function start() {
  const problem = await collections.load();
  if (problem) showError(problem);
  documents.show();
  const name = collections.current?.name;
  if (thread.turns.some((turn) => (turn.collection ?? "default") !== name)) thread.clear();
  for (const turn of thread.turns) {
    const view = new TurnView(turn.question, collections.requested);
    view.show(turn);
    $("thread").append(view.root);
  }
  updateNewChat();
}

collections.onChange((picked) => {
  newChat(false);  // the thread was another collection's
  documents.show();
  setStatus(`Asking “${picked.name}” now.`);
});

$("ask-form").addEventListener("submit", (event) => {
  event.preventDefault();
  ask();
});
$("question").addEventListener("keydown", (event) => {
  // Enter asks, Shift+Enter is a new line (isComposing: an IME is still picking a character)
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("ask-form").requestSubmit();
  }
});
$("stop").addEventListener("click", () => controller && controller.abort());
$("new-chat").addEventListener("click", () => newChat());

async function ask() {
  await started;
  const question = $("question").value.trim();
  if (controller) return;  // one question at a time; Stop cancels
  if (!question) {
    showError("Type a question first.");
    $("question").focus();
    return;
  }
  const body = requestBody(question, thread.history());  // the turns before this one
  const turn = thread.add(question, collections.current?.name);
  const view = new TurnView(question, collections.requested);
  const mine = controller = new AbortController();
  $("error").hidden = true;
  $("question").value = "";  // it is in the thread now
  following(() => {
    $("thread").append(view.root);
    view.setState("waiting");
    setBusy(true, view);
    setStatus("Searching the documents…");
  }, true);
  const outcome = await answer(body, view, mine.signal);
  if (controller !== mine) return;  // "New chat" abandoned it meanwhile
  thread.finish(turn, outcome);
  following(() => view.show(turn, true));
  controller = null;
  setBusy(false, view);  // after the final answer is in: screen readers read that one
  setStatus(outcome.status === "stopped" ? "Stopped." : "");
  updateNewChat();
}

function requestBody(question, history) {
  const body = {question, stream: true, mode: $("mode").value};
  if (collections.requested) body.collection = collections.requested;
  if ($("top-k").value) body.top_k = Number($("top-k").value);
  const filters = {};
  const path = $("path-filter").value.trim();
  if (path) filters.path = path;
  const types = [...document.querySelectorAll('input[name="type"]:checked')].map((i) => i.value);
  if (types.length) filters.type = types;
  if (Object.keys(filters).length) body.filters = filters;
  if (history.length) body.history = history;
  return body;
}

// The answer to one question, streamed into `view`; its outcome as a Thread turn keeps it:
// {status: "done" | "abstained", body} or {status: "error" | "stopped", ...} (thread.js).
async function answer(body, view, signal) {
  let text = "";
  try {
    const response = await fetch("/ask", {
      method: "POST",
      headers: {"Content-Type": "application/json", "Accept": "text/event-stream"},
      body: JSON.stringify(body),
      signal,
    });
    if (!response.ok) return httpError(response.status, await readJson(response));
    for await (const [event, data] of sseEvents(response)) {
      if (event === "delta") {
        text += data.text;
        following(() => view.showDelta(text));
        setStatus("Answering…");
      } else if (event === "done") {
        return {status: data.abstained ? "abstained" : "done", body: data};
      } else if (event === "error") {
        return {status: "error", partial: text, sources: data.sources,
                error: `The answer stopped midway (${data.status}: ${data.detail}). ` +
                       "What arrived is shown as it came, incomplete and unchecked."};
      }
    }
    return {status: "error", partial: text,
            error: "The answer stream ended before the answer was complete."};
  } catch (err) {
    if (err.name === "AbortError") return {status: "stopped", partial: text};
    return {status: "error", partial: text, error: `Could not reach the service: ${err.message}`};
  }
}

function httpError(status, body) {
  const problems = Array.isArray(body.detail) ? body.detail : null;  // 422: pydantic's list
  const detail = detailText(body);
  let what = {
    401: "The service wants its API key: reload the page and give the key as the password.",
    422: "The question was not accepted.",
    502: "The language model failed.",
    503: "The index is not ready.",
    504: "The language model did not answer in time.",
  }[status] || "The service could not answer.";
  if (problems?.some((e) => e.loc?.includes("history"))) {
    what = "The conversation so far was not accepted: “New chat” starts a new one.";
  }
  return {status: "error", error: `${what} (HTTP ${status}: ${detail})`,
          sources: body.sources, sourcesTitle: "Passages found (no answer was generated)"};
}

function newChat(focus = true) {
  if (controller) controller.abort();  // its answer goes nowhere now
  controller = null;
  setBusy(false);
  thread.clear();
  $("thread").replaceChildren();
  $("error").hidden = true;
  setStatus("");
  updateNewChat();
  if (focus) $("question").focus();
}

function updateNewChat() {
  $("new-chat").disabled = thread.turns.length === 0;
}

// Run `change`, then keep the newest turn in view if the page was scrolled to its end (or
// `always`): an answer streaming in is followed, unless the user scrolled up to read.
function following(change, always = false) {
  const page = document.documentElement;
  const atEnd = always || page.scrollTop + page.clientHeight >= page.scrollHeight - 48;
  change();
  if (atEnd) page.scrollTop = page.scrollHeight;
}

// The question box stays at the bottom of the window (CSS: sticky); scrolling something into
// view (a passage, a focused button) must not put it underneath the box.
function keepComposerClear() {
  const composer = $("ask-form");
  const pad = () => {
    document.documentElement.style.scrollPaddingBottom = `${composer.offsetHeight + 16}px`;
  };
  new ResizeObserver(pad).observe(composer);
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  setStatus("");
}

function setStatus(message) {
  $("status").textContent = message;
}

function setBusy(busy, view) {
  $("ask").disabled = busy;
  $("stop").hidden = !busy;
  if (view) view.setBusy(busy);
}
