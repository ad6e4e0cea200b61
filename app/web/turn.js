// One turn of the thread on the page: the question, then its answer (streamed in, then the
// checked one), with its own citation buttons, Sources list and passage view: a [n] opens this
// turn's source n, never another turn's. The passage view links to the original file in the
// turn's collection.
import {citeButton, el, renderAnswer, showPassageText} from "./answer.js";
import {documentUrl} from "./http.js";

let made = 0;  // turn views made on this page: each has its own element ids

export class TurnView {
  // `collection`: the one the question was asked of (null: none named, no links to files).
  constructor(question, collection = null) {
    const template = document.getElementById("turn-template");
    this.root = template.content.firstElementChild.cloneNode(true);
    this.citations = new Map();  // n -> citation (or retrieved source) shown in this turn
    this.openButton = null;      // the button whose passage is open
    const id = `turn-${++made}`;
    for (const part of ["passage", "passage-title", "sources-title"]) this.part(part).id = `${id}-${part}`;
    this.passageId = `${id}-passage`;
    this.part("passage").setAttribute("aria-labelledby", `${id}-passage-title`);
    this.part("sources").setAttribute("aria-labelledby", `${id}-sources-title`);
    this.part("question").textContent = question;
    this.question = question;
    this.collection = collection;

    this.part("passage-close").addEventListener("click", () => this.closePassage());
    this.part("passage").addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.closePassage();
    });
    // One listener for every citation button of the turn, in the answer and the source list.
    this.root.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-n]");
      if (button) this.togglePassage(button);
    });
  }

  part(name) {
    return this.root.querySelector(`.${name}`);
  }

  setState(state) {
    this.part("answer").dataset.state = state;
  }

  setBusy(busy) {  // screen readers wait for the whole answer
    this.part("answer").setAttribute("aria-busy", String(busy));
  }

  // While streaming: the raw text so far (markers included), re-rendered when it is done.
  showDelta(text) {
    const answer = this.part("answer");
    let p = answer.querySelector(".answer-text");
    if (!p) answer.replaceChildren(p = el("p", "answer-text"));
    p.textContent = text;
    answer.dataset.deltas = String(Number(answer.dataset.deltas) + 1);
    this.setState("streaming");
  }

  // The turn as it ended (a Thread turn: see thread.js), live or restored from the thread.
  // `live`: it just happened, so an error is announced.
  show(turn, live = false) {
    if (turn.status === "done" || turn.status === "abstained") return this.showAnswer(turn.body);
    const answer = this.part("answer");
    if (turn.partial) {
      const p = el("p", "answer-text incomplete", turn.partial);
      answer.replaceChildren(p);
    } else {
      answer.replaceChildren();
    }
    if (turn.status === "stopped") {
      this.setState("stopped");
      this.showNote(turn.partial
        ? "Stopped before the answer was complete: what arrived is shown as it came, unchecked."
        : "Stopped before an answer arrived.");
    } else {
      this.setState("error");
      const box = this.part("error");
      if (live) box.setAttribute("role", "alert");
      box.textContent = turn.error;
      box.hidden = false;
    }
    if (turn.sources?.length) this.showSources(turn.sourcesTitle || "Passages found", turn.sources);
  }

  showAnswer(body) {
    this.citations = new Map(body.citations.map((c) => [c.n, c]));
    const answer = this.part("answer");
    if (body.abstained) {
      const box = el("div", "abstention");
      box.append(el("p", "abstention-title", "No answer in your documents"),
                 el("p", null, body.answer),
                 el("p", "hint", "No indexed passage matches the question closely enough, so " +
                                 "nothing was generated. Try other words, or check that the " +
                                 "document is in the corpus."));
      answer.replaceChildren(box);
      this.setState("abstained");
    } else {
      const p = el("p", "answer-text");
      p.append(...renderAnswer(body.answer, body.unsupported, this.citations, this.passageId));
      answer.replaceChildren(p);
      this.setState("done");
    }
    this.showSearched(body.retrieval_query);
    this.showNote(notes(body));
    this.showSources("Sources", body.citations);
    const model = body.model ? ` (${body.model})` : "";
    const ms = Math.round(body.timings_ms.total);
    this.part("meta").textContent =
      `${body.generator}${model} · ${ms} ms · index generation ${body.index_generation}`;
  }

  // What was searched, when it is not the question: a follow-up searched in a standalone form.
  showSearched(query) {
    const same = (a, b) => a.split(/\s+/).join(" ") === b.split(/\s+/).join(" ");
    if (!query || same(query.trim(), this.question.trim())) return;
    this.part("searched-query").textContent = query;
    this.part("searched").hidden = false;
  }

  showNote(text) {
    this.part("notes").textContent = text;
    this.part("notes").hidden = !text;
  }

  showSources(title, sources) {
    for (const c of sources) this.citations.set(c.n, c);
    const items = sources.map((c) => {
      const li = el("li");
      li.value = c.n;
      li.append(citeButton(c, "source-link", c.path, this.passageId));
      if (c.page != null) li.append(el("span", "page", ` · page ${c.page}`));
      return li;
    });
    this.part("sources-title").textContent = title;
    this.part("source-list").replaceChildren(...items);
    this.part("sources").hidden = !items.length;
  }

  togglePassage(button) {
    const panel = this.part("passage");
    if (button === this.openButton && !panel.hidden) return this.closePassage();
    const c = this.citations.get(Number(button.dataset.n));
    if (!c) return;
    if (this.openButton) this.openButton.setAttribute("aria-expanded", "false");
    this.openButton = button;
    button.setAttribute("aria-expanded", "true");
    this.part("passage-title").textContent = `Source ${c.n}`;
    const parts = [el("code", "passage-path", c.path)];
    if (c.page != null) parts.push(" · ", el("span", "passage-page", `page ${c.page}`));
    parts.push(` · characters ${c.start}–${c.end}`);
    this.part("passage-where").replaceChildren(...parts);
    this.linkOriginal(c);
    const box = this.part("passage-text");
    const mark = showPassageText(box, c, button.dataset.claim);
    panel.hidden = false;
    // scroll the highlight into the box's view, a third down
    box.scrollTop = mark ? Math.max(0, mark.offsetTop - box.clientHeight / 3) : 0;
    panel.focus({preventScroll: true});
    panel.scrollIntoView({block: "nearest"});
  }

  // "Open the original": the file as it was uploaded, a PDF at the cited page.
  linkOriginal(c) {
    const link = this.part("passage-open");
    link.hidden = !this.collection;
    if (!this.collection) return;
    link.href = documentUrl(this.collection, c.path) + (c.page != null ? `#page=${c.page}` : "");
  }

  closePassage(returnFocus = true) {
    this.part("passage").hidden = true;
    if (!this.openButton) return;
    this.openButton.setAttribute("aria-expanded", "false");
    if (returnFocus && this.openButton.isConnected) this.openButton.focus();
    this.openButton = null;
  }
}

function notes(body) {
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
  return notes.join(" ");
}
