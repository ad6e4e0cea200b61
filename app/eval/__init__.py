"""Evaluation: retrieval quality on BEIR-format datasets (`beir.py`) and answer quality on the
labelled starter-corpus questions (`starter.py`). `python -m app.eval --help`."""
