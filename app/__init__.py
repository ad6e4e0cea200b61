"""The FastAPI service: retrieve-then-generate with verified citations (built on ingest's index).

OpenMP threads that have finished a parallel region wait passively here: the service embeds
queries from worker threads while other OpenMP pools (torch's from model load, faiss's) exist,
and with the default busy-wait two idle pools spinning on two cores turned a 15 ms query
embedding into 500 ms (measured). Set before torch or faiss load their OpenMP runtime.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
