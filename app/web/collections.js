// The collections this key can read (GET /collections) and the one the page is on: a
// <select>, hidden when there is only one to pick, its choice kept in the tab's sessionStorage
// (a reload keeps it, as it keeps the thread, which belongs to one collection: see app.js).
import {detailText, readJson, STATUS_WORDS} from "./http.js";

const KEY = "ragfirst.collection.v1";
const DEFAULT = "default";  // the service's collection when a request names none

export class Collections {
  constructor(select, picker, storage = safeSessionStorage()) {
    this.select = select;    // the <select>
    this.picker = picker;    // what holds it and its label: hidden with one collection
    this.storage = storage;
    this.all = [];           // GET /collections' entries
    this.current = null;     // the entry asked, or a stand-in when the listing failed
    this.listed = false;     // the service listed them (so requests name the collection)
    this.listeners = [];
    select.addEventListener("change", () => this.pick(select.value));
  }

  // List them and pick the kept choice (or "default", or the first). Returns an error
  // message ("" when all went well); the page then stays on the default collection, read only.
  async load() {
    let problem = "";
    try {
      const response = await fetch("/collections", {headers: {Accept: "application/json"}});
      const body = await readJson(response);
      if (response.ok && Array.isArray(body.collections)) {
        this.all = body.collections;
        this.listed = true;
      } else {
        problem = `${STATUS_WORDS[response.status] || "The collections could not be listed."} ` +
                  `(HTTP ${response.status}: ${detailText(body)})`;
      }
    } catch (err) {
      problem = `Could not list the collections: ${err.message}`;
    }
    if (!this.listed) this.all = [{name: DEFAULT, access: "read"}];
    const kept = this.kept();
    const names = this.all.map((c) => c.name);
    const name = names.includes(kept) ? kept : names.includes(DEFAULT) ? DEFAULT : names[0];
    this.render();
    if (name != null) this.pick(name, false);
    if (this.listed && !this.all.length) problem = "This key can read no collection.";
    return problem;
  }

  render() {
    const options = this.all.map((c) => {
      const option = document.createElement("option");
      option.value = option.textContent = c.name;
      return option;
    });
    this.select.replaceChildren(...options);
    this.picker.hidden = this.all.length < 2;
  }

  // Switch to `name`; `announce`: the user chose it, so the listeners hear of it.
  pick(name, announce = true) {
    const entry = this.all.find((c) => c.name === name);
    if (!entry || entry === this.current) return;
    this.current = entry;
    this.select.value = name;
    try {
      this.storage?.setItem(KEY, name);
    } catch { /* storage refused: the choice lasts until the page is reloaded */ }
    if (announce) for (const listener of this.listeners) listener(entry);
  }

  onChange(listener) {
    this.listeners.push(listener);
  }

  // The current collection may be changed with this key (upload, delete).
  get writable() {
    return ["write", "admin"].includes(this.current?.access);
  }

  // What a request names: nothing when the service did not list collections (its one index).
  get requested() {
    return this.listed ? this.current?.name ?? null : null;
  }

  kept() {
    try {
      return this.storage?.getItem(KEY) ?? null;
    } catch {
      return null;
    }
  }
}

function safeSessionStorage() {
  try {
    return window.sessionStorage;  // throws where storage is disabled
  } catch {
    return null;
  }
}
