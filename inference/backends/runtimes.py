"""What runs a local model's forward pass: PyTorch (a traced graph) or ONNX Runtime on an export.

Either is a `forward(input_ids, attention_mask) -> output tensor`, so encoders and classifiers
tokenize, pool and label the same way on both (docs/decisions/0075-onnx-runtime.md).
"""

import functools
import logging
from collections.abc import Callable

import torch

from inference.backends import onnx_export
from inference.backends.traced import forward_without_gil
from inference.models import Runtime

logger = logging.getLogger(__name__)


def forward_for(
    path: str,
    runtime: str,
    load_model: Callable[[], torch.nn.Module],
    tokenizer,
    output: str,
    finish: onnx_export.Finish,
) -> tuple[str, onnx_export.Forward]:
    """The forward pass of `path`'s model and the runtime it runs on: the one asked for, or
    PyTorch when its export or parity check failed (logged; the version is still served)."""
    load = functools.cache(load_model)  # export, check and fallback share one load
    if runtime != Runtime.TORCH:
        try:
            file = onnx_export.exported(path, output, runtime, load, tokenizer, finish)
            if file is not None:
                return runtime, onnx_export.onnx_forward(file)
        except Exception:
            logger.exception("Could not run %s on ONNX Runtime (%s); serving it on PyTorch", path, runtime)
    return Runtime.TORCH, forward_without_gil(load(), tokenizer, output)
