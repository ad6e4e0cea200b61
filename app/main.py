"""The FastAPI app: `create_app(settings)` builds the service once in the lifespan (and starts
the corpus watcher), joins the routers of app/api/routes and adds the middleware (the API key
check, the request log and metrics)."""
from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from app.access import AccessMiddleware, KeyRing
from app.access.origin import OriginPolicy, allowed_hosts
from app.api.errors import add_error_handlers
from app.api.routes import (ask, collection_documents, collections, documents, health, openai,
                            web)
from app.collections import Collections
from app.errors import Redactor
from app.http_limits import BodyLimits
from app.metrics import Metrics
from app.service import RagService
from app.settings import Settings
from app.telemetry import RequestTelemetry
from ingest.collections import collection_configs
from ingest.embedders.openai import embeddings_url


def create_app(settings: Settings | None = None, service: RagService | None = None) -> FastAPI:
    """The service's app. `service`: one already built from the same `settings` (a test's,
    with a fake part), used instead of building it in the lifespan; the settings still decide
    the rest (the key, the watcher, the default top_k)."""
    settings = settings or Settings.load()
    # A bad collections or keys file is refused here, at start, with one line that names it.
    configs = collection_configs(settings)
    keys = KeyRing(settings.api_key.get_secret_value() if settings.api_key else None,
                   settings.keys_file)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # The runners are built with the collections: one rebuilds an index warm_up finds
        # damaged.
        cols = app.state.collections = await run_in_threadpool(
            Collections.build, settings, service, configs)
        try:
            await run_in_threadpool(cols.warm_up)
            if settings.watch:
                cols.start_watching()
            yield
        finally:  # a warm-up that failed too: nothing stays open
            await run_in_threadpool(cols.stop)
            await run_in_threadpool(cols.close)  # may wait for a generator's stream to end

    app = FastAPI(title="ragfirst", version="0.1.0", lifespan=lifespan,
                  description="Answers questions about your documents, with checked citations.")
    app.state.settings = settings
    app.state.redact = Redactor.for_service(
        [c.corpus_dir for c in configs], [c.index_dir for c in configs],
        settings.openai_base_url if settings.generator == "openai" else None,
        embeddings_url(settings.embed_base_url or "") if settings.embedder == "openai" else None)
    app.state.metrics = metrics = Metrics()
    metrics.watch(lambda: getattr(app.state, "collections", None))
    add_error_handlers(app)
    routers = (health.router, ask.router, documents.router, collections.router,
               collection_documents.router, openai.router, web.router)
    for router in routers:
        app.include_router(router)
    web.mount_static(app)
    # The request log and metrics label a request with its route's template, also when it
    # is refused before routing: every template, the docs' and the page's files' included.
    labels = [(r.path, r.path) for r in app.router.routes if isinstance(r, Route)]
    labels += [(r.path, r.path) for router in routers for r in router.routes]
    labels.append((web.STATIC, web.STATIC + "/{path:path}"))
    app.add_middleware(BodyLimits, max_bytes=settings.max_request_bytes,
                       timeout=settings.http_body_timeout_s,
                       upload_bytes=settings.max_upload_bytes,
                       upload_timeout=settings.http_upload_timeout_s)
    # Added last = outermost: the telemetry sees (and counts) requests the key check refuses.
    # Always there: with no key configured it marks every request as open (an admin).
    app.add_middleware(AccessMiddleware, keys=keys,
                       origins=OriginPolicy(allowed_hosts(settings.allowed_hosts, settings.host)))
    app.add_middleware(RequestTelemetry, metrics=metrics, routes=labels,
                       log_content=settings.log_content)
    return app
