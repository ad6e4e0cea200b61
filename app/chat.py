"""A conversation with the documents in the terminal: each line a question, a follow-up
answered from the turns before it; in-process (no server needed) or with --url against a
running service (sending RAG_API_KEY if set).

Each line is a question. The answer is printed with its sources as `ragfirst ask` prints them,
and, when a follow-up was searched in a standalone form, what was searched. The conversation
is kept in this process' memory only and sent with each question as its history (the service
keeps none); `/new` forgets it. Lines are edited and recalled (up arrow) with readline when
Python has it; the recalled lines are not written to disk, as the service does not log
questions either (RAG_LOG_CONTENT).

`python -m app.chat`, `ragfirst chat`."""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from app.answer import Answer
from app.api.schemas import MAX_HISTORY_TURNS, MAX_TURN_CHARS
from app.ask import ask_service, auth_headers, format_answer, local_service
from app.conversation import Turn
from app.errors import AppError
from app.retrieval import Mode
from app.service import Question
from app.settings import Settings
from ingest.collections import DEFAULT, collection_settings
from ingest.errors import IngestError

PROMPT = "you> "
HELP = """/new    start a new conversation (the earlier turns are forgotten)
/help   this list
/quit   leave (also /exit, Ctrl-D or Ctrl-C at the prompt)
Ctrl-C while an answer is on its way drops that question and keeps the conversation."""

Asker = Callable[[str, Sequence[Turn]], Answer]  # (question, history) -> the answer


class Conversation:
    """The turns so far, oldest first, in memory only."""

    def __init__(self) -> None:
        self.turns: list[Turn] = []

    def history(self) -> tuple[Turn, ...]:
        """What is sent with the next question: the latest MAX_HISTORY_TURNS turns, each cut
        to MAX_TURN_CHARS (what /ask accepts). Turns are added in pairs, so it opens with a
        user turn."""
        return tuple(Turn(t.role, t.content[:MAX_TURN_CHARS])
                     for t in self.turns[-MAX_HISTORY_TURNS:])

    def add(self, question: str, answer: Answer) -> None:
        """A question and its checked answer. An abstention is kept too: the user's next
        question most likely goes on from the one just asked ("And on the Business plan?"),
        answered or not, and leaving it out would make a follow-up borrow the words of an
        older topic; the abstention text tells an LLM condensing the follow-up that nothing
        was found (the model-free rewrite never borrows an abstention's words)."""
        if not answer.text.strip():  # nothing to send: /ask refuses a blank turn
            return
        self.turns += [Turn("user", question), Turn("assistant", answer.text)]

    def clear(self) -> None:
        self.turns.clear()


def _top_k(value: str) -> int:
    n = int(value) if value.strip().isdigit() else 0
    if not 1 <= n <= 50:
        raise argparse.ArgumentTypeError(f"should be a whole number from 1 to 50, not {value!r}")
    return n


def _parse(argv: list[str] | None, prog: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                epilog="Commands at the prompt:\n" + HELP,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--top-k", type=_top_k, default=None,
                   help="sources per answer (default RAG_TOP_K)")
    p.add_argument("--mode", choices=[m.value for m in Mode], default=Mode.HYBRID.value)
    p.add_argument("--url", help="talk to the service running at this URL (e.g. "
                                 "http://127.0.0.1:8000; sends RAG_API_KEY if set) instead "
                                 "of loading the index in-process")
    p.add_argument("--collection", metavar="NAME",
                   help="talk to this collection (RAG_COLLECTIONS_FILE; default: default)")
    return p.parse_args(argv)


def _connect(args: argparse.Namespace, settings: Settings) -> tuple[Asker, Callable[[], None],
                                                                    str]:
    """How questions are asked, how to close what that opened, and what answers them."""
    if args.url:
        headers = auth_headers(settings)

        def remote(question: str, history: Sequence[Turn]) -> Answer:
            return ask_service(args.url, question, args.top_k, args.mode, headers, history,
                               collection=args.collection)

        return remote, lambda: None, args.url
    # Like `ragfirst ask`: the index as it is (`ragfirst ingest` brings it up to date); a
    # commit made while chatting is answered from at the next question.
    if args.collection or settings.collections_file:
        settings = collection_settings(settings, args.collection or DEFAULT)
    service = local_service(settings, say_loading=True)
    top_k, mode = args.top_k or settings.top_k, Mode(args.mode)

    def local(question: str, history: Sequence[Turn]) -> Answer:
        return service.ask(Question(question, top_k, mode, history=tuple(history)))

    return local, service.close, f"the index in {settings.index_dir}"


def _line_editing() -> Callable[[str], None]:
    """Line editing for input(), where Python has readline (importing it turns it on), and
    how to keep a line for up-arrow recall: blank lines and repeats are not kept."""
    try:
        import readline
    except ImportError:  # e.g. Windows without a readline package: plain lines
        return lambda line: None
    readline.set_auto_history(False)  # it would keep "   " too

    def remember(line: str) -> None:
        n = readline.get_current_history_length()
        if not n or readline.get_history_item(n) != line:
            readline.add_history(line)

    return remember


def _ask(ask: Asker, conversation: Conversation, question: str) -> None:
    """One question: its answer printed and kept, or one error line (the chat goes on)."""
    try:
        answer = ask(question, conversation.history())
    except (AppError, IngestError) as exc:  # a 422, no index, the LLM failed, unreachable
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return
    except KeyboardInterrupt:
        print("\n(interrupted: that question was dropped)", file=sys.stderr, flush=True)
        return
    print(format_answer(answer, question), end="\n\n", flush=True)
    conversation.add(question, answer)


def _command(line: str, conversation: Conversation) -> bool:
    """Run a /command; False when it ends the chat."""
    word = line.split()[0].lower()
    if word in ("/quit", "/exit"):
        return False
    if word == "/new":
        conversation.clear()
        print("(new conversation: the earlier turns are forgotten)", flush=True)
    elif word == "/help":
        print(HELP, flush=True)
    else:
        print(f"unknown command {word}; /help lists them", file=sys.stderr, flush=True)
    return True


def chat(ask: Asker, where: str) -> int:
    """The conversation loop: until /quit, /exit, Ctrl-D or Ctrl-C at the prompt."""
    remember = _line_editing()
    print(f"ragfirst chat, answering from {where}. Each line is a question; /help lists "
          "the commands.", flush=True)
    conversation = Conversation()
    while True:
        try:
            line = input(PROMPT).strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not line:
            continue
        remember(line)
        if line.startswith("/"):
            if not _command(line, conversation):
                return 0
            continue
        _ask(ask, conversation, line)


def main(argv: list[str] | None = None, prog: str = "python -m app.chat") -> int:
    args = _parse(argv, prog)
    try:
        ask, close, where = _connect(args, Settings.load())
    except (AppError, IngestError) as exc:  # a setting, no index, the model: one line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return chat(ask, where)
    finally:
        close()


if __name__ == "__main__":
    sys.exit(main())
