"""`ragfirst`, the console command pyproject installs: one entry point for each job.

    ragfirst ask "question"      answer with sources (in-process, or --url of a running service)
    ragfirst chat                a conversation: follow-ups, sources after each answer, /new
    ragfirst ingest              bring the index in step with the corpus (--rebuild, --json)
    ragfirst serve               serve the API and the web page (--host, --port, --no-watch)
    ragfirst eval starter|conversations|beir   answer and retrieval quality (README, Evaluation)

Settings come from RAG_* environment variables, as everywhere else. `ragfirst CMD --help`
lists a command's options."""
from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version


def _ask(argv: list[str], prog: str) -> int:
    from app.ask import main
    return main(argv, prog)


def _chat(argv: list[str], prog: str) -> int:
    from app.chat import main
    return main(argv, prog)


def _ingest(argv: list[str], prog: str) -> int:
    from ingest.cli import main
    return main(argv, prog)


def _serve(argv: list[str], prog: str) -> int:
    from app.__main__ import main
    return main(argv, prog)


def _eval(argv: list[str], prog: str) -> int:
    from app.eval.__main__ import main
    return main(argv, prog)


# Imported only when chosen: `ragfirst --help` does not load torch.
COMMANDS = {"ask": _ask, "chat": _chat, "ingest": _ingest, "serve": _serve, "eval": _eval}
USAGE = __doc__.split("\n\n", 1)[1].rstrip()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(f"usage: ragfirst COMMAND [options]\n\n{USAGE}",
              file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] == "--version":
        try:
            print(f"ragfirst {version('ragfirst')}")
        except PackageNotFoundError:  # running from a source tree that was never installed
            print("ragfirst (not installed)")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"ragfirst: unknown command {command!r}; choose one of "
              f"{', '.join(COMMANDS)} (ragfirst --help)", file=sys.stderr)
        return 2
    try:  # each command prints its own errors (a bad RAG_* setting too) as one line
        return COMMANDS[command](rest, f"ragfirst {command}") or 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
