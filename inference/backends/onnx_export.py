"""ONNX exports of local encoders: made once per set of weights into the model store, checked, run.

An export lives in MODEL_STORE/onnx/<first 16 hex of the weights' SHA-256>/ as
`<output>-<runtime>.onnx` beside `<output>-<runtime>.json`, its record: the full hash, the
library versions and the parity check against PyTorch on PROBES. Changed weights hash
differently, so they are exported anew; files are written beside their target and renamed,
so a crash or a second process exporting at once never leaves a half-written file in place.
The int8 variant is the fp32 export with its weights quantized (dynamic quantization:
activations are quantized per batch at run time, so it needs no calibration data).
"""

import hashlib
import json
import logging
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from django.conf import settings

from inference.backends.traced import TensorOutput
from inference.models import Runtime

logger = logging.getLogger(__name__)

# What the served outputs are made of: (model output, attention mask) -> one vector per input
# (mean-pooled unit embeddings, or class probabilities); parity is checked on these.
Finish = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

OPSET = 17

# Inputs of many lengths in one padded batch, so the check covers the masked positions too.
PROBES = [
    "a",
    "Great!",
    "the movie was not good at all",
    "An utterly charming, funny and moving film that I would happily watch again tomorrow.",
    "Worst. Purchase. Ever.",
    "It's neither here nor there -- a perfectly average afternoon.",
    "Ünïcödé, accents and emoji 🎬 still tokenize",
    "The service was slow, the food was cold, and the bill was wrong; still, the view was lovely "
    "and the staff apologized twice, which almost made up for the rest of the evening.",
    "refund please",
    "I expected more from a director of this calibre, but the second half redeems it.",
]

# Largest difference allowed on the finished vectors (each within [-1, 1]). fp32 runs the same
# arithmetic in another order: a rounding-level difference. int8 weights move outputs by about
# 1e-2 (docs/decisions/0075-onnx-runtime.md); a broken export moves them by far more.
TOLERANCE = {Runtime.ONNX_FP32: 1e-4, Runtime.ONNX_INT8: 0.1}


def weights_sha256(directory: Path) -> str:
    """The SHA-256 of every file of a model directory (names and contents, in name order)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def exported(
    path: str, output: str, runtime: str, load_model: Callable[[], torch.nn.Module], tokenizer, finish: Finish
) -> Path | None:
    """The ONNX file of `path`'s model for `runtime`, exported and checked on first use; None
    when it did not pass its parity check (recorded, so it is not exported again)."""
    source = Path(path)
    if not source.is_dir():
        raise ValueError(f"{path} is not a model directory; only local directories are exported to ONNX.")
    sha256 = weights_sha256(source)
    directory = settings.MODEL_STORE / "onnx" / sha256[:16]
    file = directory / f"{output}-{runtime}.onnx"
    record_file = file.with_suffix(".json")
    if record_file.is_file() and file.is_file():
        record = json.loads(record_file.read_text())
        if record["source_sha256"] == sha256:
            return _checked(file, record)
    directory.mkdir(parents=True, exist_ok=True)
    model = load_model()
    fp32 = directory / f"{output}-{Runtime.ONNX_FP32}.onnx"
    if not fp32.is_file():
        logger.info("Exporting %s (%s) to %s", path, output, fp32)
        _replace(fp32, lambda partial: _export(model, tokenizer, output, partial))
    if runtime == Runtime.ONNX_INT8:
        logger.info("Quantizing %s to int8", fp32)
        _replace(file, lambda partial: _quantize(fp32, partial))
    record = {
        "source": str(source),
        "source_sha256": sha256,
        "output": output,
        "runtime": runtime,
        "torch": torch.__version__,
        "onnxruntime": _onnxruntime_version(),
        "parity": parity(model, tokenizer, output, file, finish, TOLERANCE[Runtime(runtime)]),
    }
    _replace(record_file, lambda partial: partial.write_text(json.dumps(record, indent=2)))
    return _checked(file, record)


def _checked(file: Path, record: dict) -> Path | None:
    if record["parity"]["passed"]:
        return file
    logger.warning(
        "%s differs from PyTorch by %.2g (tolerance %.2g) on the parity probes; serving on PyTorch",
        file,
        record["parity"]["max_abs_diff"],
        record["parity"]["tolerance"],
    )
    return None


def parity(model: torch.nn.Module, tokenizer, output: str, file: Path, finish: Finish, tolerance: float) -> dict:
    """The largest difference between PyTorch's finished vectors and the export's on PROBES."""
    batch = tokenizer(PROBES, padding=True, truncation=True, return_tensors="pt")
    args = (batch["input_ids"], batch["attention_mask"])
    with torch.inference_mode():
        expected = finish(TensorOutput(model, output).eval()(*args), batch["attention_mask"])
    got = finish(onnx_forward(file)(*args), batch["attention_mask"])
    difference = (expected - got).abs().max().item()
    return {
        "probes": len(PROBES),
        "max_abs_diff": difference,
        "tolerance": tolerance,
        "passed": difference <= tolerance,
    }


def onnx_forward(file: Path) -> Forward:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # The threads PyTorch gets in this process (gunicorn.conf.py shares the cores among the
    # workers); 0 is ONNX Runtime's default, one per physical core.
    options.intra_op_num_threads = settings.TORCH_THREADS
    options.inter_op_num_threads = 1
    # Idle pool threads sleep instead of spinning: the request threads need the cores between passes.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
    output = session.get_outputs()[0].name

    def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # Runs without the GIL, as the traced PyTorch graph does (inference/backends/traced.py).
        (result,) = session.run([output], {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()})
        return torch.from_numpy(result)

    return forward


def _export(model: torch.nn.Module, tokenizer, output: str, target: Path) -> None:
    example = tokenizer(["a", "an example of a longer input"], padding=True, return_tensors="pt")
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            TensorOutput(model, output).eval(),
            (example["input_ids"], example["attention_mask"]),
            str(target),
            input_names=["input_ids", "attention_mask"],
            output_names=[output],
            dynamic_axes={name: {0: "batch", 1: "tokens"} for name in ("input_ids", "attention_mask")},
            opset_version=OPSET,
            dynamo=False,
        )


def _quantize(fp32: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # One scale per output channel: per tensor, labels of the shipped sentiment head moved on
    # 5.7% of SST-2 sentences instead of 2.5% (docs/decisions/0075-onnx-runtime.md).
    quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8, per_channel=True)


def _replace(target: Path, write: Callable[[Path], object]) -> None:
    """Write to a file of this process and thread beside the target, then rename it over the target."""
    partial = target.with_name(f".{target.name}.{os.getpid()}-{threading.get_ident()}.partial")
    try:
        write(partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _onnxruntime_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
