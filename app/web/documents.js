// The documents panel: what the current collection holds (GET /documents?collection=), what
// its last ingest refused and why, a Delete for each file when the key may write, and the
// upload controls (upload.js). Refreshed when it is opened, after an upload or a delete, and
// when the collection changes. Server text enters the page through textContent only.
import {el} from "./answer.js";
import {detailText, documentUrl, readJson, STATUS_WORDS} from "./http.js";
import {keepFocus, Uploader} from "./upload.js";

const $ = (id) => document.getElementById(id);

export class DocumentsPanel {
  constructor(collections) {
    this.collections = collections;
    this.root = $("documents");  // a <details>, closed at first: the chat comes first
    this.asked = 0;              // listings asked for: an answer to an older one is dropped
    this.listingFailed = false;  // the status says the last listing failed
    this.uploader = new Uploader(collections, {
      uploaded: () => this.refresh(),
      reveal: () => this.reveal(),
      refuse: (message) => { this.reveal(); this.setStatus(message); },
    });
    this.root.addEventListener("toggle", () => this.root.open && this.refresh());
    $("document-list").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-path]");
      if (button) this.remove(button.dataset.path);
    });
  }

  // The page is on a (new) collection: its counts as /collections gave them until listed.
  show() {
    const c = this.collections.current;
    this.uploader.reset();
    $("upload").hidden = !this.collections.writable;
    $("document-table").hidden = $("refused").hidden = $("documents-empty").hidden = true;
    this.setStatus("");
    this.summarise(c?.documents, c?.chunks, 0, c?.ready === false);
    if (this.root.open) this.refresh();
  }

  async refresh() {
    const c = this.collections.current;
    if (!c) return;
    const mine = ++this.asked;
    const query = this.collections.requested ? `?collection=${encodeURIComponent(c.name)}` : "";
    let response, body;
    try {
      response = await fetch(`/documents${query}`, {headers: {Accept: "application/json"}});
      body = await readJson(response);
    } catch (err) {
      body = {detail: err.message};
    }
    if (mine !== this.asked) return;  // the collection changed, or a newer listing is coming
    if (!response?.ok) {
      const what = STATUS_WORDS[response?.status] || "The documents could not be listed.";
      this.setStatus(`${what} (${response ? `HTTP ${response.status}: ` : ""}` +
                     `${detailText(body)})`);
      this.listingFailed = true;
      return;
    }
    if (this.listingFailed) this.setStatus("");  // what a delete or a drop said stays
    this.render(body);
  }

  render(body) {
    const writable = this.collections.writable;
    const rows = body.documents.map((d) => {
      const link = el("a", null, d.path);
      link.href = documentUrl(this.collections.current.name, d.path);
      link.target = "_blank";
      link.rel = "noopener";
      const size = el("td", "number", humanSize(d.size));
      size.title = `${d.size.toLocaleString()} bytes`;
      const cells = [cell("th", "path", link), el("td", "kind", d.kind), size,
                     el("td", "number", String(d.chunks)), el("td", "when", localTime(d.ingested_at))];
      if (writable) {
        const button = el("button", "link-button delete", "Delete");
        button.type = "button";
        button.dataset.path = d.path;
        button.setAttribute("aria-label", `Delete ${d.path}`);
        cells.push(cell("td", "actions", button));
      }
      cells[0].scope = "row";
      const row = el("tr");
      row.append(...cells);
      return row;
    });
    $("document-list").replaceChildren(...rows);
    $("document-actions-head").hidden = !writable;
    $("document-table").hidden = !rows.length;
    $("documents-empty").textContent = writable
      ? "No documents yet: add files, or drop them on the page."
      : "No documents in this collection yet.";
    $("documents-empty").hidden = rows.length > 0;
    const refused = body.refused.map((f) => {
      const li = el("li");
      li.append(el("code", null, f.path), el("span", "reason", ` — ${f.reason}`));
      return li;
    });
    $("refused-list").replaceChildren(...refused);
    $("refused").hidden = !refused.length;
    const chunks = body.documents.reduce((sum, d) => sum + d.chunks, 0);
    this.summarise(body.documents.length, chunks, refused.length, false);
    // what the summary says when the page comes back to this collection
    Object.assign(this.collections.current, {documents: body.documents.length, chunks,
                                             ready: true});
  }

  async remove(path) {
    const name = this.collections.current.name;
    if (!window.confirm(`Delete “${path}” from “${name}”? The file and its passages go; ` +
                        "answers will no longer cite it.")) return;
    let response, body;
    try {
      response = await fetch(documentUrl(name, path), {method: "DELETE"});
      body = await readJson(response);
    } catch (err) {
      return this.setStatus(`Could not reach the service: ${err.message}`);
    }
    if (response.ok) this.setStatus(`Deleted ${path}.`);
    else if (response.status === 404) this.setStatus(`${path} was already gone.`);
    else this.setStatus(`${STATUS_WORDS[response.status] || "Could not delete it."} ` +
                        `(HTTP ${response.status}: ${detailText(body)})`);
    await this.refresh();
    keepFocus(this.root.querySelector("summary"));  // its Delete button went with its row
  }

  reveal() {
    this.root.open = true;
    this.root.scrollIntoView({block: "nearest"});
  }

  summarise(documents, chunks, refused, notReady) {
    const name = this.collections.current?.name;
    const parts = [];
    if (this.collections.all.length > 1 && name) parts.push(name);
    if (notReady) parts.push("not indexed yet");
    else if (documents != null) parts.push(plural(documents, "file"), plural(chunks, "passage"));
    if (refused) parts.push(`${refused} not indexed`);
    $("documents-summary").textContent = parts.length ? `(${parts.join(" · ")})` : "";
  }

  setStatus(message) {
    $("documents-status").textContent = message;
    this.listingFailed = false;
  }
}

function cell(tag, className, child) {
  const node = el(tag, className);
  node.append(child);
  return node;
}

function plural(n, word) {
  return `${n.toLocaleString()} ${word}${n === 1 ? "" : "s"}`;
}

// 1536 -> "1.5 KB": binary units, as file managers show them; the exact count is the title.
export function humanSize(bytes) {
  const units = ["bytes", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) return `${bytes} ${bytes === 1 ? "byte" : "bytes"}`;
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

// An ISO time in the reader's own time zone and way of writing dates.
function localTime(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return iso;
  return when.toLocaleString(undefined, {dateStyle: "medium", timeStyle: "short"});
}
