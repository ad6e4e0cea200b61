"""The FastAPI service: retrieve-then-generate with verified citations (built on ingest's index).

No OpenMP wait policy is set here. It used to be PASSIVE, against the busy wait of several
torch thread teams (one per thread that embedded: a 15 ms query embedding took 500 ms on two
cores). Now every encode, and the model's load, runs on one thread (ingest/embedders/local.py),
each thread that searches FAISS asks for a team of one (ingest/store/sqlite/dense.py), and
llama.cpp's generation wants its team awake between tokens; PASSIVE only made torch's one team
sleep and wake between the model's operations: torch query embedding p50 15.6 -> 10.0 ms in the
service at 100,000 chunks, the default onnx-int8 the same within noise (13.6-17.6 ms end to
end either way; tests/bench/bench_ask.py, two runs of each).
"""
