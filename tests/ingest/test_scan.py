"""The corpus walk: hidden files, symbolic links out of the corpus, and link loops."""
from __future__ import annotations

import os

import pytest

from ingest.errors import CorpusNotFoundError
from ingest.scan import scan_corpus


def test_hidden_and_nested(tmp_path):
    (tmp_path / "a.md").write_text("a")
    (tmp_path / ".secret.md").write_text("hidden")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config.txt").write_text("hidden too")
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "deep" / "er" / "b.txt").write_text("b")
    assert [f.rel for f in scan_corpus(tmp_path)] == ["a.md", "deep/er/b.txt"]


def test_links_do_not_leave_the_corpus_and_loops_end(tmp_path):
    corpus, outside = tmp_path / "corpus", tmp_path / "outside"
    (corpus / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "private.md").write_text("must not be ingested")
    (corpus / "sub" / "doc.md").write_text("inside")
    os.symlink(outside, corpus / "escape")                    # folder link out
    os.symlink(outside / "private.md", corpus / "leak.md")   # file link out
    os.symlink(corpus, corpus / "sub" / "loop")               # loop back to the root
    os.symlink(corpus / "sub", corpus / "alias")              # second name for a folder
    os.symlink(corpus / "sub" / "doc.md", corpus / "a-link.md")  # second name for a file
    os.symlink(tmp_path / "missing.md", corpus / "dangling.md")
    (corpus / ".hidden").mkdir()
    (corpus / ".hidden" / "x.md").write_text("hidden")
    os.symlink(corpus / ".hidden" / "x.md", corpus / "unhide.md")  # link into a hidden folder
    os.symlink(corpus / ".hidden", corpus / "unhide-dir")
    rels = [f.rel for f in scan_corpus(corpus)]
    assert rels == ["sub/doc.md"]


def test_missing_or_not_a_folder(tmp_path):
    with pytest.raises(CorpusNotFoundError, match="does not exist"):
        scan_corpus(tmp_path / "nope")
    (tmp_path / "file.md").write_text("x")
    with pytest.raises(CorpusNotFoundError, match="not a folder"):
        scan_corpus(tmp_path / "file.md")


@pytest.mark.parametrize("name", [
    "notes.md~", "#notes.md#", ".notes.md.swp", "4913", "notes.md.part", "notes.md.tmp",
    "report.pdf.crdownload", "notes.md___jb_tmp___", "~$notes.docx", "NOTES.MD.TMP"])
def test_editor_and_download_temporaries_are_not_documents(tmp_path, name):
    (tmp_path / "notes.md").write_text("the real document")
    (tmp_path / name).write_text("a temporary copy")
    assert [f.rel for f in scan_corpus(tmp_path)] == ["notes.md"]


@pytest.mark.parametrize("name", ["2024-plan.md", "v1.2.txt", "temperature.md", "part.md"])
def test_ordinary_names_that_look_similar_are_documents(tmp_path, name):
    (tmp_path / name).write_text("a document")
    assert [f.rel for f in scan_corpus(tmp_path)] == [name]
