"""The service's collections at run time: for each one (ingest/collections.py defines them),
its settings, the pipeline over its own index, and the runner that keeps that index fresh.

Every collection shares the process's embedder, generator and BM25 threads, and nothing else:
each has its own IndexHolder over its own index, so retrieval, filters and fusion in one
collection cannot see another's chunks. A route never picks a collection from here by name:
it asks app.access.grant, which decides whether the caller may reach it.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Iterator, NamedTuple

from app.corpus_files import sweep_temporaries
from app.errors import IndexNotReady
from app.freshness import IngestRunner
from app.index_holder import IndexHolder
from app.service import RagService
from app.settings import Settings
from ingest.collections import CollectionConfig, collection_configs, settings_for
from ingest.store import IndexParams, open_reader

log = logging.getLogger(__name__)


class CollectionState(NamedTuple):
    ready: bool  # false until its first ingest commits (or while it is being rebuilt)
    documents: int | None
    chunks: int | None
    generation: int | None


@dataclass
class Collection:
    name: str
    settings: Settings  # the service's settings, with this collection's corpus and index
    service: RagService  # the pipeline over this collection's index
    runner: IngestRunner  # its ingests: the watcher, POST /ingest, uploads and deletes

    def state(self) -> CollectionState:
        """Its index's size now (nothing when it has none yet)."""
        try:
            snap = self.service.index.current()
        except IndexNotReady:
            return CollectionState(False, None, None, None)
        return CollectionState(True, snap.document_count, snap.chunk_count, snap.generation)


class Collections:
    """The collections, in the order their file defines them (the first is the primary one:
    `default` without a collections file)."""

    def __init__(self, items: list[Collection], base: RagService) -> None:
        self._items = {c.name: c for c in items}
        self._base = base  # owns the shared parts: closed last

    @classmethod
    def build(cls, settings: Settings, service: RagService | None = None,
              configs: list[CollectionConfig] | None = None) -> "Collections":
        """The collections the settings define. `service`: one already built (a test's, with
        a fake part); it serves the one collection there is without a collections file, and
        lends its embedder and generator to every collection with one."""
        configs = configs or collection_configs(settings)
        first = settings_for(settings, configs[0])
        base = service or RagService.from_settings(first)
        items: list[Collection] = []
        try:
            for i, config in enumerate(configs):
                own = settings_for(settings, config)
                if i == 0 and (service is None or settings.collections_file is None):
                    svc = base
                else:
                    params = IndexParams(base.embedder.model_id, own.chunk_tokens,
                                         own.chunk_overlap)
                    svc = base.with_index(IndexHolder(open_reader(own, params)))
                runner = IngestRunner(own, base.embedder, svc.index,
                                      quiet_ms=own.watch_quiet_ms)
                items.append(Collection(config.name, own, svc, runner))
        except BaseException:  # one reader failed to open: close the ones that did
            cls(items, base).close()
            raise
        return cls(items, base)

    def get(self, name: str) -> Collection | None:
        return self._items.get(name)

    def __iter__(self) -> Iterator[Collection]:
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    @property
    def primary(self) -> Collection:
        return next(iter(self._items.values()))

    def warm_up(self) -> None:
        """Load the models (once) and every collection's index; remove what uploads killed
        mid-write left in the folders."""
        self._base.warm_up()
        # A walk of every folder: on a thread of its own, not before the service answers.
        threading.Thread(target=self._sweep, name="sweep-uploads", daemon=True).start()
        for c in self:
            c.state()  # opens its index; without one, its questions get 503 until one commits

    def _sweep(self) -> None:
        for c in self:
            try:
                swept = sweep_temporaries(c.settings.corpus_dir)
            except OSError as exc:
                log.warning("sweeping %s for interrupted uploads failed: %s", c.name, exc)
                continue
            if swept:
                log.info("removed %d temporaries of interrupted uploads from %s", swept, c.name)

    def start_watching(self) -> None:
        for c in self:
            c.runner.start_watching()

    def stop(self) -> None:
        for c in self:
            c.runner.stop()

    def close(self) -> None:
        for c in self:
            if c.service is not self._base:
                c.service.index.close()
        self._base.close()
