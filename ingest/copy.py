"""`python -m ingest --copy-to URL`: the index the settings name, copied to another store as it
is stored, so that switching engines loses nothing and embeds nothing.

Documents (their extracted text, hashes and ingest times), chunks (text, spans, headings,
pages), the chunks' stored vectors and the refused files go across; the target keeps the
source's parameters (model id, chunking), generation and index_id, so a generation names the
same content on both and the next `python -m ingest` against the target finds every file
unchanged. No embedder is built: vectors are copied, never recomputed.

Both indexes are opened through their writer seam, each holding its ingest lock (no run
commits on either meanwhile). The source is read in batches of whole documents (never all
vectors at once); the target is written like a run: vectors in their own small commits (no
reader looks them up), then ONE commit, so a copy killed at any instant leaves the target's
readers where they were. A target that holds documents is refused unless `replace`, and one
built with other parameters always is (unless `replace`).
"""
from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass

from ingest import failpoints
from ingest.errors import CopyRefusedError, IndexMismatchError
from ingest.settings import IngestSettings
from ingest.store import IndexStore, StoredIndex, open_store
from ingest.store.urls import same_index

CHUNKS_PER_BATCH = 1000  # chunks (and their vectors) read from the source at a time


@dataclass
class CopyReport:
    source: str  # the indexes as messages name them (no password)
    target: str
    documents: int = 0
    chunks: int = 0
    vectors: int = 0  # distinct stored vectors copied (identical chunk texts share one)
    refused: int = 0  # refused files carried over
    generation: int = 0
    index_id: str = ""
    replaced: int = 0  # documents the target held before (--replace)
    moved_aside: str | None = None  # where a replace moved a damaged SQLite target
    seconds: float = 0.0

    def as_json(self) -> dict:
        return {"source": self.source, "target": self.target, "documents": self.documents,
                "chunks": self.chunks, "vectors": self.vectors, "refused": self.refused,
                "generation": self.generation, "index_id": self.index_id,
                "replaced": self.replaced, "seconds": round(self.seconds, 3),
                **({"moved_aside": self.moved_aside} if self.moved_aside else {})}


def copy_index(source: IngestSettings, target: IngestSettings, *, replace: bool = False,
               chunks_per_batch: int = CHUNKS_PER_BATCH) -> CopyReport:
    """Copy the index `source` names into the store `target` names (see the module's doc).
    Raises IndexNotFoundError (no source index), CopyRefusedError (the target is the source,
    holds documents, or was built otherwise; nothing written), and the stores' own errors."""
    started = time.perf_counter()
    report = CopyReport(source.index_name, target.index_name)
    if same_index(source, target):
        raise CopyRefusedError(f"{target.index_name} is the source index itself; copy to "
                               "another folder, database or schema")
    with ExitStack() as stack:
        src = stack.enter_context(open_store(source, None))
        stored = src.stored()
        try:
            dst = stack.enter_context(open_store(target, stored.params, rebuild=replace))
        except IndexMismatchError as exc:
            raise CopyRefusedError(
                f"{target.index_name} holds an index built with other settings than the "
                f"source's ({stored.params.model_id}, {stored.params.chunk_tokens}-token "
                "chunks); pass --replace to overwrite it, or copy to an empty place") from exc
        report.replaced = len(dst.documents())
        report.moved_aside = str(dst.moved_aside) if dst.moved_aside else None
        if report.replaced and not replace:
            raise CopyRefusedError(
                f"{target.index_name} already holds an index ({report.replaced} documents); "
                "pass --replace to overwrite it with the copy, or copy to an empty place")
        _copy(src, dst, stored, chunks_per_batch, report)
    report.seconds = time.perf_counter() - started
    return report


def _copy(src: IndexStore, dst: IndexStore, stored: StoredIndex, chunks_per_batch: int,
          report: CopyReport) -> None:
    """Stream the source's batches into the target's vectors, then commit its documents."""
    documents, sent = [], set()
    for batch in src.stored_batches(chunks_per_batch):
        new = [i for i, key in enumerate(batch.keys) if key not in sent]
        if new:  # replace: a key's vector is the source's, whatever the target had under it
            dst.put_vectors([batch.keys[i] for i in new], batch.vectors[new], replace=True)
            sent.update(batch.keys[i] for i in new)
        documents.extend(batch.documents)
        failpoints.hit("mid-copy")
    report.generation, commit = dst.commit_run(
        documents, [], stored.failures, model_dim=lambda: stored.dim,
        before_commit=lambda: failpoints.hit("before-commit"), copy_of=stored)
    dst.publish(commit)
    report.documents, report.vectors = len(documents), len(sent)
    report.chunks = sum(len(d.chunks) for d in documents)
    report.refused, report.index_id = len(stored.failures), stored.index_id
