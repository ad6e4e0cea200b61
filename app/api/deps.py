"""What the routes depend on, as typed dependencies: the parts built once in the lifespan and
kept on `app.state`. A test replaces one with `app.dependency_overrides[get_service] = ...`."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.freshness import IngestRunner
from app.metrics import Metrics
from app.service import RagService
from app.settings import Settings


def get_service(request: Request) -> RagService:
    return request.app.state.service


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_ingester(request: Request) -> IngestRunner:
    return request.app.state.ingester


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


ServiceDep = Annotated[RagService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
IngesterDep = Annotated[IngestRunner, Depends(get_ingester)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
