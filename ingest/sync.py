"""One incremental ingest run: scan -> diff by content hash -> load and chunk what changed ->
embed what has no vector yet -> one atomic commit -> refresh the dense file.

Unchanged files are neither loaded, chunked nor embedded. A changed file's chunks are replaced
and a deleted (or now unreadable) file's chunks removed, all in the same commit. Vectors are
checkpointed while embedding, so a run killed midway loses no embedding work.
"""
from __future__ import annotations

import functools
import hashlib
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from tqdm import tqdm

from ingest import failpoints
from ingest.chunking import Chunker, check_overlap
from ingest.embedders import Embedder, build_embedder
from ingest.errors import IndexMismatchError, IngestError, LoadError
from ingest.loaders import check_supported, load
from ingest.scan import check_corpus, scan_corpus
from ingest.settings import IngestSettings
from ingest.store import IndexStore, open_store
from ingest.store.records import IndexParams, NewDocument, vector_key


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    # Files that changed while this run read them (being written): left as they were
    # indexed, for the next run (the watcher's next event) to pick up once complete.
    deferred: list[str] = field(default_factory=list)
    chunks_added: int = 0
    chunks_removed: int = 0
    embedded: int = 0
    truncated: int = 0
    seconds: float = 0.0
    generation: int = 0
    run: int = 0  # the service's number for the run (POST /ingest shows it); 0 elsewhere
    moved_aside: str | None = None  # the name a rebuild moved a damaged database to

    def as_json(self) -> dict:
        return {
            "files": {"added": self.added, "changed": self.changed, "unchanged": self.unchanged,
                      "deleted": self.deleted,
                      "failed": [{"path": p, "reason": r} for p, r in self.failed],
                      "deferred": self.deferred},
            "chunks": {"added": self.chunks_added, "removed": self.chunks_removed,
                       "embedded": self.embedded, "truncated": self.truncated},
            "seconds": round(self.seconds, 3),
            "generation": self.generation,
            **({"moved_aside": self.moved_aside} if self.moved_aside else {}),
        }


def params_for(settings: IngestSettings, embedder: Embedder) -> IndexParams:
    """What the index must have been built with. Needs no model load: an unchanged corpus
    is checked without loading the model at all."""
    return IndexParams(embedder.model_id, settings.chunk_tokens, settings.chunk_overlap)


def chunker_for(settings: IngestSettings, embedder: Embedder) -> Chunker:
    """The chunker for this embedder: chunks of RAG_CHUNK_TOKENS, capped by the model's window
    (so the model never truncates one)."""
    size = min(settings.chunk_tokens, embedder.max_tokens)
    try:
        check_overlap(settings.chunk_overlap, size)
    except ValueError as exc:
        raise IngestError(f"{exc}: {embedder.model_id} reads at most {embedder.max_tokens} "
                          "tokens; lower RAG_CHUNK_OVERLAP") from None
    return Chunker(embedder.count_tokens, size, settings.chunk_overlap)


def run_ingest(settings: IngestSettings, embedder: Embedder | None = None, *,
               rebuild: bool = False, progress: bool | None = None) -> IngestReport:
    """Bring the index the settings name (RAG_STORE) in step with `settings.corpus_dir`. A full
    disk, an unwritable folder, a damaged database or an unreachable server raise
    IndexStorageError, IndexDamagedError or IndexUnavailableError (the last commit still
    answers); a rebuild moves a damaged SQLite database aside first."""
    started = time.perf_counter()
    check_corpus(settings.corpus_dir)  # fails early, before any model loads
    embedder = embedder or build_embedder(settings)  # the model loads when first needed
    with open_store(settings, params_for(settings, embedder), rebuild=rebuild) as store:
        files = scan_corpus(settings.corpus_dir)  # inside the lock: no stale file list
        report = _run(store, files, settings, embedder, rebuild, progress)
        report.moved_aside = store.moved_aside.name if store.moved_aside else None
    report.seconds = time.perf_counter() - started
    return report


def _run(store: IndexStore, files, settings: IngestSettings, embedder: Embedder, rebuild: bool,
         progress: bool | None) -> IngestReport:
    indexed = store.documents()
    show = (sys.stderr.isatty() if progress is None else progress) or False
    report, upserts, present = _read_changes(files, settings, embedder, indexed, rebuild, show)
    failed_paths = {p for p, _ in report.failed}
    report.deleted = sorted(p for p in indexed if p not in present)
    # A file that was indexed but can no longer be read leaves the index too: its old text is
    # not what the corpus holds any more. It is reported as failed, not as deleted.
    drops = report.deleted + sorted(p for p in indexed if p in failed_paths)
    if rebuild:
        drops = sorted(indexed)
    failpoints.hit("after-scan")

    report.embedded, report.truncated = _embed(store, embedder, upserts, rebuild,
                                               settings.embed_checkpoint, show)

    replaced = set(drops) | {d.path for d in upserts}
    report.chunks_removed = sum(row.chunks for p, row in indexed.items() if p in replaced)
    report.chunks_added = sum(len(d.chunks) for d in upserts)
    sizes = {f.rel: f.size for f in files}
    report.generation, commit = store.commit_run(
        upserts, [p for p in drops if p not in {d.path for d in upserts}],
        [(p, r, sizes.get(p)) for p, r in report.failed], model_dim=lambda: embedder.dim,
        before_commit=lambda: failpoints.hit("before-commit"))
    failpoints.hit("after-commit")
    store.publish(commit)
    return report


def _read_changes(files, settings: IngestSettings, embedder: Embedder, indexed: dict,
                  rebuild: bool, show: bool) -> tuple[IngestReport, list[NewDocument], set[str]]:
    """Load and chunk what changed: the report so far (added, changed, unchanged, failed,
    deferred), the new versions, and the paths still present in the corpus."""
    report, upserts, present = IngestReport(), [], set()
    # made (and the model loaded) for the first file that needs chunking, if any does
    chunker = functools.cache(lambda: chunker_for(settings, embedder))
    for f in tqdm(files, desc="files", unit="file", disable=not show, leave=False):
        try:
            doc = _load_and_chunk(f, settings, chunker, embedder.model_id, indexed, rebuild)
        except FileNotFoundError:
            # Gone since the scan: an editor mid-save (renamed away, about to be rewritten)
            # or a deletion. An indexed file keeps its version this run; the next run (the
            # watcher's next event) sees which it was.
            if f.rel not in indexed:
                continue
            doc = _BUSY
        except LoadError as exc:
            present.add(f.rel)
            report.failed.append((f.rel, str(exc)))
            continue
        present.add(f.rel)
        if doc is _BUSY and rebuild:  # a rebuild replaces everything: it cannot keep it
            report.failed.append((f.rel, "changed while being read; run again once it is "
                                         "written"))
        elif doc is _BUSY:
            report.deferred.append(f.rel)
        elif doc is None:
            report.unchanged.append(f.rel)
        else:
            (report.changed if f.rel in indexed else report.added).append(f.rel)
            upserts.append(doc)
    return report, upserts, present


_BUSY = object()  # the file changed while it was read


def _load_and_chunk(f, settings: IngestSettings, chunker: Callable[[], Chunker], model_id: str,
                    indexed: dict, rebuild: bool) -> NewDocument | None | object:
    """The file's new version, None when it is unchanged, or _BUSY when it changed while it
    was read (half written: it keeps its indexed version this run). Raises LoadError to refuse
    it, FileNotFoundError when it is gone."""
    check_supported(f.path)  # before reading: an unsupported file may be huge
    if f.size > settings.max_file_bytes:
        raise LoadError(f"file is {f.size:,} bytes, over the {settings.max_file_bytes:,}-byte "
                        "limit (raise RAG_MAX_FILE_BYTES to allow it)")
    try:
        data = f.path.read_bytes()
        after = f.path.stat()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise LoadError(f"cannot read the file: {exc.strerror or exc}") from exc
    if f.mtime_ns and (len(data), after.st_mtime_ns) != (f.size, f.mtime_ns):
        return _BUSY
    if len(data) > settings.max_file_bytes:  # it grew since the scan
        raise LoadError(f"file is over the {settings.max_file_bytes:,}-byte limit")
    sha = hashlib.sha256(data).hexdigest()
    old = indexed.get(f.rel)
    if old is not None and old.sha256 == sha and not rebuild:
        return None
    loaded = load(f.path, data)
    chunks = chunker().split(loaded)
    if not chunks:
        raise LoadError("no text left to index after extraction")
    keys = [vector_key(model_id, c.text) for c in chunks]
    return NewDocument(f.rel, sha, len(data), loaded.kind, loaded.text, chunks, keys)


def _embed(store: IndexStore, embedder: Embedder, upserts: list[NewDocument], everything: bool,
           checkpoint: int, show: bool) -> tuple[int, int]:
    """Embed the chunk texts that have no stored vector (or all of them, for a rebuild),
    longest first (less padding), committing vectors every `checkpoint` texts. Returns (texts
    embedded, texts the model truncated), counted with its tokenizer just before embedding."""
    text_of = {k: c.text for d in upserts for c, k in zip(d.chunks, d.vec_keys)}
    missing = list(text_of) if everything else store.missing_vectors(text_of)
    missing.sort(key=lambda k: len(text_of[k]), reverse=True)
    truncated = 0
    dim = None if everything else int(store.meta.get("dim") or 0)  # 0: nothing committed
    with tqdm(total=len(missing), desc="chunks", unit="chunk", disable=not show,
              leave=False) as bar:
        for i in range(0, len(missing), checkpoint):
            texts = [text_of[k] for k in missing[i:i + checkpoint]]
            truncated += sum(n > embedder.max_tokens for n in embedder.count_tokens(texts))
            vectors = embedder.embed(texts)
            _check_size(vectors, dim, embedder.model_id)
            store.put_vectors(missing[i:i + checkpoint], vectors, replace=everything)
            bar.update(len(texts))
            failpoints.hit("mid-embed")
    return len(missing), truncated


def _check_size(vectors, dim: int | None, model_id: str) -> None:
    """Vectors of another size than the index holds are refused before they are stored: a
    remote model swapped under the same name must not reach the index (nor a checkpoint a
    rerun would reuse)."""
    if dim and vectors.shape[1] != dim:
        raise IndexMismatchError(
            f"the model {model_id!r} now gives vectors of {vectors.shape[1]} numbers; the "
            f"index holds vectors of {dim}: the model changed under the same name. Rebuild "
            "with `python -m ingest --rebuild` (or `make ingest ARGS=--rebuild`), or serve "
            "the model the index was built with.")
