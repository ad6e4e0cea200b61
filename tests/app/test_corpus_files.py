"""The corpus folder as the API writes it: names refused before they touch the disk, links
refused wherever they are, writes that are all or nothing, and exactly one winner when two
uploads race for a new name."""
from __future__ import annotations

import io
import os
import threading
import unicodedata
from pathlib import Path, PurePosixPath

import pytest

from app.corpus_files import (BadName, Exists, Missing, TooLarge, check_name, remove,
                              sweep_temporaries,
                              resolve_inside, write_atomically)


@pytest.mark.parametrize("name, reason", [
    ("", "empty"),
    ("a\udc80.md", "surrogate"),
    ("a\x00b.md", "control"),
    ("x\u202efdp.md", "direction"),  # shows as xdm.pdf
    ("a\u2066b.md", "direction"), ("a\u2028b.md", "line-separator"),
    ("a\ue000b.md", "unassigned"),
    ("notes/\x1b[31m.md", "control"),
    ("a\u0085b.md", "control"),           # C1 control (NEL)
    ("a\\b.md", "backslash"),
    ("..\\x.md", "backslash"),
    ("/etc/x.md", "absolute"),
    ("//host/share/x.md", "absolute"),
    ("C:x.md", "absolute"),
    ("c:/x.md", "absolute"),
    ("../x.md", "'..'"),
    ("notes/../../x.md", "'..'"),
    ("./x.md", "'.'"),
    ("a//b.md", "empty"),
    ("notes/", "empty"),
    (".hidden.md", "hidden"),
    (".git/config.md", "hidden"),
    ("notes/.x/y.md", "hidden"),
    ("..%2Fx.md", "percent"),
    ("%2e%2e/x.md", "percent"),
    ("%252e%252e/x.md", "percent"),        # double encoding
    ("caf%C3%A9.md", "percent"),
    (unicodedata.normalize("NFD", "café.md"), "NFC"),
    ("a" * 253 + ".md", "255 bytes"),      # 256 bytes in one part
    ("é" * 127 + ".md", "255 bytes"),      # 257 UTF-8 bytes, 130 characters
    ("/".join(["d" * 200] * 6) + ".md", "1024 bytes"),
    ("notes.odt", "unsupported file type '.odt'"),
    ("README", "no extension"),
    ("notes.md~", "temporary"),
    ("#notes.md#", "temporary"),
    ("notes.md.part", "temporary"),
    ("4913", "temporary"),
])
def test_names_that_could_mean_another_file_or_never_be_indexed_are_refused(name, reason):
    with pytest.raises(BadName, match=reason):
        check_name(name)


def test_an_unsupported_type_names_the_supported_ones():
    with pytest.raises(BadName, match=r"supported: csv, docx, epub, htm, html, markdown, "):
        check_name("slides.key")


@pytest.mark.parametrize("name", [
    "a.md", "notes/new.md", "deep/er/still/x.PDF", "café.md", "100%.md", "2024/plan v2.txt",
    "a" * 252 + ".md", "guides/page.htm", "spaces in name.markdown",
    "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645.md"])  # Persian, with its zero-width non-joiner
def test_ordinary_names_pass_as_themselves(name):
    assert check_name(name) == PurePosixPath(name)


def test_resolve_inside_makes_missing_folders_only_for_writes(tmp_path):
    rel = check_name("notes/deep/new.md")
    assert resolve_inside(tmp_path, rel, for_write=False) == tmp_path.resolve() / rel
    assert not (tmp_path / "notes").exists()
    assert resolve_inside(tmp_path, rel, for_write=True) == tmp_path.resolve() / rel
    assert (tmp_path / "notes" / "deep").is_dir()
    assert not (tmp_path / "notes" / "deep" / "new.md").exists()


@pytest.fixture()
def corpus_with_links(tmp_path) -> Path:
    """A corpus with a folder link and a file link out, and a link to a file inside."""
    corpus, outside = tmp_path / "corpus", tmp_path / "outside"
    (corpus / "real").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.md").write_text("outside the corpus")
    (corpus / "real" / "doc.md").write_text("inside")
    os.symlink(outside, corpus / "out")
    os.symlink(outside / "secret.md", corpus / "leak.md")
    os.symlink(corpus / "real" / "doc.md", corpus / "alias.md")
    os.symlink(corpus / "real", corpus / "alias-dir")
    return corpus


@pytest.mark.parametrize("name", [
    "out/secret.md", "out/new.md", "out/sub/new.md", "leak.md", "alias.md", "alias-dir/doc.md",
    "alias-dir/new.md"])
@pytest.mark.parametrize("for_write", [False, True])
def test_a_link_anywhere_on_the_path_is_refused(corpus_with_links, name, for_write):
    with pytest.raises(BadName, match="symbolic link"):
        resolve_inside(corpus_with_links, check_name(name), for_write=for_write)
    assert not (corpus_with_links.parent / "outside" / "sub").exists()
    assert sorted(os.listdir(corpus_with_links.parent / "outside")) == ["secret.md"]


def test_a_link_cannot_be_written_through_deleted_or_overwritten(corpus_with_links):
    outside = corpus_with_links.parent / "outside" / "secret.md"
    for name in ("leak.md", "out/secret.md"):
        with pytest.raises(BadName):
            write_atomically(corpus_with_links, check_name(name), io.BytesIO(b"x"),
                             overwrite=True, max_bytes=100)
        with pytest.raises(BadName):
            remove(corpus_with_links, check_name(name))
    assert outside.read_text() == "outside the corpus"
    assert os.path.islink(corpus_with_links / "leak.md")


def test_the_corpus_root_itself_may_be_a_link(tmp_path):
    (tmp_path / "data").mkdir()
    os.symlink(tmp_path / "data", tmp_path / "corpus")
    write_atomically(tmp_path / "corpus", check_name("a.md"), io.BytesIO(b"hi"),
                     overwrite=False, max_bytes=10)
    assert (tmp_path / "data" / "a.md").read_bytes() == b"hi"


def test_a_file_where_a_folder_is_needed_is_refused(tmp_path):
    (tmp_path / "notes.md").write_text("a file")
    with pytest.raises(BadName, match="not a folder"):
        resolve_inside(tmp_path, check_name("notes.md/x.md"), for_write=True)
    (tmp_path / "folder.md").mkdir()
    with pytest.raises(BadName, match="a folder or a special file, not a document"):
        write_atomically(tmp_path, check_name("folder.md"), io.BytesIO(b"x"), overwrite=True,
                         max_bytes=10)


def _names(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_a_new_file_is_added_and_an_existing_one_kept_without_overwrite(tmp_path):
    rel = check_name("notes/new.md")
    assert write_atomically(tmp_path, rel, io.BytesIO(b"first"), overwrite=False,
                            max_bytes=100) == "added"
    with pytest.raises(Exists, match="overwrite=true"):
        write_atomically(tmp_path, rel, io.BytesIO(b"second"), overwrite=False, max_bytes=100)
    assert (tmp_path / rel).read_bytes() == b"first"
    assert write_atomically(tmp_path, rel, io.BytesIO(b"third"), overwrite=True,
                            max_bytes=100) == "replaced"
    assert (tmp_path / rel).read_bytes() == b"third"
    assert write_atomically(tmp_path, check_name("b.md"), io.BytesIO(b"b"), overwrite=True,
                            max_bytes=100) == "added"
    assert _names(tmp_path) == ["b.md", "notes/new.md"]  # no temporary left


def test_too_large_leaves_nothing_and_keeps_the_old_version(tmp_path):
    rel = check_name("a.md")
    with pytest.raises(TooLarge, match="10-byte limit"):
        write_atomically(tmp_path, rel, io.BytesIO(b"x" * 11), overwrite=False, max_bytes=10)
    assert _names(tmp_path) == []
    write_atomically(tmp_path, rel, io.BytesIO(b"x" * 10), overwrite=False, max_bytes=10)
    with pytest.raises(TooLarge):
        write_atomically(tmp_path, rel, io.BytesIO(b"y" * 11), overwrite=True, max_bytes=10)
    assert _names(tmp_path) == ["a.md"] and (tmp_path / rel).read_bytes() == b"x" * 10


class _BreaksMidway(io.RawIOBase):
    """A source that gives some bytes and then fails, like a client gone mid-upload."""

    def __init__(self) -> None:
        self.calls = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.calls += 1
        if self.calls > 2:
            raise ConnectionResetError("the client went away")
        return b"half a document " * 100


def test_a_source_that_fails_midway_leaves_nothing(tmp_path):
    (tmp_path / "keep.md").write_text("old")
    for name, overwrite in (("new.md", False), ("keep.md", True)):
        with pytest.raises(ConnectionResetError):
            write_atomically(tmp_path, check_name(name), _BreaksMidway(), overwrite=overwrite,
                             max_bytes=1 << 20)
    assert _names(tmp_path) == ["keep.md"]
    assert (tmp_path / "keep.md").read_text() == "old"


def test_two_racing_uploads_of_one_new_name_have_exactly_one_winner(tmp_path):
    rel, results = check_name("race.md"), []
    start = threading.Barrier(8)

    def upload(i: int) -> None:
        start.wait()
        try:
            results.append(write_atomically(tmp_path, rel, io.BytesIO(b"v%d" % i),
                                            overwrite=False, max_bytes=100))
        except Exists:
            results.append("exists")

    for _round in range(20):
        threads = [threading.Thread(target=upload, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == ["added"] + ["exists"] * 7
        assert _names(tmp_path) == ["race.md"]
        os.unlink(tmp_path / rel)
        results.clear()
        start.reset()


def test_remove_deletes_a_file_and_says_when_there_is_none(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("a")
    remove(tmp_path, check_name("notes/a.md"))
    assert _names(tmp_path) == [] and (tmp_path / "notes").is_dir()
    for name in ("notes/a.md", "nowhere/a.md"):
        with pytest.raises(Missing):
            remove(tmp_path, check_name(name))
    (tmp_path / "dir.md").mkdir()
    with pytest.raises(Missing):
        remove(tmp_path, check_name("dir.md"))


def test_the_file_being_written_is_invisible_to_the_scan_and_the_watcher(tmp_path):
    """Mid-copy, the temporary is on disk under a name the corpus scan and the watcher skip:
    an ingest running meanwhile sees the old state, never half a file."""
    import watchfiles

    from ingest.scan import scan_corpus
    from ingest.watch import corpus_filter

    (tmp_path / "notes").mkdir()
    seen: dict[str, object] = {}

    class Watching(io.RawIOBase):
        calls = 0

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            Watching.calls += 1
            if Watching.calls == 2:  # the first chunk is in the temporary by now
                [tmp] = (tmp_path / "notes").iterdir()
                seen["tmp"] = tmp.name
                seen["scan"] = [f.rel for f in scan_corpus(tmp_path)]
                seen["watch"] = corpus_filter(tmp_path, tmp_path / "index")(
                    watchfiles.Change.added, str(tmp))
            return b"half " * 100 if Watching.calls <= 2 else b""

    write_atomically(tmp_path, check_name("notes/new.md"), Watching(), overwrite=False,
                     max_bytes=10_000)
    assert seen["tmp"].startswith(".upload-") and seen["tmp"].endswith(".part")
    assert seen["scan"] == [] and seen["watch"] is False
    assert [f.rel for f in scan_corpus(tmp_path)] == ["notes/new.md"]


def test_temporaries_a_killed_upload_left_are_swept_and_live_ones_kept(tmp_path):
    old, live = tmp_path / "a" / ".upload-0123.part", tmp_path / ".upload-4567.part"
    for path in (old, live):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"half")
    os.utime(old, (1, 1))
    (tmp_path / "doc.md").write_text("# Kept\n")
    os.utime(tmp_path / "doc.md", (1, 1))  # old, but not a temporary
    assert sweep_temporaries(tmp_path) == 1
    assert not old.exists() and live.exists() and (tmp_path / "doc.md").exists()
