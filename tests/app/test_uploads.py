"""An upload batch's verdicts: what each file became once written and ingested, and the status
code the batch earns. Over HTTP in tests/e2e/test_collection_documents.py."""
from __future__ import annotations

import errno
import io

import pytest

from app.uploads import CorpusUnwritable, FileResult, Part, settle, status_code, write_parts


def part(name: str, data: bytes = b"# Doc\n\ntext\n") -> Part:
    return Part(name, io.BytesIO(data), len(data))


def test_each_part_is_written_or_refused_in_order(tmp_path):
    results = write_parts(tmp_path, [part("a.md"), part("a.md"), part("../b.md"),
                                     part("big.md", b"x" * 101), part("c.txt")],
                          overwrite=False, max_bytes=100)
    assert [(r.path, r.status) for r in results] == [
        ("a.md", "added"), ("a.md", "exists"), ("../b.md", "refused"), ("big.md", "refused"),
        ("c.txt", "added")]
    assert "overwrite=true" in results[1].reason and "'..'" in results[2].reason
    assert results[3].reason == "the file is over the 100-byte limit (RAG_MAX_FILE_BYTES)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.md", "c.txt"]


def test_a_size_the_parser_counted_is_refused_without_reading_the_file(tmp_path):
    class Unread(io.BytesIO):
        def read(self, *args):
            raise AssertionError("read although its size was over the limit")

    [result] = write_parts(tmp_path, [Part("a.md", Unread(), 10_000)], overwrite=True,
                           max_bytes=100)
    assert result.status == "refused" and not list(tmp_path.iterdir())


def test_a_refused_name_is_shown_short_and_as_valid_utf8(tmp_path):
    [long_one, surrogate] = write_parts(tmp_path, [part("x" * 5000 + ".md"), part("a\udc80.md")],
                                        overwrite=False, max_bytes=100)
    assert len(long_one.path) == 301 and long_one.path.endswith("…")
    assert surrogate.path == "a?.md" and "surrogate" in surrogate.reason


def test_a_folder_that_cannot_be_written_is_the_servers_trouble(tmp_path):
    class DiskFull(io.RawIOBase):  # what a full disk looks like from the copy's side
        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(CorpusUnwritable, match="No space left on device") as caught:
        write_parts(tmp_path, [part("a.md"), Part("b.md", DiskFull(), None)], overwrite=False,
                    max_bytes=100)
    assert caught.value.status == 503
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.md"]  # no temporary left


def test_settle_takes_each_written_file_from_the_index():
    results = [FileResult("new.md", "added"), FileResult("same.md", "replaced"),
               FileResult("edited.md", "replaced"), FileResult("bad.pdf", "added"),
               FileResult("gone.md", "added"), FileResult("taken.md", "exists", "exists"),
               FileResult("../x.md", "refused", "bad name")]
    before = {"same.md": "s1", "edited.md": "e1"}
    after = {"new.md": ("n1", 3), "same.md": ("s1", 2), "edited.md": ("e2", 4)}
    settle(results, before, after, {"bad.pdf": "truncated PDF"})
    assert [r.as_json() for r in results] == [
        {"path": "new.md", "status": "added", "chunks": 3},
        {"path": "same.md", "status": "unchanged", "chunks": 2},
        {"path": "edited.md", "status": "replaced", "chunks": 4},
        {"path": "bad.pdf", "status": "refused", "reason": "truncated PDF"},
        {"path": "gone.md", "status": "refused",
         "reason": "written, but gone or changing when the ingest read it: see GET /documents"},
        {"path": "taken.md", "status": "exists", "reason": "exists"},
        {"path": "../x.md", "status": "refused", "reason": "bad name"}]


@pytest.mark.parametrize("statuses, code", [
    (["added"], 201), (["replaced", "refused"], 201), (["exists", "added"], 201),
    (["refused"], 422), (["refused", "exists"], 422), (["exists", "exists"], 409),
    (["unchanged"], 200), (["unchanged", "exists"], 200),
])
def test_the_batch_status(statuses, code):
    assert status_code([FileResult(f"{i}.md", s) for i, s in enumerate(statuses)]) == code
