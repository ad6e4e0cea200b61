"""Follow-up questions: what to search for when a question leans on the turns before it.

The server is stateless: a client sends the turns before its question (`history`). Most
questions stand alone and are searched as they are. A follow-up ("And for monthly plans?",
"How long does it take?") cannot be retrieved on its own words, so it is searched together
with the content words of the recent user turns: the model-free rewrite, deterministic, in
microseconds, and the fallback when an LLM condenses the question (`Condenser`).

What makes a question a follow-up is decided by its own words, so a user who changes the
subject ("What is reciprocal rank fusion?") is not pulled back to the old topic:
- it points at something said before ("it", "that", "those", "there", "the old one") and
  has few content words of its own (at most 4);
- it has no content word at all ("Why?"), or it opens as a continuation that is a fragment,
  not a whole question ("And for monthly plans?", "What about the Team plan?", "Also for
  seats bought later?");
- or it is short (fewer than 3 content words), or a continuation that goes on as a whole
  question, and shares a content word with the recent user turns ("Monthly plans?" after
  "annual plan"). A new subject ("What is HNSW?", "And how many seats can a Team workspace
  have?") shares none: it stands alone.
The rule is measured on the labelled conversations (`python -m app.eval conversations`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Protocol, Sequence, runtime_checkable

from app.answer import ABSTAIN_ANSWER
from app.text import MARKERS, WORD, terms
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
    r"what else|anything else|as for|in that case)\b", re.IGNORECASE)
# A continuation that goes on as a whole question ("And how many seats can a Team workspace
# have?"), not as a fragment ("And for monthly plans?", "And what about the Team plan?")
_WHOLE_QUESTION = re.compile(
    r"^\s*(and|also|but|or|so|then|plus)\W+(what|how|who|whom|which|when|where|why|is|are|"
    r"was|were|does|do|did|can|could|should|will|would|has|have)\b(?!\W+(about|if)\b)",
    re.IGNORECASE)
POINTERS = frozenset("""it its it's itself that this these those they them their theirs there
one ones same such former latter he she his her him""".split())


@dataclass(frozen=True)
class Turn:
    """One earlier turn of the conversation."""

    role: Role
    content: str


@runtime_checkable
class Condenser(Protocol):
    """A generator that can rewrite a follow-up into a standalone question (an LLM)."""

    def condense(self, question: str, history: Sequence[Turn], deadline: float) -> str:
        """The standalone question, before the monotonic `deadline`; raises GeneratorFailed
        or GeneratorTimeout (the service then falls back to the model-free rewrite)."""
        ...


def leans_on_context(question: str, history: Sequence[Turn]) -> bool:
    """Whether the question is a follow-up that cannot be searched on its own words."""
    words = [m.group().lower() for m in WORD.finditer(fold(question))]
    own = set(terms(" ".join(w for w in words if w not in POINTERS)))
    if any(w in POINTERS for w in words) and len(own) <= POINTER_MAX_OWN_TERMS:
        return True
    fragment = bool(_CONTINUATION.match(question)) and not _WHOLE_QUESTION.match(question)
    if not own or fragment:
        return True
    if len(own) >= SHORT_TERMS and not _CONTINUATION.match(question):
        return False
    # short, or a continuation with words of its own ("And how many seats can a Team
    # workspace have?"): a follow-up only if it shares a word with the recent user turns
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
    answers = [t for t in history if t.role == "assistant"][-1:]
    # an abstention says nothing about the subject; markers are numbers of other sources
    answers = [t for t in answers if not t.content.startswith(ABSTAIN_ANSWER)]
    for turn in turns + answers:
        if turn.role == "assistant" and len(borrowed) >= MIN_FROM_USER_TURNS:
            break
        for m in list(WORD.finditer(MARKERS.sub("", turn.content)))[:SCAN_WORDS]:
            stemmed = terms(m.group())
            if stemmed and stemmed[0] not in have:
                have.add(stemmed[0])
                borrowed.append(m.group())
            if len(borrowed) == MAX_BORROWED:
                return f"{question} {' '.join(borrowed)}"
    return f"{question} {' '.join(borrowed)}" if borrowed else question


MAX_CONDENSED_CHARS = 500
_LABEL = re.compile(r"^(?:standalone question|rewritten question|question)\s*:\s*", re.IGNORECASE)
_THINKING = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)


def clean_condensed(text: str) -> str | None:
    """The question an LLM wrote, or None when it wrote nothing usable (then the model-free
    rewrite is searched). A reasoning model's <think> block is skipped (one left open: None),
    and so are preamble lines ("Sure! Here is the rewritten question:"), a label, quotes
    and markdown emphasis; a line that is a question is preferred."""
    text = _THINKING.sub("", text)
    if re.search(r"<think>", text, re.IGNORECASE):
        return None
    lines = [" ".join(ln.replace("*", "").replace("__", "").split()) for ln in text.splitlines()]
    lines = [_LABEL.sub("", ln).strip().strip('"“”\'`').strip() for ln in lines]
    lines = [ln for ln in lines if ln and not ln.endswith(":")]
    line = next((ln for ln in lines if ln.endswith("?")), lines[0] if lines else "")
    if not terms(line) or len(line) > MAX_CONDENSED_CHARS:
        return None
    return line
