"""The FastAPI app: `create_app(settings)` builds the service once in the lifespan (and starts
the corpus watcher), joins the routers of app/api/routes and adds the middleware (the API key
check, the request log and metrics)."""
from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from app.api.errors import add_error_handlers
from app.api.routes import ask, documents, health, openai, web
from app.auth import ApiKeyMiddleware
from app.errors import Redactor
from app.freshness import IngestRunner
from app.http_limits import BodyLimits
from app.metrics import Metrics
from app.service import RagService
from app.settings import Settings
from app.telemetry import RequestTelemetry
from ingest.embedders.openai import embeddings_url


def create_app(settings: Settings | None = None, service: RagService | None = None) -> FastAPI:
    """The service's app. `service`: one already built from the same `settings` (a test's,
    with a fake part), used instead of building it in the lifespan; the settings still decide
    the rest (the key, the watcher, the default top_k)."""
    settings = settings or Settings.load()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        svc = app.state.service = service or RagService.from_settings(settings)
        # The runner first: it rebuilds an index that warm_up finds damaged.
        app.state.ingester = IngestRunner(settings, svc.embedder, svc.index,
                                          quiet_ms=settings.watch_quiet_ms)
        await run_in_threadpool(svc.warm_up)
        if settings.watch:
            app.state.ingester.start_watching()
        yield
        await run_in_threadpool(app.state.ingester.stop)
        await run_in_threadpool(svc.close)  # may wait for a generator's stream to finish

    app = FastAPI(title="ragfirst", version="0.1.0", lifespan=lifespan,
                  description="Answers questions about your documents, with checked citations.")
    app.state.settings = settings
    app.state.redact = Redactor.for_service(
        settings.corpus_dir, settings.index_dir,
        settings.openai_base_url if settings.generator == "openai" else None,
        embeddings_url(settings.embed_base_url or "") if settings.embedder == "openai" else None)
    app.state.metrics = metrics = Metrics()
    metrics.watch(lambda: getattr(app.state, "service", None),
                  lambda: getattr(app.state, "ingester", None))
    add_error_handlers(app)
    routers = (health.router, ask.router, documents.router, openai.router, web.router)
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
    if settings.api_key is not None:
        app.add_middleware(ApiKeyMiddleware, key=settings.api_key.get_secret_value())
    app.add_middleware(RequestTelemetry, metrics=metrics, routes=labels,
                       log_content=settings.log_content)
    return app
