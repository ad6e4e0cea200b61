"""`ragfirst chat` driven through a real pseudo-terminal (pexpect), as a user types into it:
against the running starter service over --url with its key, and in-process on a copy of the
starter index. The command runs as `python -m app.cli chat` (what the installed `ragfirst`
script calls), on this checkout's code."""
from __future__ import annotations

import re
import socket
import subprocess

import pytest

from tests.helpers import PYTHON, REFUND_QUESTION, ROOT, STARTER_KEY, subprocess_env
from tests.service_process import copy_starter, free_port

pexpect = pytest.importorskip("pexpect")

PROMPT = "you> "
FOLLOW_UP = "And for monthly plans?"
UP_ARROW = "\x1b[A"
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")  # what readline draws besides the text


def spawn(*args: str, **env: str) -> "pexpect.spawn":
    """The chat in a pseudo-terminal, waiting at its first prompt."""
    child = pexpect.spawn(PYTHON, ["-m", "app.cli", "chat", *args], cwd=str(ROOT),
                          env=subprocess_env(**env), encoding="utf-8", timeout=120,
                          dimensions=(40, 200))
    child.expect_exact(PROMPT, timeout=300)  # in-process, the models load first
    return child


def turn(child: "pexpect.spawn", line: str) -> str:
    """Type a line and Enter; what the chat printed before its next prompt (the echoed line
    first), without the terminal's escape sequences."""
    child.sendline(line)
    child.expect_exact(PROMPT)
    return ESCAPES.sub("", child.before)


def ended(child: "pexpect.spawn") -> int:
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus


def searched(output: str) -> str | None:
    m = re.search(r"^searched: (.*)$", output, re.MULTILINE)
    return m.group(1) if m else None


@pytest.mark.slow
def test_a_conversation_over_http_follow_ups_new_and_line_recall(starter_service):
    child = spawn("--url", starter_service, RAG_API_KEY=STARTER_KEY)
    first = turn(child, REFUND_QUESTION)
    assert "30 days" in first and "kestrelbook/refund-policy.md" in first
    assert re.search(r"^\[1\] kestrelbook/", first, re.MULTILINE)  # sources, as ask prints
    assert searched(first) is None  # a first question is searched as it is

    follow = turn(child, FOLLOW_UP)  # answered with the history: the refund question's topic
    assert "7 days" in follow and "kestrelbook/refund-policy.md" in follow
    assert searched(follow).startswith(FOLLOW_UP) and "refund" in searched(follow)

    assert turn(child, "").strip() == ""  # a blank line: no answer, no error, no request
    assert turn(child, "   ").strip() == ""

    child.send(UP_ARROW)  # readline recalls the last question (not the blank lines), and
    #                       Enter asks it again
    child.expect_exact(FOLLOW_UP)
    again = turn(child, "")
    assert "7 days" in again and searched(again)

    assert "/new" in turn(child, "/help") and "/quit" in child.before
    assert "new conversation" in turn(child, "/new")
    alone = turn(child, FOLLOW_UP)  # no history now: searched on its own words
    assert searched(alone) in (None, FOLLOW_UP) and "error" not in alone

    too_long = turn(child, "why " * 600)  # over /ask's 2,000 characters: a 422, one line
    assert "error: HTTP 422" in too_long and too_long.count("error") == 1
    assert "[1] " not in too_long
    assert "unknown command /nope" in turn(child, "/nope")
    child.sendline("/quit")
    assert ended(child) == 0


@pytest.mark.slow
def test_a_wrong_key_or_no_server_is_an_error_line_and_the_chat_goes_on(starter_service):
    child = spawn("--url", starter_service, RAG_API_KEY="not-the-key")
    for _ in range(2):  # the prompt comes back after each refusal
        out = turn(child, REFUND_QUESTION)
        assert "error: HTTP 401" in out and "Traceback" not in out
    child.sendcontrol("d")  # Ctrl-D leaves
    assert ended(child) == 0

    nobody = spawn("--url", f"http://127.0.0.1:{free_port()}")
    out = turn(nobody, REFUND_QUESTION)
    assert "error: cannot reach" in out and "Traceback" not in out
    nobody.sendcontrol("c")  # Ctrl-C at the prompt leaves too, without a traceback
    assert ended(nobody) == 0 and "Traceback" not in nobody.before


def test_ctrl_c_while_waiting_for_an_answer_drops_the_question_not_the_chat():
    with socket.socket() as server:  # a "service" that takes the request and never answers
        server.bind(("127.0.0.1", 0))
        server.listen()
        child = spawn("--url", f"http://127.0.0.1:{server.getsockname()[1]}")
        child.sendline(REFUND_QUESTION)
        server.settimeout(60)
        connection, _ = server.accept()  # the question is on its way
        with connection:
            child.sendcontrol("c")
            child.expect_exact(PROMPT)
        assert "interrupted" in child.before and "Traceback" not in child.before
        assert "/new" in turn(child, "/help")  # still chatting
        child.sendline("/quit")
        assert ended(child) == 0


@pytest.mark.slow
def test_in_process_a_question_and_its_follow_up(starter_index, tmp_path):
    index, corpus = copy_starter(starter_index, tmp_path)
    child = spawn(RAG_INDEX_DIR=str(index), RAG_CORPUS_DIR=str(corpus))
    first = turn(child, REFUND_QUESTION)
    assert "30 days" in first and "kestrelbook/refund-policy.md" in first
    follow = turn(child, FOLLOW_UP)
    assert "7 days" in follow and searched(follow).startswith(FOLLOW_UP)
    child.sendline("/exit")
    assert ended(child) == 0


@pytest.mark.slow
def test_in_process_a_named_collection(starter_index, tmp_path):
    index, corpus = copy_starter(starter_index, tmp_path)
    (tmp_path / "collections.toml").write_text(
        f'[collections.kb]\ncorpus = "{corpus}"\nindex = "{index}"\n')
    child = spawn("--collection", "kb", RAG_COLLECTIONS_FILE=str(tmp_path / "collections.toml"))
    assert "kestrelbook/refund-policy.md" in turn(child, REFUND_QUESTION)
    child.sendline("/exit")
    assert ended(child) == 0


def test_bad_arguments_and_settings_exit_2_with_one_error_line(tmp_path):
    def chat(*args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([PYTHON, "-m", "app.cli", "chat", *args], cwd=ROOT,
                              env=subprocess_env(**env), capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=120)

    for args, env, says in ((["--top-k", "0"], {}, "--top-k"),
                            (["--mode", "fuzzy"], {}, "--mode"),
                            ([], {"RAG_TOP_K": "abc"}, "error: invalid settings: RAG_TOP_K"),
                            ([], {"RAG_INDEX_DIR": str(tmp_path / "none")}, "make ingest"),
                            (["--collection", "nope"], {},
                             "no collection named 'nope' (known: default)")):
        out = chat(*args, **env)
        assert out.returncode == 2 and says in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr
    help_ = chat("--help")
    assert help_.returncode == 0 and help_.stdout.startswith("usage: ragfirst chat")
    assert "/new" in help_.stdout
