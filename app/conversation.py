"""Follow-up questions: what to search for when a question leans on the turns before it.

The server is stateless: a client sends the turns before its question (`history`). Most
questions stand alone and are searched as they are. A follow-up ("And for monthly plans?",
"How long does it take?") cannot be retrieved on its own words, so it is searched together
with the content words of the recent user turns: the model-free rewrite, deterministic, in
microseconds, and the fallback when an LLM condenses the question (`Condenser`).

What makes a question a follow-up is decided by its own words, so a user who changes the
subject ("What is reciprocal rank fusion?") is not pulled back to the old topic:
- it opens as a continuation ("and", "what about", "also", "but", "or", "so", ...);
- it points at something said before ("it", "that", "those", "there", "the same") and has
  few content words of its own (at most 4);
- or it is too short to search alone (fewer than 3 content words) and either has none at
  all ("Why?") or shares one with the recent user turns ("Monthly plans?" after "annual
  plan"). A short question on a new subject ("What is HNSW?") shares none: it stands alone.
The rule is measured on the labelled conversations (`python -m app.eval conversations`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Protocol, Sequence

from app.text import WORD, terms
from ingest.text import fold

Role = Literal["user", "assistant"]

RECENT_USER_TURNS = 3  # user turns a follow-up may borrow words from, the latest first
MAX_BORROWED = 12  # content words added to a follow-up
MIN_FROM_USER_TURNS = 4  # fewer than this from the user turns: the last answer tops them up
SCAN_WORDS = 200  # words read from each turn (a pasted page is not read whole)
POINTER_MAX_OWN_TERMS = 4
SHORT_TERMS = 3

_CONTINUATION = re.compile(
    r"^\s*(and|also|but|or|so|then|plus|what about|how about|what if|same for|"
    r"what else|anything else|and what|and how|as for|in that case)\b", re.IGNORECASE)
POINTERS = frozenset("""it its it's itself that this these those they them their theirs there
one ones same such former latter he she his her him""".split())


@dataclass(frozen=True)
class Turn:
    """One earlier turn of the conversation."""

    role: Role
    content: str


class Condenser(Protocol):
    """A generator that can rewrite a follow-up into a standalone question (an LLM)."""

    def condense(self, question: str, history: Sequence[Turn], deadline: float) -> str:
        """The standalone question, before the monotonic `deadline`; raises GeneratorFailed
        or GeneratorTimeout (the service then falls back to the model-free rewrite)."""
        ...


def leans_on_context(question: str, history: Sequence[Turn]) -> bool:
    """Whether the question is a follow-up that cannot be searched on its own words."""
    if _CONTINUATION.match(question):
        return True
    words = [m.group().lower() for m in WORD.finditer(fold(question))]
    own = set(terms(" ".join(w for w in words if w not in POINTERS)))
    if any(w in POINTERS for w in words) and len(own) <= POINTER_MAX_OWN_TERMS:
        return True
    if len(own) >= SHORT_TERMS:
        return False
    if not own:
        return True
    users = [t for t in history if t.role == "user"][-RECENT_USER_TURNS:]
    earlier = {t for turn in users for t in terms(turn.content)}
    return bool(own & earlier)


def _recent_user_turns(history: Sequence[Turn]) -> list[Turn]:
    """The user turns a follow-up refers to, the latest first: the last one, and the ones
    before it while each was itself a follow-up (at most RECENT_USER_TURNS)."""
    users = [t for t in history if t.role == "user"]
    chain: list[Turn] = []
    while users and len(chain) < RECENT_USER_TURNS:
        turn = users.pop()
        chain.append(turn)
        if not users or not leans_on_context(turn.content, users):
            break
    return chain


def retrieval_query(question: str, history: Sequence[Turn]) -> str:
    """What to search for: the question itself, or, for a follow-up, the question followed by
    the content words it does not already hold of the user turns it refers to (the latest
    first), topped up from the last answer when those are few ("What is RAFT?"), at most
    MAX_BORROWED in all."""
    if not history or not leans_on_context(question, history):
        return question
    have = set(terms(question))
    borrowed: list[str] = []
    turns = _recent_user_turns(history)
    last_answer = next((t for t in reversed(history) if t.role == "assistant"), None)
    for turn in turns + ([last_answer] if last_answer else []):
        if turn is last_answer and len(borrowed) >= MIN_FROM_USER_TURNS:
            break
        for m in list(WORD.finditer(turn.content))[:SCAN_WORDS]:
            stemmed = terms(m.group())
            if stemmed and stemmed[0] not in have:
                have.add(stemmed[0])
                borrowed.append(m.group())
            if len(borrowed) == MAX_BORROWED:
                return f"{question} {' '.join(borrowed)}"
    return f"{question} {' '.join(borrowed)}" if borrowed else question


# The condensing prompt. Assistant turns lose their [n] markers (they number other turns'
# sources); the history is cut to a budget, the latest turns kept.
CONDENSE_SYSTEM = """You rewrite the user's last question into one standalone question that can be understood without the conversation.
Rules:
- Resolve what "it", "that", "and for ..." and similar words refer to, using the conversation.
- Keep the user's language, wording and meaning. Do not answer the question.
- If the question already stands alone, repeat it unchanged.
- Reply with the rewritten question only."""
CONDENSE_TOKENS = 64  # a standalone question, not an essay
CONDENSE_HISTORY_CHARS = 4000
MAX_CONDENSED_CHARS = 500
MARKERS = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")  # [1], [2, 3]
_LABEL = re.compile(r"^\s*(?:standalone question|rewritten question|question)\s*:\s*",
                    re.IGNORECASE)


def condense_messages(question: str, history: Sequence[Turn]) -> list[dict[str, str]]:
    """Chat messages asking an LLM for the standalone form of `question`."""
    lines: list[str] = []
    budget = CONDENSE_HISTORY_CHARS
    for turn in reversed(history):
        text = " ".join(MARKERS.sub("", turn.content).split())[: CONDENSE_HISTORY_CHARS // 2]
        if len(text) > budget:
            break
        budget -= len(text)
        lines.append(f"{turn.role.capitalize()}: {text}")
    conversation = "\n".join(reversed(lines))
    return [{"role": "system", "content": CONDENSE_SYSTEM},
            {"role": "user", "content": f"Conversation:\n{conversation}\n\n"
                                        f"Last question: {question}\n\nStandalone question:"}]


def clean_condensed(text: str) -> str | None:
    """The question an LLM wrote (its first line, without a label or quotes), or None when
    it wrote nothing usable (then the model-free rewrite is used)."""
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    line = _LABEL.sub("", line).strip().strip('"“”\'`').strip()
    if not terms(line) or len(line) > MAX_CONDENSED_CHARS:
        return None
    return line
