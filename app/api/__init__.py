"""The HTTP edge: one router per resource in `routes/`, joined by app.main.create_app; typed
dependencies in `deps.py`; request bodies in `schemas.py` (the answer's schema is app.answer's);
the error handler in `errors.py`; streamed answers as events in `streaming.py`."""
