"""The web page: index.html at /, its script and style under /static (files in app/web/, no
build step)."""
from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
STATIC = "/static"  # where the page's files are served
# The page's scripts are ES modules, which a browser runs only when served as JavaScript; some
# systems' MIME tables (Windows' registry) map .js to text/plain.
mimetypes.add_type("text/javascript", ".js")

router = APIRouter(include_in_schema=False)


@router.get("/")
async def web_page() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def mount_static(app: FastAPI) -> None:
    """The page's files; a Mount, which a router cannot carry."""
    app.mount(STATIC, StaticFiles(directory=WEB_DIR), name="static")
