"""`python -m app`: serve the API with uvicorn on RAG_HOST:RAG_PORT."""
import logging

import uvicorn

from app.main import create_app
from app.settings import Settings


def main() -> None:
    settings = Settings()
    # Our own lines (ingests, the watcher) beside uvicorn's, in the same shape.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level="info")


if __name__ == "__main__":
    main()
