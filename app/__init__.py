"""The FastAPI service: retrieve-then-generate with verified citations (built on ingest's index).

OpenMP threads that finish a parallel region wait passively here. The service embeds queries on
the embedder's worker thread while other OpenMP thread pools exist (torch's from loading the
model, faiss's), and with libgomp's default busy wait the idle pools kept both cores busy: a
15 ms query embedding took 500 ms (measured). PASSIVE measured best end to end at 100,000
chunks (p50 27.7 ms against 34.1 ms with GOMP_SPINCOUNT=30000, which starves the BM25 search
running beside the embedding). Set before torch or faiss load libgomp.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
