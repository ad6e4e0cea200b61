"""One incremental ingest run: scan -> diff by content hash -> load and chunk what changed ->
embed what has no vector yet -> one atomic commit -> refresh the dense file.

Unchanged files are neither loaded, chunked nor embedded. A changed file's chunks are replaced
and a deleted (or now unreadable) file's chunks removed, all in the same commit. Vectors are
checkpointed while embedding, so a run killed midway loses no embedding work.

Loading and chunking run on a thread of their own (ingest/pipeline.py), at most
PREFETCH_CHECKPOINTS checkpoints' worth of chunks ahead of the embedding on the caller's
thread, so the model does not wait for a PDF parser. The store and `embed` are used from the
caller's thread only (the chunker counts tokens on the reading thread: count_tokens is
thread-safe), and the report lists files in the corpus' order as before.
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
from ingest.pipeline import Prefetch
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
    failpoints.hit("after-scan")
    report, upserts, present = IngestReport(), [], set()
    checkpoints = _Checkpoints(store, embedder, rebuild, settings.embed_checkpoint, show)
    # made (and the model loaded) for the first file that needs chunking, if any does
    chunker = functools.cache(lambda: chunker_for(settings, embedder))
    reads = ((f, _read(f, settings, chunker, embedder.model_id, indexed, rebuild))
             for f in files)
    with Prefetch(reads, limit=PREFETCH_CHECKPOINTS * settings.embed_checkpoint,
                  weight=_weight, name="ingest-read") as ahead, \
            checkpoints, tqdm(total=len(files), desc="files", unit="file", disable=not show,
                              leave=False) as bar:
        for f, outcome in ahead:
            doc = _tally(report, present, f, outcome, indexed, rebuild)
            if doc is not None:
                upserts.append(doc)
                checkpoints.add(doc)
            bar.update()
        checkpoints.finish()
    report.embedded, report.truncated = checkpoints.embedded, checkpoints.truncated

    failed_paths = {p for p, _ in report.failed}
    report.deleted = sorted(p for p in indexed if p not in present)
    # A file that was indexed but can no longer be read leaves the index too: its old text is
    # not what the corpus holds any more. It is reported as failed, not as deleted.
    drops = report.deleted + sorted(p for p in indexed if p in failed_paths)
    if rebuild:
        drops = sorted(indexed)
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


# How far (in checkpoints' worth of chunks) loading and chunking may run ahead of embedding:
# one to embed next while another is read, bounded in memory whatever the corpus.
PREFETCH_CHECKPOINTS = 2


def _weight(read: tuple) -> int:
    outcome = read[1]
    return len(outcome.chunks) if isinstance(outcome, NewDocument) else 1


def _read(f, settings: IngestSettings, chunker: Callable[[], Chunker], model_id: str,
          indexed: dict, rebuild: bool):
    """On the reading thread: what `_load_and_chunk` gives, or the FileNotFoundError or
    LoadError it raised (the caller's thread tallies them in the corpus' order). Any other
    exception stops the run."""
    try:
        return _load_and_chunk(f, settings, chunker, model_id, indexed, rebuild)
    except (FileNotFoundError, LoadError) as exc:
        return exc


def _tally(report: IngestReport, present: set[str], f, outcome, indexed: dict,
           rebuild: bool) -> NewDocument | None:
    """Record one file's outcome in the report (added, changed, unchanged, failed, deferred)
    and in `present` (the paths still in the corpus); returns its new version, if any."""
    if isinstance(outcome, FileNotFoundError):
        # Gone since the scan: an editor mid-save (renamed away, about to be rewritten)
        # or a deletion. An indexed file keeps its version this run; the next run (the
        # watcher's next event) sees which it was.
        if f.rel not in indexed:
            return None
        outcome = _BUSY
    present.add(f.rel)
    if isinstance(outcome, LoadError):
        report.failed.append((f.rel, str(outcome)))
    elif outcome is _BUSY and rebuild:  # a rebuild replaces everything: it cannot keep it
        report.failed.append((f.rel, "changed while being read; run again once it is "
                                     "written"))
    elif outcome is _BUSY:
        report.deferred.append(f.rel)
    elif outcome is None:
        report.unchanged.append(f.rel)
    else:
        (report.changed if f.rel in indexed else report.added).append(f.rel)
        return outcome
    return None


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
    loaded = load(f.path, data, settings.load_options())
    chunks = chunker().split(loaded)
    if not chunks:
        raise LoadError("no text left to index after extraction")
    keys = [vector_key(model_id, c.text) for c in chunks]
    return NewDocument(f.rel, sha, len(data), loaded.kind, loaded.text, chunks, keys)


class _Checkpoints:
    """Embeds, as documents arrive, the chunk texts that have no stored vector (or all of them,
    for a rebuild), each text once, and stores their vectors every `checkpoint` texts (a
    commit of their own a rerun reuses; the last checkpoint takes what is left). Within each
    checkpoint the longest texts go first (less padding). `truncated` counts the texts the
    model cut, with its tokenizer, just before embedding them."""

    def __init__(self, store: IndexStore, embedder: Embedder, everything: bool,
                 checkpoint: int, show: bool) -> None:
        self._store, self._embedder, self._everything = store, embedder, everything
        self._checkpoint = checkpoint
        self._show = show
        self._seen: set[str] = set()  # keys met in this run
        self._unchecked: dict[str, str] = {}  # key -> text, not yet looked up in the store
        self._missing: list[tuple[str, str]] = []  # (key, text) to embed, in arrival order
        # the size of the vectors stored so far (0: none yet); a rebuild replaces them all
        self._dim = 0 if everything else int(store.meta.get("dim") or 0)
        self.embedded = self.truncated = 0

    def __enter__(self) -> _Checkpoints:
        self._bar = tqdm(total=0, desc="chunks", unit="chunk", disable=not self._show,
                         leave=False)
        return self

    def __exit__(self, *exc_info) -> None:
        self._bar.close()

    def add(self, doc: NewDocument) -> None:
        for chunk, key in zip(doc.chunks, doc.vec_keys):
            if key not in self._seen:
                self._seen.add(key)
                self._unchecked[key] = chunk.text
        if len(self._unchecked) >= self._checkpoint:
            self._check()
        while len(self._missing) >= self._checkpoint:
            self._embed(self._checkpoint)

    def finish(self) -> None:
        self._check()
        while self._missing:
            self._embed(min(self._checkpoint, len(self._missing)))

    def _check(self) -> None:
        """Move the keys without a stored vector to the texts to embed (one look-up per
        checkpoint's worth of new keys, not one per document)."""
        if not self._unchecked:
            return
        keys = (list(self._unchecked) if self._everything
                else self._store.missing_vectors(self._unchecked))
        self._missing += [(k, self._unchecked[k]) for k in keys]
        self._unchecked.clear()
        self._bar.total += len(keys)
        self._bar.refresh()

    def _embed(self, n: int) -> None:
        batch = sorted(self._missing[:n], key=lambda kt: len(kt[1]), reverse=True)
        del self._missing[:n]
        texts = [t for _, t in batch]
        embedder = self._embedder
        self.truncated += sum(t > embedder.max_tokens for t in embedder.count_tokens(texts))
        vectors = embedder.embed(texts)
        _check_size(vectors, self._dim, embedder.model_id)
        self._store.put_vectors([k for k, _ in batch], vectors, replace=self._everything)
        self.embedded += len(batch)
        self._bar.update(len(batch))
        failpoints.hit("mid-embed")


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
