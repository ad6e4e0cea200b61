// An answer's text as page nodes: [n] markers become buttons that open the turn's cited
// passage, unsupported sentences are flagged; and a passage with its citing claim highlighted.
// Server text only ever enters the page through textContent / text nodes, never innerHTML.

const MARKER = /\[(\d+(?:\s*,\s*\d+)*)\]/g;  // the server's markers: [1] or [1, 3]
const SPACED_MARKERS = /\s*\[\d+(?:\s*,\s*\d+)*\]/g;  // ...with the spaces before them
const SPACED_MARKER = new RegExp(SPACED_MARKERS.source, "y");  // one, at lastIndex
const NOT_SUPPORTED = "Not supported by the cited sources";

// The answer as nodes: each unsupported sentence in a flagged span, [n] markers as buttons
// for `citations` (n -> citation: this turn's) that control the element `passageId`.
export function renderAnswer(text, unsupported, citations, passageId) {
  const marked = (from, to) => withMarkers(text, from, to, citations, passageId);
  const nodes = [];
  let pos = 0;
  for (const [start, end] of sentenceRanges(text, unsupported)) {
    nodes.push(...marked(pos, start));
    const span = el("span", "unsupported");
    span.title = NOT_SUPPORTED;
    span.append(...marked(start, end));
    const flag = el("span", "flag", "unsupported");
    flag.title = NOT_SUPPORTED;
    flag.append(el("span", "visually-hidden", `: ${NOT_SUPPORTED.toLowerCase()}`));
    nodes.push(span, " ", flag);
    pos = end;
  }
  nodes.push(...marked(pos, text.length));
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
function withMarkers(text, from, to, citations, passageId) {
  const nodes = [];
  let pos = from;
  for (const m of text.slice(from, to).matchAll(MARKER)) {
    const at = from + m.index;
    nodes.push(text.slice(pos, at).replace(/\s+$/, ""));  // the chip hugs its word
    const claim = text.slice(0, at).replace(/^[^]*[.!?]\s+/, "");
    const group = el("span", "cites");
    for (const n of m[1].split(",").map(Number)) {
      group.append(citeMarker(citations.get(n), n, claim, passageId));
    }
    nodes.push(group);
    pos = at + m[0].length;
  }
  nodes.push(text.slice(pos, to));
  return nodes.filter((n) => n !== "");
}

function citeMarker(c, n, claim, passageId) {
  if (!c) {  // a number no source has: shown, but it leads nowhere
    const span = el("span", "cite invalid", String(n));
    span.title = `[${n}] points at no retrieved passage`;
    return span;
  }
  const button = citeButton(c, "cite", String(n), passageId);
  button.dataset.claim = claim.replace(SPACED_MARKERS, "").trim();
  button.setAttribute("aria-label", `Source ${n}: ${where(c)}`);
  button.title = where(c);
  return button;
}

export function citeButton(c, className, label, passageId) {
  const button = el("button", className, label);
  button.type = "button";
  button.dataset.n = String(c.n);
  button.setAttribute("aria-controls", passageId);
  button.setAttribute("aria-expanded", "false");
  return button;
}

export function where(c) {
  return c.page == null ? c.path : `${c.path}, page ${c.page}`;
}

// The passage's text put into `box`, with the claim that cites it highlighted when the
// passage states it word for word (an extractive answer does; an LLM's paraphrase is not
// searched for). Returns the highlight, if any.
export function showPassageText(box, c, claim) {
  // A PDF's text keeps the page's line breaks, mid-sentence; for reading, a break after a
  // long line that does not end a sentence becomes a space. Only whitespace changes.
  const text = c.path.toLowerCase().endsWith(".pdf")
    ? c.text.replace(/([^\n]{60,}[^.:!?\n])\n(?=[^\s•*-])/g, "$1 ")
    : c.text;
  const {clean, origin} = collapse(text, false);
  const wanted = (claim || "").trim().split(/\s+/).join(" ");
  const at = wanted.length >= 12 ? clean.indexOf(wanted) : -1;  // not "Yes" anywhere
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

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}
