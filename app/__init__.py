"""The FastAPI service: retrieve-then-generate with verified citations (built on ingest's index).

OpenMP threads that finish a parallel region spin only briefly here. The service embeds queries
on a worker thread while other OpenMP thread pools exist (torch's from loading the model,
faiss's), and with libgomp's default wait two idle pools kept both cores busy: a 15 ms query
embedding took 500 ms (measured). GOMP_SPINCOUNT=30000 gave 16 ms; OMP_WAIT_POLICY=PASSIVE
also fixes it but costs ~4 ms a query. Set before torch or faiss load libgomp.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
