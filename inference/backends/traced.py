"""A transformers model's forward pass traced to TorchScript, so that it runs without the GIL.

In eager mode every layer's Python code takes the GIL between tensor operations. In a gunicorn
worker the request threads hold it most of the time, so the batcher's forward pass crawled: a
batch of 8 ran 75x slower beside two busy Python threads in eager mode, while the traced graph
(executed in C++, GIL released) kept its share of the CPU and gave identical outputs
(docs/decisions/0009-traced-forward-pass.md). A model that cannot be traced runs eagerly.
"""

import logging
import warnings
from collections.abc import Callable

import torch

logger = logging.getLogger(__name__)


class TensorOutput(torch.nn.Module):
    """The model with tensor arguments and one tensor out, as tracing needs."""

    def __init__(self, model: torch.nn.Module, output: str):
        super().__init__()
        self.model = model
        self.output = output

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return getattr(self.model(input_ids=input_ids, attention_mask=attention_mask), self.output)


def forward_without_gil(model: torch.nn.Module, tokenizer, output: str) -> Callable:
    """`forward(input_ids, attention_mask) -> model_output.<output>`, traced when possible."""
    eager = TensorOutput(model, output).eval()
    # Inputs of different lengths, so the trace records the padded (masked) path: a trace
    # of an unpadded batch may skip the mask and be wrong for padded ones.
    example = tokenizer(["a", "an example of a longer input"], padding=True, return_tensors="pt")
    args = (example["input_ids"], example["attention_mask"])
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(eager, args, check_trace=False)
            if not torch.allclose(traced(*args), eager(*args), atol=1e-5):
                raise ValueError("the traced model's output differs from the model's")
        return traced
    except Exception:
        logger.warning("Could not trace %s; running it in eager mode", type(model).__name__, exc_info=True)
        return eager
