"""One incremental ingest run: scan -> diff by content hash -> load and chunk what changed ->
embed what has no vector yet -> one atomic commit -> refresh the dense file.

Unchanged files are neither loaded, chunked nor embedded. A changed file's chunks are replaced
and a deleted (or now unreadable) file's chunks removed, all in the same commit. Vectors are
checkpointed while embedding, so a run killed midway loses no embedding work.
"""
from __future__ import annotations

import fcntl
import hashlib
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from ingest import failpoints
from ingest.chunking import Chunker
from ingest.dense import build_dense, dense_path, write_dense
from ingest.embedders import Embedder, build_embedder
from ingest.errors import IngestError, LoadError
from ingest.loaders import SUPPORTED_EXTENSIONS, load
from ingest.scan import scan_corpus
from ingest.settings import IngestSettings
from ingest.store import IndexParams, NewDocument, Store, vector_key

CHECKPOINT_TEXTS = 512  # texts embedded between two vector commits


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    chunks_added: int = 0
    chunks_removed: int = 0
    embedded: int = 0
    truncated: int = 0
    seconds: float = 0.0
    generation: int = 0

    def as_json(self) -> dict:
        return {
            "files": {"added": self.added, "changed": self.changed, "unchanged": self.unchanged,
                      "deleted": self.deleted,
                      "failed": [{"path": p, "reason": r} for p, r in self.failed]},
            "chunks": {"added": self.chunks_added, "removed": self.chunks_removed,
                       "embedded": self.embedded, "truncated": self.truncated},
            "seconds": round(self.seconds, 3),
            "generation": self.generation,
        }


@contextmanager
def ingest_lock(index_dir: Path) -> Iterator[None]:
    """One ingest per index at a time, across processes. Released by the OS if we die."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / "ingest.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another ingest of {index_dir} to finish...", file=sys.stderr)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def params_for(settings: IngestSettings, embedder: Embedder) -> IndexParams:
    return IndexParams(embedder.model_id, embedder.dim, settings.chunk_tokens,
                       settings.chunk_overlap)


def chunker_for(settings: IngestSettings, embedder: Embedder) -> Chunker:
    return Chunker(embedder.count_tokens, min(settings.chunk_tokens, embedder.max_tokens),
                   settings.chunk_overlap)


def run_ingest(settings: IngestSettings, embedder: Embedder | None = None, *,
               rebuild: bool = False, progress: bool | None = None) -> IngestReport:
    """Bring the index in `settings.index_dir` in step with `settings.corpus_dir`."""
    started = time.perf_counter()
    files = scan_corpus(settings.corpus_dir)  # fails early, before any model loads
    embedder = embedder or build_embedder(settings)
    with ingest_lock(settings.index_dir):
        store = Store(settings.index_dir, params_for(settings, embedder), rebuild=rebuild)
        try:
            report = _run(store, files, settings, embedder, rebuild, progress)
        finally:
            store.close()
    report.seconds = time.perf_counter() - started
    return report


def _run(store: Store, files, settings: IngestSettings, embedder: Embedder, rebuild: bool,
         progress: bool | None) -> IngestReport:
    report = IngestReport()
    indexed = store.documents()
    chunker = chunker_for(settings, embedder)
    show = (sys.stderr.isatty() if progress is None else progress) or False
    upserts: list[NewDocument] = []
    present: set[str] = set()

    for f in tqdm(files, desc="files", unit="file", disable=not show, leave=False):
        present.add(f.rel)
        try:
            doc = _load_and_chunk(f, settings, chunker, embedder.model_id, indexed, rebuild)
        except LoadError as exc:
            report.failed.append((f.rel, str(exc)))
            continue
        if doc is None:
            report.unchanged.append(f.rel)
            continue
        (report.changed if f.rel in indexed else report.added).append(f.rel)
        upserts.append(doc)
    failed_paths = {p for p, _ in report.failed}
    report.deleted = sorted(p for p in indexed if p not in present)
    # A file that was indexed but can no longer be read leaves the index too: its old text is
    # not what the corpus holds any more. It is reported as failed, not as deleted.
    drops = report.deleted + sorted(p for p in indexed if p in failed_paths)
    if rebuild:
        drops = sorted(indexed)
    failpoints.hit("after-scan")

    report.truncated = sum(c.tokens > embedder.max_tokens for d in upserts for c in d.chunks)
    report.embedded = _embed_missing(store, embedder, upserts, show)

    replaced = set(drops) | {d.path for d in upserts}
    report.chunks_removed = sum(row.chunks for p, row in indexed.items() if p in replaced)
    report.chunks_added = sum(len(d.chunks) for d in upserts)
    sizes = {f.rel: f.size for f in files}
    generation = store.commit_run(
        upserts, [p for p in drops if p not in {d.path for d in upserts}],
        [(p, r, sizes.get(p)) for p, r in report.failed],
        before_commit=lambda: failpoints.hit("before-commit"))
    failpoints.hit("after-commit")
    report.generation = generation
    uid = store.meta["uid"]
    target = dense_path(store.index_dir, uid, generation)
    if not target.exists():
        with store.conn:  # one read transaction: the file matches the generation just committed
            store.conn.execute("BEGIN")
            dense = build_dense(store.conn, store.params.dim)
        write_dense(dense, target)
    return report


def _load_and_chunk(f, settings: IngestSettings, chunker: Chunker, model_id: str,
                    indexed: dict, rebuild: bool) -> NewDocument | None:
    """The file's new version, or None when it is unchanged. Raises LoadError to refuse it."""
    suffix = Path(f.rel).suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise LoadError(f"unsupported file type {suffix or '(none)'!r} "
                        f"(supported: {', '.join(sorted(SUPPORTED_EXTENSIONS))})")
    if f.size > settings.max_file_bytes:
        raise LoadError(f"file is {f.size:,} bytes, over the {settings.max_file_bytes:,}-byte "
                        "limit (raise RAG_MAX_FILE_BYTES to allow it)")
    try:
        data = f.path.read_bytes()
    except OSError as exc:
        raise LoadError(f"cannot read the file: {exc.strerror or exc}") from exc
    if len(data) > settings.max_file_bytes:  # it grew since the scan
        raise LoadError(f"file is over the {settings.max_file_bytes:,}-byte limit")
    sha = hashlib.sha256(data).hexdigest()
    old = indexed.get(f.rel)
    if old is not None and old.sha256 == sha and not rebuild:
        return None
    loaded = load(f.path, data)
    chunks = chunker.split(loaded)
    if not chunks:
        raise LoadError("no text left to index after extraction")
    keys = [vector_key(model_id, c.text) for c in chunks]
    return NewDocument(f.rel, sha, len(data), loaded.kind, loaded.text, chunks, keys)


def _embed_missing(store: Store, embedder: Embedder, upserts: list[NewDocument],
                   show: bool) -> int:
    """Embed the chunk texts that have no stored vector, longest first (less padding), in
    checkpoints of CHECKPOINT_TEXTS. Returns how many texts were embedded."""
    text_of = {k: c.text for d in upserts for c, k in zip(d.chunks, d.vec_keys)}
    missing = store.missing_vectors(text_of)
    missing.sort(key=lambda k: len(text_of[k]), reverse=True)
    with tqdm(total=len(missing), desc="chunks", unit="chunk", disable=not show,
              leave=False) as bar:
        for i in range(0, len(missing), CHECKPOINT_TEXTS):
            keys = missing[i:i + CHECKPOINT_TEXTS]
            store.put_vectors(keys, embedder.embed([text_of[k] for k in keys]))
            bar.update(len(keys))
            failpoints.hit("mid-embed")
    return len(missing)


__all__ = ["IngestReport", "run_ingest", "IngestError"]
