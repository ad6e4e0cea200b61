// What the page's calls to the service share: reading a JSON body whatever came back, the
// words of an error body, and the address of a collection's document.

// The response's JSON body, or {detail} when it has none (a proxy's HTML error page).
export async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return {detail: response.statusText || "no details"};
  }
}

// An error body's `detail` as one line: a string, or pydantic's list of problems (422).
export function detailText(body) {
  const detail = body?.detail;
  if (Array.isArray(detail)) return detail.map((e) => e.msg ?? String(e)).join("; ");
  return String(detail ?? "no details");
}

// What a status means for the page's own calls, in words (the caller adds the details).
export const STATUS_WORDS = {
  401: "The service wants its API key: reload the page and give the key as the password.",
  403: "This key may read this collection but not change it.",
  404: "This collection or document is not there (or this key cannot see it).",
  413: "Too large for the service.",
  503: "The index is not ready.",
};

// GET/DELETE /collections/{name}/documents/{path}: each segment of the path encoded on its
// own, so "notes/a b.md" stays two segments and a "#" or "?" in a name stays in the name.
export function documentUrl(collection, path) {
  return `${collectionUrl(collection)}/documents/` +
         path.split("/").map(encodeURIComponent).join("/");
}

export function collectionUrl(collection) {
  return `/collections/${encodeURIComponent(collection)}`;
}
