// The ragfirst web page. POST /ask with "stream": true, show the answer as its deltas arrive,
// then re-render it from the `done` event's checked answer: [n] markers become buttons that
// open the cited passage, unsupported sentences are flagged, an abstention is a notice.
// Server text only ever enters the page through textContent / text nodes, never innerHTML.
"use strict";

const $ = (id) => document.getElementById(id);
const MARKER = /\[(\d+(?:\s*,\s*\d+)*)\]/g;  // the server's markers: [1] or [1, 3]
const SPACED_MARKERS = /\s*\[\d+(?:\s*,\s*\d+)*\]/g;  // ...with the spaces before them
const SPACED_MARKER = new RegExp(SPACED_MARKERS.source, "y");  // one, at lastIndex
const NOT_SUPPORTED = "Not supported by the cited sources";

let controller = null;        // AbortController of the request in flight, null when idle
let citations = new Map();    // n -> citation (or retrieved source) of what is shown
let openButton = null;        // the button whose passage is open

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
$("passage-close").addEventListener("click", closePassage);
$("passage").addEventListener("keydown", (event) => {
  if (event.key === "Escape") closePassage();
});
// One listener for every citation button, in the answer and in the source list.
$("result").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-n]");
  if (button) togglePassage(button);
});

async function ask() {
  const question = $("question").value.trim();
  if (controller) return;  // one question at a time; Stop cancels
  if (!question) {
    showError("Type a question first.");
    $("question").focus();
    return;
  }
  controller = new AbortController();
  reset();
  setBusy(true);
  setStatus("Searching the documents…");
  let text = "";
  let finished = false;
  try {
    const response = await fetch("/ask", {
      method: "POST",
      headers: {"Content-Type": "application/json", "Accept": "text/event-stream"},
      body: JSON.stringify(requestBody(question)),
      signal: controller.signal,
    });
    if (!response.ok) {
      showHttpError(response.status, await readJson(response));
      return;
    }
    for await (const [event, data] of sseEvents(response)) {
      if (event === "delta") {
        text += data.text;
        showDelta(text);
      } else if (event === "done") {
        finished = true;
        showAnswer(data);
      } else if (event === "error") {
        finished = true;
        showStreamError(data);
      }
    }
    if (!finished) {
      setState("error");
      showError("The answer stream ended before the answer was complete.");
    }
  } catch (err) {
    if (err.name === "AbortError") {
      setState("stopped");
      setStatus("Stopped.");
      if (!text) $("result").hidden = true;
    } else {
      setState("error");
      showError(`Could not reach the service: ${err.message}`);
    }
  } finally {
    controller = null;
    setBusy(false);
  }
}

function requestBody(question) {
  const body = {question, stream: true, mode: $("mode").value};
  if ($("top-k").value) body.top_k = Number($("top-k").value);
  const filters = {};
  const path = $("path-filter").value.trim();
  if (path) filters.path = path;
  const types = [...document.querySelectorAll('input[name="type"]:checked')].map((i) => i.value);
  if (types.length) filters.type = types;
  if (Object.keys(filters).length) body.filters = filters;
  return body;
}

// Server-Sent Events from a fetch response (EventSource cannot POST): events are blocks of
// "field: value" lines separated by a blank line; lines starting with ":" are comments.
async function* sseEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = /\r?\n\r?\n/.exec(buffer))) {
      const block = buffer.slice(0, end.index);
      buffer = buffer.slice(end.index + end[0].length);
      let event = "message";
      const data = [];
      for (const line of block.split(/\r?\n/)) {
        const colon = line.indexOf(":");
        if (colon === 0) continue;
        const field = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event = val;
        else if (field === "data") data.push(val);
      }
      if (data.length) yield [event, JSON.parse(data.join("\n"))];
    }
  }
}

async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return {detail: response.statusText || "no details"};
  }
}

// -- showing the answer ------------------------------------------------------------------------

function reset() {
  citations = new Map();
  closePassage(false);
  $("error").hidden = true;
  $("result").hidden = false;
  $("answer").replaceChildren();
  $("answer").dataset.deltas = "0";
  for (const id of ["notes", "sources"]) $(id).hidden = true;
  $("source-list").replaceChildren();
  $("meta").textContent = "";
  setState("waiting");
}

// While streaming: the raw text so far (markers included), re-rendered when `done` arrives.
function showDelta(text) {
  const answer = $("answer");
  let p = answer.querySelector(".answer-text");
  if (!p) answer.replaceChildren(p = el("p", "answer-text"));
  p.textContent = text;
  answer.dataset.deltas = String(Number(answer.dataset.deltas) + 1);
  setState("streaming");
  setStatus("Answering…");
}

function showAnswer(body) {
  citations = new Map(body.citations.map((c) => [c.n, c]));
  const answer = $("answer");
  if (body.abstained) {
    const box = el("div", "abstention");
    box.append(el("p", "abstention-title", "No answer in your documents"),
               el("p", null, body.answer),
               el("p", "hint", "No indexed passage matches the question closely enough, so " +
                               "nothing was generated. Try other words, or check that the " +
                               "document is in the corpus."));
    answer.replaceChildren(box);
    setState("abstained");
  } else {
    const p = el("p", "answer-text");
    p.append(...renderAnswer(body.answer, body.unsupported));
    answer.replaceChildren(p);
    setState("done");
  }
  showNotes(body);
  showSources("Sources", body.citations);
  const model = body.model ? ` (${body.model})` : "";
  $("meta").textContent = `${body.generator}${model} · ${Math.round(body.timings_ms.total)} ms` +
                          ` · index generation ${body.index_generation}`;
  setStatus("");
}

// The answer as nodes: each unsupported sentence in a flagged span, [n] markers as buttons.
function renderAnswer(text, unsupported) {
  const nodes = [];
  let pos = 0;
  for (const [start, end] of sentenceRanges(text, unsupported)) {
    nodes.push(...withMarkers(text, pos, start));
    const span = el("span", "unsupported");
    span.title = NOT_SUPPORTED;
    span.append(...withMarkers(text, start, end));
    const flag = el("span", "flag", "unsupported");
    flag.title = NOT_SUPPORTED;
    flag.append(el("span", "visually-hidden", `: ${NOT_SUPPORTED.toLowerCase()}`));
    nodes.push(span, " ", flag);
    pos = end;
  }
  nodes.push(...withMarkers(text, pos, text.length));
  return nodes;
}

// Where the listed sentences sit in the answer, as [start, end) pairs in order. The server
// lists them "clean" (markers removed, whitespace collapsed), so they are searched in a clean
// copy of the answer whose characters remember their position in the original.
function sentenceRanges(text, sentences) {
  const {clean, origin} = collapse(text, true);
  const ranges = [];
  let from = 0;
  for (const sentence of sentences) {
    const at = sentence ? clean.indexOf(sentence, from) : -1;
    if (at < 0) continue;
    let end = origin[at + sentence.length - 1] + 1;
    SPACED_MARKER.lastIndex = end;  // "… cheese. [2]": a marker right after belongs to it
    if (SPACED_MARKER.test(text)) end = SPACED_MARKER.lastIndex;
    ranges.push([origin[at], end]);
    from = at + sentence.length;
  }
  return ranges;
}

// `text` with each run of whitespace made one space (and markers dropped, if asked), and
// origin[i]: the index in `text` of the result's i-th character.
function collapse(text, dropMarkers) {
  let clean = "";
  const origin = [];
  for (let i = 0; i < text.length;) {
    SPACED_MARKER.lastIndex = i;
    if (dropMarkers && SPACED_MARKER.test(text)) {
      i = SPACED_MARKER.lastIndex;
    } else if (/\s/.test(text[i])) {
      if (!clean.endsWith(" ")) { clean += " "; origin.push(i); }
      i++;
    } else {
      clean += text[i];
      origin.push(i);
      i++;
    }
  }
  return {clean, origin};
}

// text[from:to] as nodes, its [n] markers as buttons. Each button remembers its claim: the
// answer's text from the sentence's start up to the marker (to find it in the passage).
function withMarkers(text, from, to) {
  const nodes = [];
  let pos = from;
  for (const m of text.slice(from, to).matchAll(MARKER)) {
    const at = from + m.index;
    nodes.push(text.slice(pos, at).replace(/\s+$/, ""));  // the chip hugs its word
    const claim = text.slice(0, at).replace(/^[^]*[.!?]\s+/, "");
    const group = el("span", "cites");
    for (const n of m[1].split(",").map(Number)) group.append(citeMarker(n, claim));
    nodes.push(group);
    pos = at + m[0].length;
  }
  nodes.push(text.slice(pos, to));
  return nodes.filter((n) => n !== "");
}

function citeMarker(n, claim) {
  const c = citations.get(n);
  if (!c) {  // a number no source has: shown, but it leads nowhere
    const span = el("span", "cite invalid", String(n));
    span.title = `[${n}] points at no retrieved passage`;
    return span;
  }
  const button = citeButton(c, "cite", String(n));
  button.dataset.claim = claim.replace(SPACED_MARKERS, "").trim();
  button.setAttribute("aria-label", `Source ${n}: ${where(c)}`);
  button.title = where(c);
  return button;
}

function citeButton(c, className, label) {
  const button = el("button", className, label);
  button.type = "button";
  button.dataset.n = String(c.n);
  button.setAttribute("aria-controls", "passage");
  button.setAttribute("aria-expanded", "false");
  return button;
}

function where(c) {
  return c.page == null ? c.path : `${c.path}, page ${c.page}`;
}

function showNotes(body) {
  const notes = [];
  const count = body.unsupported.length;
  if (count) {
    notes.push(`${count === 1 ? "One sentence is" : `${count} sentences are`} marked ` +
               "“unsupported”: no passage it cites states it. Check it before you rely on it.");
  }
  if (body.invalid_citations.length) {
    const list = body.invalid_citations.map((n) => `[${n}]`).join(", ");
    notes.push(`The answer cited ${list}, which no retrieved passage has; removed.`);
  }
  $("notes").textContent = notes.join(" ");
  $("notes").hidden = !notes.length;
}

function showSources(title, sources) {
  for (const c of sources) citations.set(c.n, c);
  const items = sources.map((c) => {
    const li = el("li");
    li.value = c.n;
    li.append(citeButton(c, "source-link", c.path));
    if (c.page != null) li.append(el("span", "page", ` · page ${c.page}`));
    return li;
  });
  $("sources-title").textContent = title;
  $("source-list").replaceChildren(...items);
  $("sources").hidden = !items.length;
}

// -- the passage panel -------------------------------------------------------------------------

function togglePassage(button) {
  const panel = $("passage");
  if (button === openButton && !panel.hidden) return closePassage();
  const c = citations.get(Number(button.dataset.n));
  if (!c) return;
  if (openButton) openButton.setAttribute("aria-expanded", "false");
  openButton = button;
  button.setAttribute("aria-expanded", "true");
  $("passage-title").textContent = `Source ${c.n}`;
  const path = el("code", null, c.path);
  path.id = "passage-path";
  const parts = [path];
  if (c.page != null) {
    const page = el("span", null, `page ${c.page}`);
    page.id = "passage-page";
    parts.push(" · ", page);
  }
  parts.push(` · characters ${c.start}–${c.end}`);
  $("passage-where").replaceChildren(...parts);
  const mark = showPassageText(c, button.dataset.claim);
  panel.hidden = false;
  const box = $("passage-text");  // scroll the highlight into the box's view, a third down
  box.scrollTop = mark ? Math.max(0, mark.offsetTop - box.clientHeight / 3) : 0;
  panel.focus({preventScroll: true});
  panel.scrollIntoView({block: "nearest"});
}

// The passage, with the claim that cites it highlighted when the passage states it word for
// word (an extractive answer does; an LLM's paraphrase is not searched for). Returns the
// highlight, if any.
function showPassageText(c, claim) {
  // A PDF's text keeps the page's line breaks, mid-sentence; for reading, a break after a
  // long line that does not end a sentence becomes a space. Only whitespace changes.
  const text = c.path.toLowerCase().endsWith(".pdf")
    ? c.text.replace(/([^\n]{60,}[^.:!?\n])\n(?=[^\s•*-])/g, "$1 ")
    : c.text;
  const {clean, origin} = collapse(text, false);
  const wanted = (claim || "").trim().split(/\s+/).join(" ");
  const at = wanted.length >= 12 ? clean.indexOf(wanted) : -1;  // not "Yes" anywhere
  const box = $("passage-text");
  if (at < 0) {
    box.textContent = text;
    return null;
  }
  const start = origin[at];
  const end = origin[at + wanted.length - 1] + 1;
  const mark = el("mark", null, text.slice(start, end));
  box.replaceChildren(text.slice(0, start), mark, text.slice(end));
  return mark;
}

function closePassage(returnFocus = true) {
  $("passage").hidden = true;
  if (!openButton) return;
  openButton.setAttribute("aria-expanded", "false");
  if (returnFocus && openButton.isConnected) openButton.focus();
  openButton = null;
}

// -- status and errors ---------------------------------------------------------------------------

function showHttpError(status, body) {
  setState("error");
  const detail = Array.isArray(body.detail)  // 422: pydantic's list of errors
    ? body.detail.map((e) => e.msg).join("; ")
    : String(body.detail ?? "no details");
  const what = {
    401: "The service wants its API key: reload the page and give the key as the password.",
    422: "The question was not accepted.",
    502: "The language model failed.",
    503: "The index is not ready.",
    504: "The language model did not answer in time.",
  }[status] || "The service could not answer.";
  showError(`${what} (HTTP ${status}: ${detail})`);
  if (body.sources?.length) {
    showSources("Passages found (no answer was generated)", body.sources);
  } else {
    $("result").hidden = true;  // nothing to show but the error
  }
}

function showStreamError(data) {
  setState("error");
  const p = $("answer").querySelector(".answer-text");
  if (p) p.classList.add("incomplete");
  showError(`The answer stopped midway (${data.status}: ${data.detail}). ` +
            "What arrived is shown as it came, incomplete and unchecked.");
  if (data.sources) showSources("Passages found", data.sources);
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  setStatus("");
}

function setStatus(message) {
  $("status").textContent = message;
}

function setState(state) {
  $("answer").dataset.state = state;
}

function setBusy(busy) {
  $("ask").disabled = busy;
  $("stop").hidden = !busy;
  $("answer").setAttribute("aria-busy", String(busy));  // screen readers wait for the whole answer
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}
