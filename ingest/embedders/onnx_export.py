"""The ONNX models RAG_EMBED_BACKEND=onnx|onnx-int8 run: exported here, from the local model's
own weights, on first use, and cached in RAG_EMBED_CACHE_DIR. Nothing is downloaded.

Why our own export rather than sentence-transformers' `backend="onnx"`: that path needs
optimum-onnx, which pins an older transformers than the project runs (GUIDE.md). The recipe here
needs only torch (already installed), onnx and onnxruntime:

1. `torch.onnx.export` traces the whole sentence-transformers pipeline (transformer, pooling,
   normalisation), so the graph gives the same sentence vectors torch does, whatever the
   model's pooling.
2. ONNX Runtime's transformer optimizer fuses BERT's layer norms and GELUs (measured: fp32
   11.1 -> 16.8 passages/s on 2 cores); other architectures keep the plain graph.
3. For int8, `quantize_dynamic`: weights int8 per channel, activations quantized per batch,
   only the MatMuls with constant weights. Per channel keeps the vectors at cosine 0.995 mean
   (0.992 min) from torch's against 0.936 per tensor (300 SciFact abstracts). On CPUs without
   AVX-512 VNNI the weights use 7 bits (`reduce_range`), as ONNX Runtime advises, because
   AVX2's u8s8 multiply-add saturates.

Each model is written whole to a temporary folder, checked, and renamed into place: a crash
leaves no half-written model. A cached model any of whose files (the model, the tokenizer's)
does not match the checksum written beside it is removed and exported again, never loaded.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
import warnings
from pathlib import Path

from ingest.errors import ModelUnavailableError

log = logging.getLogger(__name__)

RECIPE = 2  # bump when the export changes: old cached models are then not reused
MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def cpu_quantization() -> str:
    """The int8 variant for this CPU: avx512_vnni, avx512, avx2 or arm64."""
    if platform.machine().lower() in ("arm64", "aarch64"):
        return "arm64"
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        flags = []
    if "avx512_vnni" in flags or "avx_vnni" in flags:
        return "avx512_vnni"
    return "avx512" if "avx512f" in flags else "avx2"


def cache_folder(cache_dir: Path, model_id: str, source: str, variant: str) -> Path:
    """Where the model for (model, weights, variant, recipe) is cached: another model, changed
    weights or another CPU's quantization get a folder of their own."""
    key = json.dumps([model_id, _fingerprint(source), variant, RECIPE])
    slug = "".join(c if c.isalnum() else "-" for c in model_id.rsplit("/", 1)[-1])[:40]
    return cache_dir / f"{slug}-{variant}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def _fingerprint(source: str) -> list:
    """A local folder's files by name, size and time (a changed file gives a new export); a
    hub id stands for itself."""
    root = Path(source)
    if not root.is_dir():
        return [source]
    return sorted([str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns]
                  for p in root.rglob("*") if p.is_file())


def cached_model(folder: Path) -> dict | None:
    """The manifest of a whole cached model, or None: absent, or damaged (removed then).
    A folder only ever appears whole (renamed into place), so one with a file missing or
    changed is damaged."""
    if not folder.is_dir():
        return None
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files = manifest["files"]
        whole = bool(files) and all(_sha256(folder / name) == digest
                                    for name, digest in files.items())
        whole = whole and {"dim", "max_seq_length"} <= manifest.keys()
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        whole = False
    if not whole:
        log.warning("the cached ONNX model in %s is damaged: exporting it again", folder)
        shutil.rmtree(folder, ignore_errors=True)
        return None
    return manifest


def export(st_model, folder: Path, variant: str) -> dict:
    """Export `st_model` (a loaded SentenceTransformer) as `variant` ("fp32" or an int8 CPU
    variant) into `folder`, atomically; returns its manifest."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        fp32 = work / "fp32.onnx"
        _trace(st_model, fp32)
        final = work / MODEL_FILE
        _optimize(fp32, st_model, final)
        if variant != "fp32":
            optimized = work / "optimized.onnx"
            final.rename(optimized)
            _quantize(optimized, final, variant)
        for leftover in work.glob("*.onnx*"):
            if leftover != final:
                leftover.unlink()
        st_model.tokenizer.save_pretrained(str(work))
        if not (work / "tokenizer.json").is_file():
            raise ModelUnavailableError(
                "the ONNX backends need a model with a fast tokenizer (tokenizer.json); "
                "this one has none: set RAG_EMBED_BACKEND=torch")
        manifest = {"files": {p.name: _sha256(p) for p in sorted(work.iterdir())},
                    "variant": variant, "recipe": RECIPE,
                    "dim": _dimension(st_model), "max_seq_length": int(st_model.max_seq_length)}
        (work / MANIFEST).write_text(json.dumps(manifest, indent=1))
        _fsync_all(work)
        try:
            work.rename(folder)
        except OSError:  # another process exported it first: theirs is as good
            if cached_model(folder) is None:
                raise
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _trace(st_model, path: Path) -> None:
    import torch

    class SentenceVectors(torch.nn.Module):
        """The sentence-transformers modules as one function of the tokenizer's tensors."""

        def __init__(self, model) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            features = {"input_ids": input_ids, "attention_mask": attention_mask,
                        "token_type_ids": token_type_ids}
            return self.model(features)["sentence_embedding"]

    sample = st_model.tokenizer(["a short one", "and a somewhat longer sentence"],
                                padding=True, return_tensors="pt", return_token_type_ids=True)
    axes = {name: {0: "batch", 1: "tokens"} for name in INPUTS}
    # The tracer warns of shape checks it freezes; the axes that vary (batch, tokens) are
    # declared dynamic and the export is checked against torch by the tests.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            SentenceVectors(st_model.eval()), tuple(sample[n] for n in INPUTS), str(path),
            input_names=list(INPUTS), output_names=["sentence_embedding"],
            dynamic_axes={**axes, "sentence_embedding": {0: "batch"}}, opset_version=17,
            dynamo=False)  # the TorchScript tracer: no onnxscript needed, and tested here


def _optimize(src: Path, st_model, dst: Path) -> None:
    config = getattr(st_model[0], "auto_model", None)
    config = getattr(config, "config", None)
    if getattr(config, "model_type", None) != "bert":  # the optimizer's patterns are BERT's
        src.rename(dst)
        return
    from onnxruntime.transformers import optimizer

    optimized = optimizer.optimize_model(str(src), model_type="bert",
                                         num_heads=config.num_attention_heads,
                                         hidden_size=config.hidden_size)
    optimized.save_model_to_file(str(dst))


def _quantize(src: Path, dst: Path, variant: str) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
        reduce_range=variant in ("avx2", "avx512"), op_types_to_quantize=["MatMul"],
        extra_options={"MatMulConstBOnly": True,
                       # the fused nodes have no inferred types: their outputs are float
                       "DefaultTensorType": onnx.TensorProto.FLOAT})


def _dimension(st_model) -> int:
    get = getattr(st_model, "get_embedding_dimension", None) or \
        st_model.get_sentence_embedding_dimension
    return int(get())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _fsync_all(folder: Path) -> None:
    for p in folder.iterdir():
        with open(p, "rb") as f:
            os.fsync(f.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
