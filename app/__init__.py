"""The FastAPI service: retrieve-then-generate with verified citations (built on ingest's index).

No OpenMP wait policy is set here. It used to be PASSIVE, against the busy wait of several
torch thread teams (one per thread that embedded: a 15 ms query embedding took 500 ms on two
cores); every encode, and now the model's load, runs on one thread (ingest/embedders/local.py),
so there is one team, and PASSIVE only made it sleep and wake between the model's operations:
torch query embedding p50 15.6 -> 10.0 ms in the service at 100,000 chunks, the default
onnx-int8 the same within noise either way (tests/bench/bench_ask.py, one run each).
"""
