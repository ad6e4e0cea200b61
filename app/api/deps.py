"""What the routes depend on, as typed dependencies: the parts built once in the lifespan and
kept on `app.state`. Collections are not among them: a route reaches one only through
app.access.grant, which decides whether the caller may."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.metrics import Metrics
from app.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
