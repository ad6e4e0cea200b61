"""Walk the corpus folder: the files to ingest, by path relative to the corpus.

Hidden files and folders (a name starting with ".") are ignored, and so are the temporary
files editors and downloaders write beside a document (`notes.md~`, `#notes.md#`, `4913`,
`report.pdf.part`, ...): they come and go while a document is saved and are never documents
themselves. Symbolic links are followed
only while their target stays inside the corpus folder, and a folder reached twice (a link
loop, or two links to one folder) is walked once.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ingest.errors import CorpusNotFoundError


# Names of files that are never documents: editor backups and autosaves (vim `x~`, `4913`,
# `.x.swp`; emacs `#x#`, `.#x`; JetBrains `x___jb_tmp___`; MS Office `~$x`) and partial
# downloads or atomic-write temporaries (`x.part`, `x.crdownload`, `x.tmp`).
_TEMP_NAME = re.compile(
    r"""^\. | ~$ | ^~\$ | ^\#.*\#$ | ^\d+$ | ___jb_(tmp|old|bak)___$
      | \.(swp|swo|swx|tmp|temp|part|partial|crdownload|download)$""",
    re.VERBOSE | re.IGNORECASE)


def is_ignored_name(name: str) -> bool:
    """True for hidden files and editor/download temporaries: the scan skips them."""
    return bool(_TEMP_NAME.search(name))


@dataclass(frozen=True)
class CorpusFile:
    rel: str  # POSIX path relative to the corpus folder: the document's identity
    path: Path
    size: int
    mtime_ns: int = 0


def check_corpus(corpus_dir: Path) -> None:
    if not corpus_dir.is_dir():
        what = "is not a folder" if corpus_dir.exists() else "does not exist"
        raise CorpusNotFoundError(
            f"corpus folder {corpus_dir} {what}: create it and put .md, .txt, .html or .pdf "
            "files in it, or pass --corpus PATH, or set RAG_CORPUS_DIR")


def scan_corpus(corpus_dir: Path) -> list[CorpusFile]:
    check_corpus(corpus_dir)
    root = corpus_dir.resolve()
    seen_dirs: set[tuple[int, int]] = set()
    found: dict[tuple[int, int], tuple[bool, CorpusFile]] = {}  # one entry per real file

    def inside(target: Path) -> bool:
        """Within the corpus, and not inside a hidden folder or a hidden file of it."""
        if target != root and root not in target.parents:
            return False
        return not any(part.startswith(".") for part in target.relative_to(root).parts)

    linked: list[tuple[Path, tuple[str, ...]]] = []  # folders reached through a link

    def walk(folder: Path, rel: tuple[str, ...]) -> None:
        st = folder.stat()
        if (st.st_dev, st.st_ino) in seen_dirs:
            return
        seen_dirs.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            is_link = entry.is_symlink()
            if is_link and not inside(path.resolve()):
                continue  # never leave the corpus folder through a link
            try:
                if entry.is_dir():
                    if is_link:  # walked after the real tree, so real names win
                        linked.append((path, (*rel, entry.name)))
                    else:
                        walk(path, (*rel, entry.name))
                elif entry.is_file():
                    if is_ignored_name(entry.name):
                        continue
                    st = entry.stat()
                    key = (st.st_dev, st.st_ino)
                    if key not in found or (found[key][0] and not is_link):
                        # a file reached through links too is listed once, by its own name
                        found[key] = (is_link, CorpusFile("/".join((*rel, entry.name)), path,
                                                          st.st_size, st.st_mtime_ns))
            except OSError:  # vanished or unreadable while scanning: skip like a deleted file
                continue

    walk(root, ())
    while linked:
        walk(*linked.pop(0))
    return sorted((f for _, f in found.values()), key=lambda f: f.rel)
