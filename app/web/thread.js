// The conversation on the page: its turns, kept in sessionStorage (a reload of the tab keeps
// them, a new tab starts empty) and turned into the `history` that POST /ask takes. No DOM here.
//
// A turn is {question, collection, status, ...}: `collection` is the one it was asked of (the
// page starts a new thread for another one); status "pending" while it is being answered, then
//   "done"      with `body`, the `done` event's whole response (answer, citations, ...);
//   "abstained" with `body` too (the documents did not contain the answer);
//   "error"     with `error` (the message shown), and maybe `sources` and `partial` text;
//   "stopped"   with maybe `partial`: stopped by the user, or by a reload mid-answer.

const KEY = "ragfirst.thread.v1";
export const MAX_HISTORY_TURNS = 50;  // the server's limits (app/api/schemas.py)
export const MAX_TURN_CHARS = 8000;
// A character that shows something: the server's VISIBLE class, which refuses blank turns.
const VISIBLE = /[^\s\x00-\x1f\x7f-\x9f\u00ad\u061c\u115f\u1160\u180e\u200b-\u200f\u2028-\u202f\u205f-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb]/;

export class Thread {
  constructor(storage = safeSessionStorage()) {
    this.storage = storage;
    this.turns = load(storage);
  }

  add(question, collection = null) {
    const turn = {question, collection, status: "pending"};
    this.turns.push(turn);
    this.save();
    return turn;
  }

  // Finish `turn` with its outcome ({status, body} or {status, error, ...}) and keep it.
  finish(turn, outcome) {
    Object.assign(turn, outcome);
    this.save();
  }

  clear() {
    this.turns = [];
    try {
      this.storage?.removeItem(KEY);
    } catch { /* storage refused: nothing was kept */ }
  }

  // The turns to send before a new question, oldest first, as the server wants them: at most
  // the latest MAX_HISTORY_TURNS, each cut to MAX_TURN_CHARS characters.
  // - answered: the question, then the checked answer (the `done` event's, [n] markers and
  //   all: the server strips them where they would mislead);
  // - abstained: the question only. The abstention is the server's fixed sentence: it states
  //   no fact, and the model-free rewrite would borrow its words ("documents", "contain") to
  //   search a short follow-up with.
  // - failed or stopped: nothing. There is no checked answer, and the user usually asks again.
  history() {
    const messages = [];
    for (const turn of this.turns) {
      if (turn.status !== "done" && turn.status !== "abstained") continue;
      messages.push({role: "user", content: turn.question});
      if (turn.status === "done") messages.push({role: "assistant", content: turn.body.answer});
    }
    return messages
      .map((m) => ({role: m.role, content: cut(m.content, MAX_TURN_CHARS)}))
      .filter((m) => VISIBLE.test(m.content))  // an answer whose every sentence was dropped
      .slice(-MAX_HISTORY_TURNS);
  }

  // Keep the thread; when the storage is full, the oldest turns are left out of the kept copy
  // (the page still shows them until it is reloaded).
  save() {
    if (!this.storage) return;
    for (let from = 0; from <= this.turns.length; from++) {
      try {
        if (from === this.turns.length) this.storage.removeItem(KEY);
        else this.storage.setItem(KEY, JSON.stringify({turns: this.turns.slice(from)}));
        return;
      } catch { /* over the quota: try with fewer turns */ }
    }
  }
}

// At most `max` characters, counted as the server counts them (code points, so an emoji is
// one and never cut in half: half of one is a lone surrogate, which the server refuses).
export function cut(text, max) {
  if (text.length <= max) return text;
  return Array.from(text).slice(0, max).join("");
}

function load(storage) {
  let turns;
  try {
    turns = JSON.parse(storage?.getItem(KEY) ?? "{}").turns;
  } catch {
    return [];  // unreadable: start afresh rather than fail the page
  }
  if (!Array.isArray(turns)) return [];
  return turns.filter(wellFormed).map((turn) => turn.status === "pending"
    ? {...turn, status: "stopped"}  // the page was reloaded while it was being answered
    : turn);
}

function wellFormed(turn) {
  if (!turn || typeof turn.question !== "string") return false;
  if (turn.status === "done" || turn.status === "abstained") {
    return typeof turn.body?.answer === "string" && Array.isArray(turn.body.citations);
  }
  return ["pending", "error", "stopped"].includes(turn.status);
}

function safeSessionStorage() {
  try {
    return window.sessionStorage;  // throws where storage is disabled
  } catch {
    return null;
  }
}
