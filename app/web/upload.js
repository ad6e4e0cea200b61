// Adding files to the current collection, from the file input or dropped anywhere on the
// page: one multipart POST /collections/{name}/documents per batch, sent with XMLHttpRequest
// because fetch reports no upload progress. Then each file's outcome from the response:
// added, replaced, unchanged, refused (with the reason), or already there, with "Replace" to
// send it again with overwrite=true. A dropped folder's files keep their sub-folders in their
// names. Batches go one after another.
import {el} from "./answer.js";
import {collectionUrl, detailText, STATUS_WORDS} from "./http.js";

const $ = (id) => document.getElementById(id);
const SAID = {
  added: "added", replaced: "replaced", unchanged: "unchanged: already indexed as it is",
  refused: "refused", exists: "already there",
};

export class Uploader {
  // `uploaded()` after each batch (the listing refreshes), `reveal()` shows the panel the
  // results are in, `refuse(message)` says why a drop was not taken.
  constructor(collections, {uploaded, reveal, refuse}) {
    this.collections = collections;
    this.uploaded = uploaded;
    this.reveal = reveal;
    this.queue = Promise.resolve();
    this.results = new Map();  // path -> {entry: {name, file}, result}, the latest batches'
    $("upload-button").addEventListener("click", () => $("upload-input").click());
    $("upload-input").addEventListener("change", () => {
      const files = [...$("upload-input").files].map((file) => ({name: file.name, file}));
      $("upload-input").value = "";  // the same file can be picked again
      this.add(files);
    });
    $("upload-results").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-replace]");
      if (!button) return;
      const paths = button.dataset.replace === "*" ? this.waiting() : [button.dataset.replace];
      this.add(paths.map((p) => this.results.get(p).entry), true);
    });
    watchDrops(collections, (entries) => this.add(entries), refuse);
  }

  // A batch to send after those already queued; `overwrite`: a Replace of files sent before.
  add(entries, overwrite = false) {
    if (!entries.length) return;
    this.reveal();
    const collection = this.collections.current.name;
    this.queue = this.queue.then(() => this.send(collection, entries, overwrite))
      .catch((err) => this.setStatus(`The upload failed: ${err.message}`));
  }

  async send(collection, entries, overwrite) {
    if (!overwrite) {  // a new batch: the last one's outcomes go, now rather than when it ends
      this.results.clear();
      this.render();
    }
    const form = new FormData();
    for (const {name, file} of entries) form.append("file", file, name);
    if (overwrite) form.append("overwrite", "true");
    const what = entries.length === 1 ? entries[0].name : `${entries.length} files`;
    this.setStatus(`Uploading ${what} to “${collection}”…`);
    const progress = $("upload-progress");
    progress.value = 0;
    progress.hidden = false;
    const {status, body} = await post(`${collectionUrl(collection)}/documents`, form, (part) => {
      if (part != null) progress.value = part;
      else progress.removeAttribute("value");  // all sent: the server ingests, for how long?
      if (part == null) this.setStatus(`Adding ${what} to the index of “${collection}”…`);
    });
    progress.hidden = true;
    const here = collection === this.collections.current.name;  // not switched meanwhile
    if (Array.isArray(body?.files)) {
      const byName = new Map(entries.map((e) => [e.name, e]));
      body.files.forEach((result, i) => {  // by name, or else in the order they were sent
        this.results.set(result.path, {entry: byName.get(result.path) ?? entries[i], result});
      });
      if (here) {
        this.render();
        keepFocus($("upload-button"));  // after a Replace, its button is gone
      }
      this.setStatus(`“${collection}”: ${tally(body.files)}.`);
    } else {
      const words = status === 0 ? "The upload did not reach the service."
                                 : STATUS_WORDS[status] || "The upload was not accepted.";
      this.setStatus(`${words} (${status ? `HTTP ${status}: ` : ""}${detailText(body)})`);
    }
    if (here) await this.uploaded();
  }

  render() {
    const items = [...this.results.values()].map(({result}) => {
      const li = el("li", `upload-${result.status}`);
      li.append(el("code", null, result.path), " ",
                el("span", "outcome", SAID[result.status] || result.status));
      if (result.chunks != null && result.status !== "refused") {
        li.append(` · ${result.chunks} passage${result.chunks === 1 ? "" : "s"}`);
      }
      // why it was refused; an "exists" carries one too, which the Replace button says better
      if (result.reason && result.status === "refused") {
        li.append(el("span", "reason", ` — ${result.reason}`));
      }
      if (result.status === "exists") li.append(" ", replaceButton(result.path, "Replace",
                                                                   `Replace ${result.path}`));
      return li;
    });
    const waiting = this.waiting();
    if (waiting.length > 1) {
      const li = el("li", "replace-all");
      li.append(replaceButton("*", `Replace all ${waiting.length}`));
      items.push(li);
    }
    $("upload-results").replaceChildren(...items);
  }

  waiting() {  // the files that were already there and not replaced yet
    return [...this.results.values()].filter((r) => r.result.status === "exists")
      .map((r) => r.result.path);
  }

  reset() {
    this.results.clear();
    $("upload-results").replaceChildren();
    this.setStatus("");
  }

  setStatus(message) {
    $("upload-status").textContent = message;
  }
}

// When the focused button went with what it acted on, the focus goes to `fallback` rather
// than to the start of the page.
export function keepFocus(fallback) {
  if (!document.activeElement || document.activeElement === document.body) {
    fallback.focus({preventScroll: true});
  }
}

function replaceButton(path, label, ariaLabel) {
  const button = el("button", "link-button", label);
  button.type = "button";
  button.dataset.replace = path;
  if (ariaLabel) button.setAttribute("aria-label", ariaLabel);
  return button;
}

// "1 added, 2 already there": the outcomes counted, in the order they first came.
function tally(files) {
  const counts = new Map();
  for (const f of files) counts.set(f.status, (counts.get(f.status) || 0) + 1);
  return [...counts].map(([s, n]) => `${n} ${s === "unchanged" ? "unchanged" : SAID[s] || s}`)
    .join(", ");
}

// POST `form` to `url`; `progress(part)` hears the share sent (0..1), then null once all of it
// is sent. Resolves {status, body} (status 0: no answer came).
function post(url, form, progress) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (e) => e.lengthComputable && progress(e.loaded / e.total));
    xhr.upload.addEventListener("load", () => progress(null));
    xhr.addEventListener("load", () => resolve({status: xhr.status, body: parse(xhr)}));
    xhr.addEventListener("error", () => resolve({status: 0, body: {detail: "connection failed"}}));
    xhr.addEventListener("abort", () => resolve({status: 0, body: {detail: "aborted"}}));
    xhr.send(form);
  });
}

function parse(xhr) {
  try {
    return JSON.parse(xhr.responseText);
  } catch {
    return {detail: xhr.statusText || "no details"};
  }
}

// Files dragged over the page: a banner says where they go, and a drop adds them. A drop is
// always taken, even when the key may not write: the browser would otherwise leave the page
// to open the file.
function watchDrops(collections, dropped, refuse) {
  let depth = 0;  // dragenter/dragleave pairs: each child element entered counts
  const carriesFiles = (event) => event.dataTransfer?.types.includes("Files");
  const show = (on) => {
    document.body.classList.toggle("dropping", on && collections.writable);
    $("drop-target").textContent = `Drop to add to “${collections.current?.name}”`;
  };
  document.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth++;
    show(true);
  });
  document.addEventListener("dragover", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = collections.writable ? "copy" : "none";
  });
  document.addEventListener("dragleave", (event) => {
    if (carriesFiles(event) && --depth <= 0) show(false);
  });
  document.addEventListener("drop", async (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth = 0;
    show(false);
    if (!collections.current) return refuse("There is no collection to add files to.");
    if (!collections.writable) {
      return refuse(`This key may read “${collections.current.name}” but not add files to it.`);
    }
    dropped(await droppedFiles(event.dataTransfer));
  });
}

// The files of a drop, [{name, file}], a folder's with their paths inside it. The items must
// be read before the drop handler returns: the browser empties them after.
async function droppedFiles(transfer) {
  const items = [...transfer.items].filter((item) => item.kind === "file")
    .map((item) => [item.webkitGetAsEntry?.(), item.getAsFile()]);
  const entries = [];
  for (const [entry, file] of items) {
    if (entry?.isDirectory) entries.push(...await folderFiles(entry, `${entry.name}/`));
    else if (file) entries.push({name: file.name, file});
  }
  return entries;
}

async function folderFiles(folder, prefix) {
  const reader = folder.createReader();
  const children = [];
  for (;;) {  // readEntries gives a folder's entries a batch at a time, then an empty one
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) break;
    children.push(...batch);
  }
  const entries = [];
  for (const child of children) {
    if (child.isDirectory) {
      entries.push(...await folderFiles(child, `${prefix}${child.name}/`));
    } else {
      const file = await new Promise((resolve, reject) => child.file(resolve, reject));
      entries.push({name: `${prefix}${child.name}`, file});
    }
  }
  return entries;
}
